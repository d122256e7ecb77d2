"""The report's prose up to the final accuracy, generated from the analysis so that no number in it is
typed by hand.

Each function takes the result dict of ``analyze.analyze_table`` (and the ``setup`` dict of
``render.describe_setup``) and returns Markdown, in the write-up's order: title and warnings, motivation,
design, setup, one section per hyperparameter, the spreads and the final accuracy. Every number shown is
tagged with its source by ``numtags`` (its docstring states the contract); the statistics the write-up
lacked and the conclusions are in ``verdicts``.
"""
from __future__ import annotations

import html

from . import model, writeup
from .numtags import (BARELY_LEARNED, CI_LEVEL, epoch_text, headline, safe_ratio, ci, const, derived, level, num, pval,
                      ratio_spec, ref, setup_num)
from .plots import label


def profile_name(setup: dict) -> str:
    if setup["profile"]:
        return html.escape(setup["profile"])
    return "not recorded (a tidy table)" if setup["kind"] == "table" else "unknown"


# ---------------------------------------------------------------------------- opening
def warnings(setup: dict, result: dict) -> list[str]:
    """What a reader must know before trusting the numbers: another profile, failed or missing runs,
    models that have hardly learned."""
    out = []
    chance = 100.0 / model.NUM_CLASSES
    if chance < result["noise"]["mean"] < BARELY_LEARNED * 100 or result["noise"]["mean"] <= chance:
        out.append(f"The Noise runs end at {num(result, 'noise.mean')}% accuracy on average, against "
                   f"{derived(chance, 'chance', '.0f')}% for guessing: at this size the models have barely begun to "
                   "learn, so every number below describes early training, not a trained model.")
    asked, held = setup["profile_param"], setup["profile_store"]
    if held and asked and asked != held:
        out.append(f"The report was asked for profile <code>{html.escape(asked)}</code>, but the store holds profile "
                   f"<code>{html.escape(held)}</code>; everything shown is the store's.")
    for arm, c in setup["counts"].items():
        if c.get("failed"):
            out.append(f"{setup_num(setup, f'counts.{arm}.failed')} {arm} run(s) failed and are left out of every "
                       "number; they are listed under Model and setup.")
        if c.get("pending"):
            out.append(f"The {arm} sweep is incomplete: {setup_num(setup, f'counts.{arm}.pending')} planned run(s) "
                       "have no result yet.")
    return out


def title(setup: dict, result: dict) -> str:
    """The heading and a banner naming the profile and the data, so nobody mistakes what they read."""
    runs = f'{num(result, "n_runs.signal", "d")} Signal + {num(result, "n_runs.noise", "d")} Noise runs'
    data = (f'{setup_num(setup, "n_train", ",d")} training / {setup_num(setup, "n_test", ",d")} test images, '
            if setup["n_train"] and setup["n_test"] else "")
    span = (f'epochs {epoch_text(result, "first_epoch")} to {epoch_text(result)}' if result["first_epoch"] != result["epoch"]
            else f'epoch {epoch_text(result)} only')
    size = f"{runs}, {data}{span}"
    if setup["kind"] == "table":
        what = (f"This report was built from a tidy results table, <code>{html.escape(setup['source'])}</code>, "
                "not from a results store of this project's sweeps; its setup is what the table itself records.")
    else:
        what = f"Built from the results store <code>{html.escape(setup['source'])}</code>."
    study = writeup.STUDY
    if setup["is_study_size"]:
        scale = "This is the size of the write-up's study."
    else:
        scale = (f"This is <strong>smaller than the write-up's study</strong> ({ref(study['signal_runs'], 'signal_runs')} + "
                 f"{ref(study['noise_runs'], 'noise_runs')} runs on all of MNIST, {ref(study['epochs'], 'epochs')} "
                 "epochs): read its numbers as the method at work on this data, not as a reproduction of the "
                 "write-up's values.")
    warn = "".join(f"<p class='warn'>{w}</p>" for w in warnings(setup, result))
    return (f"# Signal vs Noise: is a hyperparameter's effect bigger than seed noise?\n\n"
            f"<div class='banner'><p><strong>Profile: {profile_name(setup)}</strong>: {size}.</p>"
            f"<p>{what} {scale}</p>{warn}</div>\n")


def motivation() -> str:
    return """## Why compare against noise

Tune a hyperparameter, plot the final accuracy of each setting, and the settings rarely agree exactly.
Is a spread of a fraction of a point the hyperparameter at work, or what training would have done anyway
with another random seed? The write-up this report follows answers with a reference point: train the
same configuration many times with only the seed changing, and see how large the differences look when
nothing real changes. A hyperparameter deserves attention when the differences it makes clearly exceed
that baseline.

The write-up reads its numbers off plots by eye. This report recomputes them from the runs, and adds
what the eye cannot give: a test against the noise baseline, intervals, the precision limit the test set
itself imposes, and how many seeds a given difference needs.
"""


