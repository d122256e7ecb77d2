"""``signal-noise analyze``: the write-up's comparison of Signal and Noise, with statistics.

Loading and validating the tidy table, ``analyze_table`` (the JSON-able result, reused by the
report), the printed table and the command. The statistics themselves are in ``stats`` and ``power``.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import power, stats
from .errors import UserError

DEFAULT_PARAMS = ("num_layers", "batch_size", "hidden_size")
ARMS = ("signal", "noise")
N_TEST_COLUMNS = ("cfg_n_test", "n_test")


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read RESULTS: a results store (.sqlite/.db), a CSV (.csv) or Parquet (.parquet/.pq) file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq", ".sqlite", ".db"):
        raise UserError(f"{path}: unknown file type {suffix or '(none)'!r}; expected .csv, .parquet, .pq, .sqlite or .db")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: empty file")
    try:
        if suffix in (".sqlite", ".db"):
            try:
                from signal_noise.store import load_results
            except ImportError as exc:
                raise UserError(f"{path}: reading a results store needs signal_noise.store.load_results ({exc})")
            return load_results(path)
        if suffix == ".csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except UserError:
        raise
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: empty file") from None
    except Exception as exc:  # a corrupt file: one line naming it, not a traceback
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{path}: cannot read it: {first}") from None


@dataclass
class Arm:
    """One arm pivoted: acc (n_runs, n_epochs), epochs (n_epochs,), labels {param: (n_runs,)}."""
    run_ids: np.ndarray
    epochs: np.ndarray
    acc: np.ndarray
    labels: dict


def _where(rows: pd.DataFrame) -> str:
    r = rows.iloc[0]
    return f"run {r['run_id']}, epoch {r['epoch']}"


def validate(df: pd.DataFrame, metric: str, params: tuple[str, ...]) -> dict[str, Arm]:
    """Check the tidy table and pivot each arm; every problem is a one-line ``UserError``."""
    if df is None or len(df) == 0:
        raise UserError("the results table has no rows")
    if len(set(params)) != len(params) or not params:
        raise UserError(f"--params must name distinct params, got {','.join(params)!r}")
    need = ["run_id", "arm", "epoch", metric, *params]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise UserError(f"missing column(s): {', '.join(missing)} (have: {', '.join(map(str, df.columns))})")
    df = df[need].copy()
    arm = df["arm"].astype(str).str.strip().str.lower()
    bad = sorted(set(arm[~arm.isin(ARMS) | df["arm"].isna()]))
    if bad:
        raise UserError(f"unknown arm value(s): {', '.join(map(repr, bad))} (expected signal or noise)")
    df["arm"] = arm
    for name in ARMS:
        if not (arm == name).any():
            raise UserError(f"no {name} arm in the results table (column arm has only {sorted(set(arm))})")
    epoch = pd.to_numeric(df["epoch"], errors="coerce")
    if epoch.isna().any() or (epoch != np.round(epoch)).any():
        raise UserError(f"column epoch must hold whole numbers ({_where(df[epoch.isna() | (epoch != np.round(epoch))])})")
    df["epoch"] = epoch.astype(int)
    value = pd.to_numeric(df[metric], errors="coerce")
    text = value.isna() & df[metric].notna()
    if text.any():
        raise UserError(f"metric {metric!r} has a non-numeric value {df.loc[text, metric].iloc[0]!r} ({_where(df[text])})")
    if df[metric].isna().any():
        raise UserError(f"metric {metric!r} has a missing or NaN value ({_where(df[df[metric].isna()])})")
    if not np.isfinite(value.to_numpy(dtype=float)).all():
        raise UserError(f"metric {metric!r} has an infinite value ({_where(df[~np.isfinite(value)])})")
    df[metric] = value.astype(float)
    for p in params:
        if df[p].isna().any():
            raise UserError(f"param {p!r} has a missing value ({_where(df[df[p].isna()])})")
    if df["run_id"].isna().any():
        raise UserError("column run_id has a missing value")
    dup = df.duplicated(["run_id", "epoch"], keep=False)
    if dup.any():
        raise UserError(f"more than one row for {_where(df[dup])}")
    per_run = df.groupby("run_id")[["arm", *params]].nunique()
    varying = per_run[(per_run > 1).any(axis=1)]
    if len(varying):
        col = varying.columns[(varying.iloc[0] > 1).to_numpy()][0]
        raise UserError(f"run {varying.index[0]} changes its {col} between epochs")

    arms = {}
    for name in ARMS:
        part = df[df["arm"] == name]
        wide = part.pivot(index="run_id", columns="epoch", values=metric).sort_index(axis=1)
        if wide.isna().any().any():
            run = wide.index[wide.isna().any(axis=1)][0]
            lacking = [int(e) for e in wide.columns[wide.loc[run].isna()]]
            raise UserError(f"{name} run {run} has no row for epoch(s) {lacking} that other runs have")
        first = part.groupby("run_id")[list(params)].first().loc[wide.index]
        labels = {p: first[p].to_numpy() for p in params}
        for p, v in labels.items():
            if len(np.unique(v)) < 2:
                hint = " (the noise arm needs placebo labels)" if name == "noise" else ""
                raise UserError(f"param {p!r} has only one level ({v[0]!r}) in the {name} arm{hint}")
        arms[name] = Arm(wide.index.to_numpy(), wide.columns.to_numpy(dtype=int), wide.to_numpy(float), labels)
    return arms


def _n_test(df: pd.DataFrame, n_test: int | None) -> int | None:
    col = next((c for c in N_TEST_COLUMNS if c in df.columns), None)
    if col is None:
        return n_test
    arm = df["arm"].astype(str).str.strip().str.lower()
    values = pd.to_numeric(df.loc[arm == "noise", col], errors="coerce").dropna().unique()
    if len(values) != 1:
        return n_test
    found = int(values[0])
    if n_test is not None and int(n_test) != found:
        raise UserError(f"--n-test {n_test} disagrees with column {col} ({found})")
    return found


def _py(x):
    """JSON-able: numpy scalars to Python, non-finite floats to None, recursively."""
    if isinstance(x, dict):
        return {str(k): _py(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_py(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else (math.inf if a > 0 else math.nan)


def analyze_table(df: pd.DataFrame, metric: str = "acc", params: tuple[str, ...] = DEFAULT_PARAMS,
                  epoch: int | str = "last", alpha: float = 0.05, n_test: int | None = None, seed: int = 0,
                  n_resamples: int = 2000, n_perm: int = 1999, mde_max: int = 50) -> dict:
    """The whole analysis of a tidy results table, as a JSON-able dict.

    Keys: metric, epoch, first_epoch, epochs, alpha, seed, n_runs.{signal,noise}; signal/noise: mean,
    sd, overall_spread (+ _first, _by_epoch), and for noise also sd_ci, df, n_test, test_set_floor_sd;
    params.P.{signal,noise}: effect, ci, p_value, p_value_perm, F, df, effect_first, spread_by_epoch,
    levels, runs_per_level, group_means, best_level, worst_level (+ noise.expected_effect);
    params.P: ratio, ratio_ci, ratio_first, significant, seeds_per_level_needed, variance_share;
    variance_share.{noise,rest}; mde.{runs_per_group,difference,power}; methods. NaN/inf are None.

    Args:
      df: one row per (run, epoch) with run_id, arm, epoch, the metric and the params.
      metric: the column to analyse; params: the hyperparameter columns (labels).
      epoch: "last" or an epoch number present in both arms; alpha: significance level.
      n_test: test-set size when the table has no cfg_n_test / n_test column.
      seed: seeds the one generator behind every bootstrap and permutation.
    """
    params = tuple(params)
    if not 0 < alpha < 1:
        raise UserError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    arms = validate(df, metric, params)
    n_test = _n_test(df, n_test)
    common = sorted(set(arms["signal"].epochs) & set(arms["noise"].epochs))
    if not common:
        raise UserError("the signal and noise arms share no epoch")
    if epoch == "last":
        epoch = common[-1]
    elif int(epoch) not in common:
        raise UserError(f"epoch {epoch} is not in both arms (shared epochs: {common[0]}..{common[-1]})")
    epoch, first = int(epoch), common[0]
    rng = np.random.default_rng(seed)
    at = {a: arms[a].acc[:, list(arms[a].epochs).index(epoch)] for a in ARMS}
    at_first = {a: arms[a].acc[:, list(arms[a].epochs).index(first)] for a in ARMS}
    sig, noi = arms["signal"], arms["noise"]
    y_sig, y_noise = at["signal"], at["noise"]
    n_noise = len(y_noise)
    s2 = float(np.var(y_noise, ddof=1))
    sd = math.sqrt(s2)

    sig_test = stats.signal_test(y_sig, sig.labels, s2, n_noise - 1)
    noise_test = stats.placebo_test(y_noise, noi.labels)
    ss_total = float(((y_sig - y_sig.mean()) ** 2).sum())
    shares = stats.variance_shares({p: sig_test[p]["ss"] for p in params}, {p: sig_test[p]["df"] for p in params},
                                   ss_total, len(y_sig), s2)
    scale = 100.0 if max(y_sig.max(), y_noise.max()) > 1 else 1.0
    looks_like_accuracy = min(y_sig.min(), y_noise.min()) >= 0 and max(y_sig.max(), y_noise.max()) <= scale
    floor = (power.test_set_floor_sd(float(y_noise.mean()), n_test, scale)
             if n_test and looks_like_accuracy else None)
    ns, mde = power.mde_curve(sd, mde_max, alpha) if sd > 0 else (np.arange(2, mde_max + 1), None)

    out = {"metric": metric, "epoch": epoch, "first_epoch": first, "epochs": common, "alpha": alpha, "seed": seed,
           "n_runs": {a: len(at[a]) for a in ARMS}, "params": {},
           "variance_share": {"noise": shares["noise"], "rest": shares["rest"]},
           "mde": {"runs_per_group": ns, "difference": mde, "power": 0.8}}
    for a in ARMS:
        spread = stats.overall_spread(arms[a].acc)
        out[a] = {"mean": float(at[a].mean()), "sd": float(np.std(at[a], ddof=1)),
                  "overall_spread": float(np.ptp(at[a])), "overall_spread_first": float(np.ptp(at_first[a])),
                  "overall_spread_by_epoch": dict(zip(map(str, arms[a].epochs), spread))}
    out["noise"].update({"sd_ci": power.sd_ci(y_noise, rng, n_resamples), "df": n_noise - 1,
                         "n_test": n_test, "test_set_floor_sd": floor})

    for p in params:
        entry = {}
        for a, test in (("signal", sig_test[p]), ("noise", noise_test[p])):
            labels = arms[a].labels[p]
            levels, means = stats.group_means(at[a], labels)
            counts = np.unique(labels, return_counts=True)[1]
            strata = stats.strata_codes(arms[a].labels, p)
            entry[a] = {
                "effect": stats.effect_size(at[a], labels),
                "ci": power.effect_ci(at[a], labels, rng, n_resamples),
                "p_value": test["p_value"], "F": test["F"], "df": test["df"],
                "p_value_perm": stats.permutation_pvalue(at[a], labels, strata, rng, n_perm),
                "effect_first": stats.effect_size(at_first[a], labels),
                "spread_by_epoch": dict(zip(map(str, arms[a].epochs), stats.group_spread(arms[a].acc, labels))),
                "levels": levels, "runs_per_level": counts, "group_means": dict(zip(map(str, levels), means)),
                "best_level": levels[int(np.argmax(means))], "worst_level": levels[int(np.argmin(means))],
            }
        entry["noise"]["expected_effect"] = stats.expected_noise_effect(sd, entry["noise"]["runs_per_level"])
        s_eff, n_eff = entry["signal"]["effect"], entry["noise"]["effect"]
        entry.update({
            "ratio": _ratio(s_eff, n_eff),
            "ratio_ci": power.ratio_ci(y_sig, sig.labels[p], y_noise, noi.labels[p], rng, n_resamples),
            "ratio_first": _ratio(entry["signal"]["effect_first"], entry["noise"]["effect_first"]),
            "significant": bool(entry["signal"]["p_value"] < alpha),
            "seeds_per_level_needed": power.seeds_per_level_needed(s_eff, sd, alpha),
            "variance_share": shares[p],
        })
        out["params"][p] = entry
    out["methods"] = {
        "signal.p_value": "additive Type II ANOVA on the signal arm, F = MS_P / noise-arm variance",
        "signal.p_value_perm": f"permutation of P within the other params' cells, {n_perm} permutations",
        "noise.p_value": "additive Type II ANOVA on the noise arm's placebo labels, its own residual",
        "ci": f"scipy.stats.bootstrap percentile, 95%, {n_resamples} resamples within levels",
        "variance_share": "omega squared with the noise-arm variance as error",
    }
    return _py(out)


def _f(x, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.1e}"


def _ci(c) -> str:
    return "[-]" if c is None or None in c else f"[{_f(c[0])}, {_f(c[1])}]"


def format_report(r: dict) -> str:
    """The readable table ``signal-noise analyze`` prints."""
    n, s = r["noise"], r["signal"]
    lines = [f"{r['metric']} at epoch {r['epoch']} (epochs {r['epochs'][0]}..{r['epochs'][-1]}); "
             f"{r['n_runs']['signal']} signal runs, {r['n_runs']['noise']} noise runs; alpha {r['alpha']}",
             f"noise (seed) SD {_f(n['sd'])} {_ci(n['sd_ci'])}; test-set floor "
             + (f"{_f(n['test_set_floor_sd'])} (n_test {n['n_test']})" if n["test_set_floor_sd"] is not None
                else "unknown (no n_test)"),
             f"overall spread, epoch {r['first_epoch']} -> {r['epoch']}: signal {_f(s['overall_spread_first'])} -> "
             f"{_f(s['overall_spread'])}, noise {_f(n['overall_spread_first'])} -> {_f(n['overall_spread'])}", ""]
    head = ["param", "signal effect [95% CI]", "noise effect (expected)", "ratio [95% CI]", "p vs noise",
            "p perm", "p placebo", "sig", "seeds/level", "var share", f"effect ep{r['first_epoch']} sig/noise"]
    rows = [head]
    for p, e in r["params"].items():
        sg, ns = e["signal"], e["noise"]
        rows.append([p, f"{_f(sg['effect'])} {_ci(sg['ci'])}", f"{_f(ns['effect'])} ({_f(ns['expected_effect'])})",
                     f"{_f(e['ratio'], 2)} {_ci(e['ratio_ci'])}", _f(sg["p_value"]), _f(sg["p_value_perm"]),
                     _f(ns["p_value"]), "yes" if e["significant"] else "no",
                     "-" if e["seeds_per_level_needed"] is None else str(e["seeds_per_level_needed"]),
                     "-" if e["variance_share"] is None else f"{100 * e['variance_share']:.1f}%",
                     f"{_f(sg['effect_first'])}/{_f(ns['effect_first'])}"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    v = r["variance_share"]
    if v["noise"] is not None:
        lines += ["", f"variance share of the signal arm: seed noise {100 * v['noise']:.1f}%, "
                      f"rest (interactions) {100 * v['rest']:.1f}%"]
    return "\n".join(lines)


def write_json(result: dict, path: str | os.PathLike) -> None:
    """Write ``result`` to ``path`` atomically (a temporary file in the same folder, then os.replace)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise UserError(f"--json {path}: folder {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(result, fh, indent=2, allow_nan=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _epoch(text: str) -> int | str:
    if text == "last":
        return text
    try:
        value = int(text)
    except ValueError:
        raise UserError(f"--epoch must be 'last' or an epoch number, got {text!r}") from None
    if value < 1:
        raise UserError(f"--epoch must be at least 1, got {value}")
    return value


def register(sub) -> None:
    """Add the ``analyze`` sub-command to ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser("analyze", help="compare the signal and noise arms: effects, p-values, intervals, power",
                       description="Compare the signal and noise arms of a sweep: the write-up's effect sizes, "
                                   "p-values against the noise baseline, bootstrap intervals, seeds needed.")
    p.add_argument("results", metavar="RESULTS", help="results store (.sqlite/.db) or tidy .csv/.parquet table")
    p.add_argument("--metric", default="acc", help="metric column (default: acc)")
    p.add_argument("--params", default=",".join(DEFAULT_PARAMS), help="comma list of hyperparameter columns")
    p.add_argument("--epoch", default="last", help="'last' (default) or an epoch number")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default: 0.05)")
    p.add_argument("--json", metavar="OUT.json", help="also write the full result as JSON")
    p.add_argument("--n-test", type=int, default=None, help="test-set size, when the table has no cfg_n_test column")
    p.add_argument("--seed", type=int, default=0, help="seed for bootstraps and permutations (default: 0)")
    p.add_argument("--n-resamples", type=int, default=2000, help="bootstrap resamples (default: 2000)")
    p.set_defaults(func=run)


def run(args) -> int:
    params = tuple(x.strip() for x in args.params.split(",") if x.strip())
    if args.n_resamples < 100:
        raise UserError(f"--n-resamples must be at least 100, got {args.n_resamples}")
    if args.n_test is not None and args.n_test < 1:
        raise UserError(f"--n-test must be at least 1, got {args.n_test}")
    result = analyze_table(read_table(args.results), metric=args.metric, params=params, epoch=_epoch(str(args.epoch)),
                           alpha=args.alpha, n_test=args.n_test, seed=args.seed, n_resamples=args.n_resamples)
    print(format_report(result))
    if args.json:
        write_json(result, args.json)
    return 0
