"""The report's figures: matplotlib/seaborn, one function per figure, each returning a Figure.

Inputs are the pivoted arms of ``analyze.validate`` ({"signal": Arm, "noise": Arm}, each with acc
(n_runs, n_epochs), epochs (n_epochs,) and labels {param: (n_runs,)}) and the result dict of
``analyze.analyze_table``. Figures are built with ``matplotlib.figure.Figure`` rather than pyplot, so
nothing is shown twice in a notebook; ``show`` displays one as an embedded PNG.
"""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, NullFormatter

from . import power

PARAM_LABELS = {"num_layers": "layer count", "batch_size": "batch size", "hidden_size": "hidden size"}
ARM_COLORS = {"signal": "#c2410c", "noise": "#334155"}
ARM_TITLES = {"signal": "Signal (hyperparameters vary, seed fixed)", "noise": "Noise (config fixed, seed varies)"}
PARAM_COLORS = {"num_layers": "#0f766e", "batch_size": "#7c3aed", "hidden_size": "#b45309"}
CMAP = "plasma"   # purple = low accuracy, yellow = high, as in the write-up's W&B plots
DPI = 144


def label(param: str) -> str:
    return PARAM_LABELS.get(param, param.replace("_", " "))


def _figure(width: float, height: float) -> Figure:
    sns.set_theme(style="whitegrid", context="notebook", font_scale=0.9)
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def show(fig: Figure, width_px: int | None = None) -> None:
    """Display ``fig`` in the notebook as a PNG (embedded in the HTML report as a data: URI)."""
    from IPython.display import Image, display

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    width = width_px or int(fig.get_figwidth() * 96)
    display(Image(data=buf.getvalue(), format="png", width=width))


def _at(arm, epoch: int) -> np.ndarray:
    """(n_runs,) the metric of every run at ``epoch``."""
    return arm.acc[:, list(arm.epochs).index(epoch)]


def _levels(values: np.ndarray) -> list[str]:
    return [str(v) for v in np.unique(values)]