def _signal_seed(setup: dict) -> str:
    """How the Signal arm's runs are seeded, as the table records it."""
    if setup["signal_seed"] is not None:
        return f"all with the same seed ({setup_num(setup, 'signal_seed')})"
    if setup["signal_seeds"]:
        return f"though this table's Signal runs carry {setup_num(setup, 'signal_seeds')} different seeds, not one"
    return "with one seed for all (this table records no seeds)"


def design(setup: dict) -> str:
    cfg = setup["noise_config"]
    fixed = (" (" + ", ".join(f"{label(p)} {setup_num(setup, f'noise_config.{p}')}" for p in cfg) + ")") if cfg else ""
    return f"""## The design: two arms

* **Signal.** Every combination of the hyperparameter grid is trained once, {_signal_seed(setup)}.
  Differences between its runs mix the hyperparameters' effects with whatever the seed still leaves
  free (see *What a fixed seed does not freeze* below).
* **Noise.** Every run trains the same configuration{fixed}, each with its own seed, and carries a
  *placebo* label triple copied from the grid. Grouping Noise runs by those labels and measuring the
  same spreads shows how large a "hyperparameter effect" grouping alone produces when nothing changes:
  the null.

The write-up's yardsticks, computed for each hyperparameter and both arms: the **group-mean spread**
(best minus worst level mean, called the *effect* below) and the **overall spread** (best minus worst
single run), at the first epoch and at the end.
"""


def setup_section(setup: dict, result: dict) -> str:
    """The model and the setup actually run, with the failed and missing runs listed, not hidden."""
    lr = f" at learning rate {setup_num(setup, 'lr', 'g')}" if setup["lr"] else ""
    sizes = " / ".join(setup_num(setup, k, ",d") if setup[k] else "not recorded" for k in ("n_train", "n_test"))
    seeds = (setup_num(setup, "signal_seed") + " (every run)" if setup["signal_seed"] is not None
             else setup_num(setup, "signal_seeds") + " distinct")
    one_each = ", one per run" if setup["noise_seeds"] == result["n_runs"]["noise"] else ""
    lines = [f"""## Model and setup

The model is the bidirectional LSTM classifier of yunjey's PyTorch tutorial (a BDRNN): each MNIST
image is read as {const(model.SEQ_LEN, 'SEQ_LEN')} rows of {const(model.INPUT_SIZE, 'INPUT_SIZE')} pixels,
and a linear layer on the last step's output picks one of {const(model.NUM_CLASSES, 'NUM_CLASSES')} digits.
It is trained with Adam{lr} and cross-entropy; after every epoch its accuracy on the test images is recorded.

| | |
|---|---|
| profile | {profile_name(setup)} |
| training / test images | {sizes} |
| epochs | {epoch_text(result, 'first_epoch')} to {epoch_text(result)} (analysed: {epoch_text(result)}) |
| Signal runs analysed | {num(result, 'n_runs.signal', 'd')}{_planned(setup, 'signal')} |
| Noise runs analysed | {num(result, 'n_runs.noise', 'd')}{_planned(setup, 'noise')} |
| Signal seeds | {seeds} |
| Noise seeds | {setup_num(setup, 'noise_seeds')} distinct{one_each} |"""]
    for p, e in result["params"].items():
        levels = ", ".join(level(result, f"params.{p}.signal.levels.{i}") for i in range(len(e["signal"]["levels"])))
        lines.append(f"| {label(p)} levels | {levels} |")
    failed = setup["failed"]
    if failed:
        lines.append(f"\n**Failed runs, left out of every number below** ({setup_num(setup, 'n_failed')}):\n")
        lines.append("| arm | " + " | ".join(label(p) for p in result["params"]) + " | reason |")
        lines.append("|---" * (len(result["params"]) + 2) + "|")
        for i, f in enumerate(failed):
            labels = " | ".join(setup_num(setup, f"failed.{i}.labels.{p}", "") for p in result["params"])
            lines.append(f"| {f['arm']} | {labels} | {html.escape(str(f['reason'] or 'no reason recorded'))} |")
    elif setup["kind"] == "store":
        lines.append("\nNo run failed.")
    return "\n".join(lines) + "\n"