def curves(arms: dict, param: str, epoch: int) -> Figure:
    """Group-mean accuracy over epochs with each group's min-max band (top) and every run's
    accuracy at ``epoch`` by level with the group means (bottom); Noise left, Signal right.

    Axes of a row share their y scale, so the two arms can be compared by eye.
    """
    fig = _figure(10, 7.4)
    axes = fig.subplots(2, 2, sharey="row")
    for col, name in enumerate(("noise", "signal")):
        arm = arms[name]
        levels = arm.labels[param]
        order = _levels(levels)
        palette = dict(zip(order, sns.color_palette("viridis", len(order))))
        long = pd.DataFrame({"run": np.repeat(np.arange(len(levels)), len(arm.epochs)),
                             "epoch": np.tile(arm.epochs, len(levels)), "acc": arm.acc.ravel(),
                             "level": np.repeat(levels.astype(str), len(arm.epochs))})
        ax = axes[0, col]
        sns.lineplot(data=long, x="epoch", y="acc", hue="level", hue_order=order, palette=palette,
                     estimator="mean", errorbar=("pi", 100), err_kws={"alpha": 0.12}, marker="o",
                     markersize=4, ax=ax)
        ax.set_title(ARM_TITLES[name], color=ARM_COLORS[name], fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy (%)")
        ax.set_xticks(arm.epochs)
        ax.legend(title=label(param), fontsize=7, title_fontsize=8, ncol=2 if len(order) > 5 else 1)
        final = pd.DataFrame({"acc": _at(arm, epoch), "level": levels.astype(str)})
        ax = axes[1, col]
        sns.stripplot(data=final, x="level", y="acc", order=order, hue="level", hue_order=order,
                      palette=palette, size=4, alpha=0.7, jitter=0.2, legend=False, ax=ax)
        sns.pointplot(data=final, x="level", y="acc", order=order, color="black", errorbar=None,
                      markers="D", markersize=5, linestyles="-", linewidth=1, ax=ax)
        ax.set_xlabel(label(param))
        ax.set_ylabel(f"accuracy at epoch {epoch} (%)")
        ax.set_title(f"each run at epoch {epoch}; black: group means", fontsize=9)
    return fig


def _positions(values: np.ndarray, rng: np.random.Generator, jitter: float) -> tuple[np.ndarray, list]:
    levels, codes = np.unique(values, return_inverse=True)
    base = codes / max(len(levels) - 1, 1)
    return base + rng.uniform(-jitter, jitter, len(values)), list(levels)


def parallel(arms: dict, params: tuple[str, ...], focus: str, epoch: int) -> Figure:
    """Parallel coordinates of Noise (left) and Signal (right): one vertical axis per hyperparameter
    (``focus`` last, next to accuracy) and one for the accuracy at ``epoch``; a line per run,
    coloured by that accuracy on each panel's own scale (shown by its colour bar)."""
    order = [p for p in params if p != focus] + [focus]
    fig = _figure(10, 4.2)
    axes = fig.subplots(1, 2)
    for ax, name in zip(axes, ("noise", "signal")):
        arm = arms[name]
        rng = np.random.default_rng(0)   # the jitter only separates overlapping lines
        y_acc = _at(arm, epoch)
        lo, hi = float(y_acc.min()), float(y_acc.max())
        scaled = (y_acc - lo) / (hi - lo) if hi > lo else np.full_like(y_acc, 0.5)
        columns, tick_levels = [], []
        for p in order:
            pos, levels = _positions(arm.labels[p], rng, 0.02)
            columns.append(pos)
            tick_levels.append(levels)
        columns.append(scaled)
        ys = np.stack(columns, axis=1)                            # (n_runs, n_axes)
        xs = np.arange(ys.shape[1])
        rank = np.argsort(scaled)                                 # best runs drawn last, on top
        segments = np.stack([np.broadcast_to(xs, ys.shape), ys], axis=2)[rank]
        cmap = sns.color_palette(CMAP, as_cmap=True)
        lines = LineCollection(segments, colors=cmap(scaled[rank]), linewidths=1.0,
                               alpha=0.75 if len(ys) < 100 else 0.45)
        ax.add_collection(lines)
        for i, levels in enumerate(tick_levels):
            ax.axvline(i, color="black", linewidth=1.6 if order[i] == focus else 0.8)
            for j, lev in enumerate(levels):
                ax.text(i - 0.04, j / max(len(levels) - 1, 1), str(lev), ha="right", va="center", fontsize=7)
        ax.axvline(len(order), color="black", linewidth=0.8)
        for q in (0.0, 0.5, 1.0):
            ax.text(len(order) + 0.04, q, f"{lo + q * (hi - lo):.2f}", ha="left", va="center", fontsize=7)
        ax.set_xticks(list(xs))
        ax.set_xticklabels([label(p) for p in order] + [f"acc. ep. {epoch} (%)"], fontsize=8)
        for tick, p in zip(ax.get_xticklabels(), order + [None]):
            if p == focus:
                tick.set_fontweight("bold")
        ax.set_xlim(-0.35, len(order) + 0.35)
        ax.set_ylim(-0.06, 1.06)
        ax.set_yticks([])
        ax.grid(False)
        ax.set_title(f"{ARM_TITLES[name]}\nlines coloured by accuracy, {lo:.2f}% (purple) to {hi:.2f}% (yellow)",
                     color=ARM_COLORS[name], fontsize=9)
    return fig


def spreads(result: dict) -> Figure:
    """Left: the group-mean spread of each hyperparameter over epochs (Signal solid, Noise dashed).
    Right: the overall spread (best minus worst run) over epochs. Log scale when it spans a lot."""
    epochs = [int(e) for e in result["epochs"]]
    fig = _figure(10, 3.8)
    left, right = fig.subplots(1, 2, sharey=True)
    values = []
    for p, entry in result["params"].items():
        for name, style in (("signal", "-"), ("noise", "--")):
            y = [entry[name]["spread_by_epoch"][str(e)] for e in epochs]
            values += y
            left.plot(epochs, y, style, marker="o", markersize=3, color=PARAM_COLORS.get(p), label=f"{label(p)}, {name}")
    for name in ("signal", "noise"):
        y = [result[name]["overall_spread_by_epoch"][str(e)] for e in epochs]
        values += y
        right.plot(epochs, y, "-" if name == "signal" else "--", marker="o", markersize=3,
                   color=ARM_COLORS[name], label=name.capitalize())
    positive = [v for v in values if v is not None and v > 0]
    if positive and max(positive) / min(positive) > 20:
        left.set_yscale("log")
    left.set_title("group-mean spread (best minus worst level mean)", fontsize=9)
    right.set_title("overall spread (best minus worst run)", fontsize=9)
    left.set_ylabel("percentage points")
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.set_xticks(epochs)
        ax.legend(fontsize=7)
    return fig


def final_accuracy(arms: dict, result: dict) -> Figure:
    """Every run's accuracy at the analysed epoch, Signal above Noise on one x scale, each arm's range
    marked; the shaded band is the Noise mean +- one test-set-floor SD where that is known."""
    epoch = result["epoch"]
    fig = _figure(10, 3.6)
    axes = fig.subplots(2, 1, sharex=True)
    both = np.concatenate([_at(arms[a], epoch) for a in ("signal", "noise")])
    bins = np.histogram_bin_edges(both, bins=min(40, max(8, len(both) // 6)))
    floor = result["noise"].get("test_set_floor_sd")
    for ax, name in zip(axes, ("signal", "noise")):
        y = _at(arms[name], epoch)
        ax.hist(y, bins=bins, color=ARM_COLORS[name], alpha=0.8)
        for v in (y.min(), y.max()):
            ax.axvline(v, color=ARM_COLORS[name], linestyle=":", linewidth=1)
        if floor:
            m = result["noise"]["mean"]
            ax.axvspan(m - floor, m + floor, color="#94a3b8", alpha=0.25, linewidth=0)
        ax.set_ylabel("runs")
        ax.set_title(f"{name.capitalize()}: {len(y)} runs, range {np.ptp(y):.2f} points "
                     f"({y.min():.2f} to {y.max():.2f})", fontsize=9, color=ARM_COLORS[name], loc="left")
    axes[1].set_xlabel(f"test accuracy at epoch {epoch} (%)")
    if floor:
        axes[1].legend(handles=[Line2D([], [], color="#94a3b8", linewidth=6, alpha=0.5)],
                       labels=["Noise mean +- test-set floor SD"], fontsize=7, loc="upper left")
    return fig


def effects(result: dict) -> Figure:
    """Each hyperparameter's effect (best minus worst group mean at the analysed epoch) in both arms
    with 95% bootstrap intervals, and the effect pure seed noise is expected to give (x)."""
    params = list(result["params"])
    fig = _figure(10, 0.9 + 0.75 * len(params))
    ax = fig.subplots()
    for i, p in enumerate(params):
        e = result["params"][p]
        for name, dy in (("signal", -0.15), ("noise", 0.15)):
            val, ci = e[name]["effect"], e[name]["ci"]
            ax.plot([val], [i + dy], "o", color=ARM_COLORS[name], label=name.capitalize() if i == 0 else None)
            if ci and None not in ci:
                ax.plot(ci, [i + dy] * 2, "-", color=ARM_COLORS[name], linewidth=2, alpha=0.7)
        ax.plot([e["noise"]["expected_effect"]], [i + 0.15], "x", color="black", markersize=7,
                label="expected under pure noise" if i == 0 else None)
    ax.set_yticks(range(len(params)))
    ax.set_yticklabels([label(p) for p in params])
    ax.invert_yaxis()
    ax.set_xlabel(f"effect at epoch {result['epoch']}: best minus worst group mean (percentage points)")
    ax.set_xlim(left=0)
    fig.legend(loc="outside upper center", ncol=3, fontsize=8, frameon=False)
    return fig


def mde(result: dict) -> Figure:
    """Minimal detectable difference between two level means (two-sided t-test at alpha, 80% power)
    against runs per level, for this build's seed SD and for the test-set floor alone. Dotted lines:
    each hyperparameter's observed Signal effect; markers: the runs per level it would need."""
    ns = np.asarray(result["mde"]["runs_per_group"], dtype=float)
    diff = result["mde"]["difference"]
    fig = _figure(10, 4.6)
    ax = fig.subplots()
    if diff is not None:
        ax.plot(ns, diff, color=ARM_COLORS["noise"], label=f"seed SD of this build ({result['noise']['sd']:.3g} points)")
    floor = result["noise"].get("test_set_floor_sd")
    if floor:
        _, fdiff = power.mde_curve(floor, int(ns[-1]), result["alpha"])
        ax.plot(ns, fdiff, "--", color="#64748b", label=f"test-set floor SD alone ({floor:.3g} points)")
    for p, e in result["params"].items():
        eff, need = e["signal"]["effect"], e["seeds_per_level_needed"]
        ax.axhline(eff, color=PARAM_COLORS.get(p), linestyle=":", linewidth=1.2,
                   label=f"{label(p)}: observed Signal effect {eff:.3g}")
        if need is not None and need <= ns[-1]:
            ax.plot([need], [eff], "o", color=PARAM_COLORS.get(p))
        runs = min(e["signal"]["runs_per_level"])
        if runs <= ns[-1]:
            ax.axvline(runs, color=PARAM_COLORS.get(p), linewidth=0.8, alpha=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = [t for t in (2, 3, 5, 10, 20, 30, 50, 100) if t <= ns[-1]]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("runs (seeds) per level; thin vertical lines: this build's Signal runs per level")
    ax.set_ylabel("smallest detectable difference (points)")
    fig.legend(loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    return fig