def _planned(setup: dict, arm: str) -> str:
    c = setup["counts"].get(arm, {})
    if "planned" not in c:
        return ""
    parts = [f"of {setup_num(setup, f'counts.{arm}.planned')} planned"]
    if c["failed"]:
        parts.append(f"{setup_num(setup, f'counts.{arm}.failed')} failed")
    if c["pending"]:
        parts.append(f"{setup_num(setup, f'counts.{arm}.pending')} not yet run")
    return " (" + ", ".join(parts) + ")"


# ---------------------------------------------------------------------------- per hyperparameter
def _trend(e: dict) -> str:
    """'rises', 'falls' or '' for level means that move steadily with the level's value."""
    means = [e["group_means"][str(v)] for v in e["levels"]]
    steps = [b - a for a, b in zip(means, means[1:])]
    if all(s > 0 for s in steps):
        return "rises"
    if all(s < 0 for s in steps):
        return "falls"
    return ""


def _runs_per_level(result: dict, p: str) -> str:
    e, k = result["params"][p], f"params.{p}"
    text = []
    for arm in ("signal", "noise"):
        counts = e[arm]["runs_per_level"]
        low, high = counts.index(min(counts)), counts.index(max(counts))
        text.append(num(result, f"{k}.{arm}.runs_per_level.{low}", "d") if low == high or min(counts) == max(counts)
                    else f"{num(result, f'{k}.{arm}.runs_per_level.{low}', 'd')} to "
                         f"{num(result, f'{k}.{arm}.runs_per_level.{high}', 'd')}")
    return (f"{text[0]} runs per level in each arm" if e["signal"]["runs_per_level"] == e["noise"]["runs_per_level"]
            else f"{text[0]} runs per level in Signal, {text[1]} in Noise")


def param_section(result: dict, p: str) -> str:
    """One hyperparameter: its spreads at the first and last epoch in both arms, its best and worst
    levels, its ratio to the Noise effect and the verdict, with the write-up's figures beside them."""
    e, k = result["params"][p], f"params.{p}"
    s, n = e["signal"], e["noise"]
    first, last = epoch_text(result, "first_epoch"), epoch_text(result)
    quoted = writeup.GROUP_MEAN_SPREAD.get(p)
    trend = _trend(s) if len(s["levels"]) > 2 else None
    shape = ("" if trend is None else f" Signal accuracy {trend} steadily with {label(p)}." if trend else
             f" Signal accuracy does not move steadily with {label(p)}: the level means go up and down.")
    said = ""
    if quoted:
        said = (f" (the write-up: Signal about {ref(quoted['signal'][0], f'{p}.signal.start')} → "
                f"{ref(quoted['signal'][1], f'{p}.signal.end')}, Noise about {ref(quoted['noise'][0], f'{p}.noise.start')}"
                f" → {ref(quoted['noise'][1], f'{p}.noise.end')})")
    best, worst = f"{k}.signal.best_level", f"{k}.signal.worst_level"
    verdict = (f"more than seed noise gives ({pval(result, f'{k}.signal.p_value')} against the Noise arm's variance)"
               if e["significant"] else
               f"not distinguishable from seed noise at this size ({pval(result, f'{k}.signal.p_value')})")
    return f"""## {label(p).capitalize()}

{derived(len(s['levels']), f'{p}.n_levels', 'd')} levels, {_runs_per_level(result, p)}.

* **Group-mean spread**, epoch {first} → {last}: Signal {num(result, f'{k}.signal.effect_first')} →
  {num(result, f'{k}.signal.effect')} points, Noise {num(result, f'{k}.noise.effect_first')} →
  {num(result, f'{k}.noise.effect')} points{said}.
* **Overall spread** (every run of the arm), epoch {first} → {last}: Signal
  {num(result, 'signal.overall_spread_first')} → {num(result, 'signal.overall_spread')} points, Noise
  {num(result, 'noise.overall_spread_first')} → {num(result, 'noise.overall_spread')} points.
* **At epoch {last}** the best Signal level is {level(result, best)}
  ({num(result, f'{k}.signal.group_means.{s["best_level"]}')}%) and the worst {level(result, worst)}
  ({num(result, f'{k}.signal.group_means.{s["worst_level"]}')}%).{shape} Among the Noise arm's placebo
  groups, where the label changes nothing, {level(result, f'{k}.noise.best_level')} happens to lead and
  {level(result, f'{k}.noise.worst_level')} to trail; pure noise is expected to give a spread of about
  {num(result, f'{k}.noise.expected_effect')} points for this grouping.
* The Signal effect is {num(result, f'{k}.ratio', ratio_spec)} times the Noise effect
  ({const(CI_LEVEL, 'ci_level', '.0%')} interval {ci(result, f'{k}.ratio_ci', ratio_spec)}), {verdict}.
"""


def caption_curves(result: dict, p: str) -> str:
    return (f"<p class='caption'><strong>{label(p).capitalize()}, learning curves.</strong> Top: mean test accuracy of "
            f"each {label(p)} group over epochs; the shaded band runs from the group's lowest to its highest run. "
            f"Bottom: every run's accuracy at epoch {epoch_text(result)}, with the group means in black. Noise left, Signal "
            "right; each row shares one y scale.</p>")


def caption_parallel(result: dict, p: str) -> str:
    return (f"<p class='caption'><strong>{label(p).capitalize()}, parallel coordinates.</strong> One line per run, "
            f"through its level of each hyperparameter (for Noise, its placebo labels) to its accuracy at epoch "
            f"{epoch_text(result)}, coloured by that accuracy from purple (lowest) to yellow (highest). Each panel has its "
            f"own colour scale, printed in its title. {label(p).capitalize()} is the bold axis next to accuracy: when "
            "the colours sort along it, accuracy follows it; when they are mixed, it does not.</p>")


# ---------------------------------------------------------------------------- spreads and ranges
def spread_section(result: dict) -> str:
    """First-epoch versus final spreads of both arms, and whether Signal starts out wider as in the write-up."""
    s, n = result["signal"], result["noise"]
    first, last = epoch_text(result, "first_epoch"), epoch_text(result)
    r = safe_ratio(s["overall_spread_first"], n["overall_spread_first"])
    q = headline("signal.overall_spread_first")
    if r is None:
        compare = f"the Noise arm has no spread at epoch {first}, so there is no ratio"
    elif r > 1:
        compare = f"Signal runs are {derived(r, 'first_spread_ratio', ratio_spec(r))} times as spread as Noise runs"
    else:
        compare = ("unlike the write-up, Signal runs are *not* more spread than Noise runs (ratio "
                   f"{derived(r, 'first_spread_ratio', ratio_spec(r))})")
    both = s["overall_spread"] < s["overall_spread_first"] and n["overall_spread"] < n["overall_spread_first"]
    shrink = "both arms narrow as training goes on" if both else "the arms do not both narrow with training"
    return f"""## First epoch against the end of training

The write-up's clearest contrast is at the start of training: a range of about {ref(q.signal, 'first.signal')}
points across Signal runs after the first epoch against about {ref(q.noise, 'first.noise')} across Noise runs.
Here the overall spread at epoch {first} is {num(result, 'signal.overall_spread_first')} points (Signal)
against {num(result, 'noise.overall_spread_first')} (Noise), so {compare}; by epoch {last} it is
{num(result, 'signal.overall_spread')} against {num(result, 'noise.overall_spread')}, and {shrink}. Early
differences mostly say which settings learn fastest; the effects in this report are read at the final
epoch, where the question of which setting ends best is decided.
"""


def caption_spreads() -> str:
    return ("<p class='caption'><strong>Spreads over training.</strong> Left: each hyperparameter's group-mean "
            "spread, Signal solid and Noise dashed. Right: best minus worst run of each arm.</p>")


def range_section(result: dict) -> str:
    s, n = result["signal"], result["noise"]
    q = headline("signal.overall_spread")
    r = safe_ratio(s["overall_spread"], n["overall_spread"])
    if r is None:
        versus = "the Noise runs all ended at the same accuracy, so there is no ratio"
    else:
        times = derived(r, "final_range_ratio", ratio_spec(r))
        versus = (f"the Signal range is {times} times the Noise range, wider as in the write-up" if r > 1 else
                  f"the Signal range is {times} times the Noise range: unlike the write-up's, it is not wider")
    return f"""## Final accuracy: Signal against Noise

At epoch {epoch_text(result)} the Signal runs span {num(result, 'signal.overall_spread')} points (mean
{num(result, 'signal.mean')}%) and the Noise runs {num(result, 'noise.overall_spread')} points (mean
{num(result, 'noise.mean')}%, SD {num(result, 'noise.sd', '.3f')}, {const(CI_LEVEL, 'ci_level', '.0%')} interval
{ci(result, 'noise.sd_ci', '.3f')}): {versus}. The write-up found about {ref(q.signal, 'final.signal')} against
{ref(q.noise, 'final.noise')} points. A range is the most extreme pair of runs, so it grows with the number
of runs: compare arms of equal size, as here.
"""


def caption_final(result: dict) -> str:
    floor = (" The grey band is the Noise mean plus and minus one test-set-floor SD." if
             result["noise"].get("test_set_floor_sd") else "")
    return ("<p class='caption'><strong>Final accuracy of every run.</strong> Signal above, Noise below, on one "
            f"accuracy axis; dotted lines mark each arm's lowest and highest run.{floor}</p>")
