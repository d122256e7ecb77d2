"""The report's prose, generated from the analysis so that no number in it is typed by hand.

Each function takes the result dict of ``analyze.analyze_table`` (and the ``setup`` dict of
``render.describe_setup``) and returns Markdown. Every number shown is wrapped as
``<span class="num" data-key="params.hidden_size.signal.effect" data-spec=".2f">1.52</span>``: the key
is its path in the analysis result (``setup.*`` for the setup, ``derived.*`` for a number computed
here from others, ``const.*`` for a constant of the model or method), the spec how it was formatted,
so a reader or a test can check what is shown. The write-up's own figures carry class ``ref``.
"""
from __future__ import annotations

import html
import inspect
import json
import re

from . import model, power, writeup
from .plots import label

SPAN_TEXT = re.compile(r"<span[^>]*>([^<]*)</span>")
P_DISPLAY_MIN = 0.001  # p-values below this are shown as "< 0.001"
BARELY_LEARNED = 0.5   # a mean accuracy below this fraction gets a warning that the models hardly trained
# the level of analyze's bootstrap intervals (it does not record it in its result)
CI_LEVEL = inspect.signature(power.effect_ci).parameters["confidence"].default


# ---------------------------------------------------------------------------- numbers
def get(result: dict, key: str):
    """The value at a dotted path of ``result`` ("params.hidden_size.signal.ci.0")."""
    value = result
    for part in key.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def pp_spec(v: float | None) -> str:
    """Format for a difference in percentage points: two decimals, three below 0.1."""
    return ".3f" if v is not None and round(abs(v), 2) < 0.1 else ".2f"


def ratio_spec(v: float | None) -> str:
    return ".2f" if v is None or abs(v) < 1 else ".1f" if abs(v) < 10 else ".0f"


def fmt(v, spec: str) -> str:
    """``v`` as shown: "n/a" for None; spec "p" is a p-value (three decimals, or "< 0.001")."""
    if v is None:
        return "n/a"
    if spec == "p":
        return f"< {P_DISPLAY_MIN}" if v < P_DISPLAY_MIN else f"{v:.3f}"
    return format(v, spec)


def _span(cls: str, key: str, v, spec: str) -> str:
    return f'<span class="{cls}" data-key="{key}" data-spec="{spec}">{html.escape(fmt(v, spec))}</span>'


def num(result: dict, key: str, spec=None) -> str:
    """The value at ``key`` of the analysis, formatted and tagged. ``spec``: a format spec, or a function
    of the value giving one; percentage points (``pp_spec``) by default."""
    v = get(result, key)
    spec = pp_spec if spec is None else spec
    return _span("num", key, v, spec(v) if callable(spec) else spec)


def pval(result: dict, key: str) -> str:
    """"p = 0.049" or "p < 0.001", the number tagged."""
    v = get(result, key)
    return f"p {'= ' if v is None or v >= P_DISPLAY_MIN else ''}{num(result, key, 'p')}"


def derived(v, key: str, spec: str) -> str:
    return _span("num derived", f"derived.{key}", v, spec)


def const(v, key: str, spec: str = "d") -> str:
    return _span("num const", f"const.{key}", v, spec)


def setup_num(setup: dict, key: str, spec: str = "d") -> str:
    return _span("num setup", f"setup.{key}", get(setup, key), spec)


def ref(v: float, key: str) -> str:
    return _span("ref", f"writeup.{key}", v, "g")


def ci(result: dict, key: str, spec=None) -> str:
    lo, hi = get(result, key)
    if lo is None or hi is None:
        return "[n/a]"
    return f"<span class='ci'>[{num(result, key + '.0', spec)}, {num(result, key + '.1', spec)}]</span>"


def level(result: dict, key: str) -> str:
    """A hyperparameter level (a label, shown as it is)."""
    return num(result, key, "")


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _names(params: list[str]) -> str:
    names = [f"**{label(p)}**" for p in params]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _ep(result: dict, which: str = "epoch") -> str:
    return num(result, which, "d")


def _level_index(e: dict, value) -> int:
    return [str(v) for v in e["levels"]].index(str(value))


def _fewest(result: dict, p: str) -> str:
    """Key of the smallest runs-per-level count of ``p``'s Signal arm."""
    counts = result["params"][p]["signal"]["runs_per_level"]
    return f"params.{p}.signal.runs_per_level.{counts.index(min(counts))}"


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
    span = (f'epochs {_ep(result, "first_epoch")} to {_ep(result)}' if result["first_epoch"] != result["epoch"]
            else f'epoch {_ep(result)} only')
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
| epochs | {_ep(result, 'first_epoch')} to {_ep(result)} (analysed: {_ep(result)}) |
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
    first, last = _ep(result, "first_epoch"), _ep(result)
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
            f"Bottom: every run's accuracy at epoch {_ep(result)}, with the group means in black. Noise left, Signal "
            "right; each row shares one y scale.</p>")


def caption_parallel(result: dict, p: str) -> str:
    return (f"<p class='caption'><strong>{label(p).capitalize()}, parallel coordinates.</strong> One line per run, "
            f"through its level of each hyperparameter (for Noise, its placebo labels) to its accuracy at epoch "
            f"{_ep(result)}, coloured by that accuracy from purple (lowest) to yellow (highest). Each panel has its "
            f"own colour scale, printed in its title. {label(p).capitalize()} is the bold axis next to accuracy: when "
            "the colours sort along it, accuracy follows it; when they are mixed, it does not.</p>")


# ---------------------------------------------------------------------------- spreads and ranges
def _headline(key_signal: str) -> writeup.Quoted:
    return next(h for h in writeup.HEADLINES if h.key_signal == key_signal)


def spread_section(result: dict) -> str:
    """First-epoch versus final spreads of both arms, and whether Signal starts out wider as in the write-up."""
    s, n = result["signal"], result["noise"]
    first, last = _ep(result, "first_epoch"), _ep(result)
    r = _ratio(s["overall_spread_first"], n["overall_spread_first"])
    q = _headline("signal.overall_spread_first")
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
    q = _headline("signal.overall_spread")
    r = _ratio(s["overall_spread"], n["overall_spread"])
    if r is None:
        versus = "the Noise runs all ended at the same accuracy, so there is no ratio"
    else:
        times = derived(r, "final_range_ratio", ratio_spec(r))
        versus = (f"the Signal range is {times} times the Noise range, wider as in the write-up" if r > 1 else
                  f"the Signal range is {times} times the Noise range: unlike the write-up's, it is not wider")
    return f"""## Final accuracy: Signal against Noise

At epoch {_ep(result)} the Signal runs span {num(result, 'signal.overall_spread')} points (mean
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


# ---------------------------------------------------------------------------- the framework
def framework_table(result: dict) -> str:
    """Effect, noise effect, ratio, p-values, intervals, seeds needed and variance share per param."""
    cl = const(CI_LEVEL, "ci_level", ".0%")
    effects = [f"| hyperparameter | Signal effect | {cl} CI | Noise effect | {cl} CI | pure-noise expectation | "
               f"ratio | {cl} CI |", "|---|---|---|---|---|---|---|---|"]
    tests = ["| hyperparameter | p vs noise | p permutation | p placebo | seeds per level needed | variance share |",
             "|---|---|---|---|---|---|"]
    for p, e in result["params"].items():
        k = f"params.{p}"
        name = f"**{label(p)}**" if e["significant"] else label(p)
        effects.append(f"| {name} | {num(result, f'{k}.signal.effect')} | {ci(result, f'{k}.signal.ci')} | "
                       f"{num(result, f'{k}.noise.effect')} | {ci(result, f'{k}.noise.ci')} | "
                       f"{num(result, f'{k}.noise.expected_effect')} | {num(result, f'{k}.ratio', ratio_spec)} | "
                       f"{ci(result, f'{k}.ratio_ci', ratio_spec)} |")
        tests.append(f"| {name} | {num(result, f'{k}.signal.p_value', 'p')} | "
                     f"{num(result, f'{k}.signal.p_value_perm', 'p')} | {num(result, f'{k}.noise.p_value', 'p')} | "
                     f"{num(result, f'{k}.seeds_per_level_needed', 'd')} | {num(result, f'{k}.variance_share', '.1%')} |")
    v = result["variance_share"]
    shares = ""
    if v["noise"] is not None:
        shares = (f"Of the Signal arm's variance, seed noise accounts for {num(result, 'variance_share.noise', '.1%')} "
                  f"and what the additive model leaves (interactions) for {num(result, 'variance_share.rest', '.1%')}. ")
    rows = "\n".join(effects) + "\n\n" + "\n".join(tests)
    return f"""## The framework, with statistics

Effects are in percentage points at epoch {_ep(result)}; bold rows clear the noise baseline at
alpha = {num(result, 'alpha', 'g')}.

{rows}

* *Effect*: best minus worst group mean. It is never negative, so even pure noise gives a positive one:
  the *pure-noise expectation* is what seed noise alone would give for the same levels and runs per level.
* *Ratio*: Signal effect over Noise effect, the write-up's "{ref(writeup.RATIOS['hidden_size'], 'ratio.hidden_size')}X";
  its interval resamples both arms.
* *p vs noise*: the Signal arm's additive ANOVA, each hyperparameter's mean square over the Noise arm's
  variance. *p permutation* shuffles the hyperparameter's labels within the cells of the others and
  borrows nothing from the Noise arm. *p placebo* runs the same ANOVA on the Noise arm's placebo labels;
  it should not be small.
* *Seeds per level needed*: runs per level that a two-level comparison needs to detect a difference as
  large as the Signal effect with {num(result, 'mde.power', '.0%')} power, given the Noise arm's SD.
* *Variance share*: omega squared of the Signal arm with the Noise variance as error. {shares}Shares are
  estimates: a negative one means "no more than noise", and small arms give erratic values.
"""


def caption_effects() -> str:
    return (f"<p class='caption'><strong>Effects with {const(CI_LEVEL, 'ci_level', '.0%')} bootstrap "
            "intervals.</strong> Signal and Noise effect of each hyperparameter; the cross marks the effect pure "
            "seed noise is expected to produce.</p>")


def _position(q: float, v, interval) -> str:
    if v is None:
        return "n/a"
    if interval and None not in interval:
        lo, hi = interval
        return "inside" if lo <= q <= hi else "build higher" if q < lo else "build lower"
    return "build higher" if v > q else "build lower" if v < q else "equal"


def writeup_table(result: dict, setup: dict) -> str:
    """'The write-up found / this build finds' for the headline numbers, with this build's intervals."""
    rows = ["| quantity | the write-up found (Signal / Noise) | this build finds: Signal | this build finds: Noise | "
            "quoted value against this build |", "|---|---|---|---|---|"]
    for i, h in enumerate(writeup.HEADLINES):
        cells, readings = [], []
        for key, q in ((h.key_signal, h.signal), (h.key_noise, h.noise)):
            ci_key = key.rsplit(".", 1)[0] + ".ci" if key.endswith(".effect") else None
            cells.append(num(result, key) + (" " + ci(result, ci_key) if ci_key else " (no interval)"))
            readings.append(_position(q, get(result, key), get(result, ci_key) if ci_key else None))
        rows.append(f"| {h.label} | {ref(h.signal, f'headline.{i}.signal')} / {ref(h.noise, f'headline.{i}.noise')} | "
                    f"{cells[0]} | {cells[1]} | {readings[0]} / {readings[1]} |")
    for p, q in writeup.RATIOS.items():
        if p in result["params"]:
            e = result["params"][p]
            rows.append(f"| {label(p)}: Signal over Noise effect | {ref(q, f'ratio.{p}')} | "
                        f"{num(result, f'params.{p}.ratio', ratio_spec)} "
                        f"{ci(result, f'params.{p}.ratio_ci', ratio_spec)} | | "
                        f"{_position(q, e['ratio'], e['ratio_ci'])} |")
    order = sorted(result["params"], key=lambda p: -result["params"][p]["signal"]["effect"])
    same = [p for p in writeup.RANKING if p in order] == order
    ranking = (f"This build ranks the Signal effects in the write-up's order ({', '.join(label(p) for p in order)})."
               if same else f"This build ranks the Signal effects {', '.join(label(p) for p in order)}, not in the "
               f"write-up's order ({', '.join(label(p) for p in writeup.RANKING)}).")
    caveat = ("" if setup["is_study_size"] else
              " This build is smaller than the write-up's study, so its values are not expected to match; the "
              "interesting comparison is the pattern, and whether each interval is wide enough to say anything.")
    return f"""## The write-up's numbers against this build's

The write-up's values are read off plots by eye; where it quotes a value twice with different numbers,
its summary statement is used. *Inside* means the write-up's value lies within this build's
{const(CI_LEVEL, 'ci_level', '.0%')} interval; ranges of runs get no interval, since a bootstrap cannot
resample the extremes a range is made of.{caveat}

{chr(10).join(rows)}

{ranking}
"""


# ---------------------------------------------------------------------------- what the write-up lacked
def _mde_at(result: dict, p: str) -> str:
    """The tagged minimal detectable difference at ``p``'s (fewest) Signal runs per level."""
    n = get(result, _fewest(result, p))
    ns = result["mde"]["runs_per_group"]
    if result["mde"]["difference"] is None:
        return "n/a"
    if n in ns:
        return num(result, f"mde.difference.{ns.index(n)}")
    # beyond analyze's curve: the same computation at n
    value = float(power.mde_curve(result["noise"]["sd"], n, result["alpha"], result["mde"]["power"])[1][-1])
    return derived(value, f"mde_at.{p}", pp_spec(value))


def _placebo_failures(result: dict) -> list[str]:
    return [p for p, e in result["params"].items() if e["noise"]["p_value"] < result["alpha"]]


def _floor_text(result: dict) -> str:
    n = result["noise"]
    floor = n.get("test_set_floor_sd")
    if not floor:
        return "The table records no test-set size, so the floor cannot be computed."
    r = n["sd"] / floor
    if r > 1.5:
        rel = "well above it: seeds change more than which borderline test images come out right"
    elif r >= 0.7:
        rel = ("close to it: the seed-to-seed spread is about what independent coin flips on the borderline "
               "test images would give")
    else:
        rel = "below it: runs agree on more test images than independent errors would"
    return (f"With {num(result, 'noise.n_test', ',d')} test images at about {num(result, 'noise.mean')}% accuracy, "
            f"the binomial SD of a single accuracy is {num(result, 'noise.test_set_floor_sd', '.3f')} points: how "
            "precisely one accuracy measured on these images estimates accuracy on new digits. A difference of about "
            "this size between two models may owe as much to which images the test set happens to hold as to the "
            "models, however many seeds back it. The Noise arm's SD, "
            f"{num(result, 'noise.sd', '.3f')} points, is {derived(r, 'sd_over_floor', '.2f')} times the floor, {rel}.")


def lacking_section(result: dict) -> str:
    """p-values, intervals, the test-set floor and detectable effects: what reading plots cannot give."""
    fails = _placebo_failures(result)
    placebo = ("No placebo grouping of the Noise arm reaches significance, as it should not." if not fails else
               f"The placebo test is significant for {_names(fails)}: either chance (one test per hyperparameter at "
               f"alpha {num(result, 'alpha', 'g')} gives a false alarm now and then) or Noise runs that are not "
               "interchangeable, for example drifting with the order they ran in.")
    per = []
    for p, e in result["params"].items():
        need = (f"{num(result, f'params.{p}.seeds_per_level_needed', 'd')} runs per level"
                if e["seeds_per_level_needed"] else "more runs per level than any sweep can give")
        per.append(f"* {label(p)}: {num(result, _fewest(result, p), 'd')} runs per level detect about "
                   f"{_mde_at(result, p)} points; the observed Signal effect of "
                   f"{num(result, f'params.{p}.signal.effect')} points would need {need}.")
    cl = const(CI_LEVEL, "ci_level", ".0%")
    return f"""## What the write-up lacked

### p-values
Each Signal effect is tested against the Noise arm's variance (an additive ANOVA whose error term is the
seed variance, measured on other runs), and checked by a permutation test that assumes nothing about the
noise. {placebo}

### Intervals
Every effect and ratio carries a {cl} bootstrap interval (resampling runs within levels). For effects
close to the noise level these intervals lean high, because a best-minus-worst spread is biased upward;
the p-values, not the intervals, are the test. The Noise SD itself is known only to
{ci(result, 'noise.sd_ci', '.3f')} points from {num(result, 'noise.df', 'd')} degrees of freedom.

### The test-set floor
{_floor_text(result)}

### Detectable effects and seeds needed
The figure below gives the smallest difference between two levels that a two-sided test at alpha
{num(result, 'alpha', 'g')} detects with {num(result, 'mde.power', '.0%')} power, against runs per level,
for this build's seed SD.

{chr(10).join(per)}

A best-minus-worst effect over many levels compares the two extremes, so it needs somewhat more than
the two-level figure to stand out.
"""


def caption_mde(result: dict) -> str:
    return ("<p class='caption'><strong>Minimal detectable difference.</strong> Smallest true difference between two "
            f"level means found with {num(result, 'mde.power', '.0%')} power, against runs per level, for the Noise "
            "arm's SD (solid) and for the test-set floor alone (dashed). Dotted lines: each hyperparameter's observed "
            "Signal effect; a dot marks the runs per level it would need.</p>")


def fixed_seed(setup: dict) -> str:
    seed = f" ({setup_num(setup, 'signal_seed')})" if setup["signal_seed"] is not None else ""
    return f"""## What a fixed seed does not freeze

The Signal arm's design gives every run the same seed{seed}, which can suggest that its runs differ only
in their hyperparameters. They do not. A seed fixes the stream of random numbers, not which number ends
up where. A model with another hidden size or layer count has weight tensors of other shapes, so the
same stream fills them differently: its initial weights are a fresh draw, not a resized copy. The
shuffles of the training images are drawn from the same stream after the weights, so they shift too.
Runs that differ only in batch size start from identical weights and see the images in the same order,
but grouped into other batches, so their optimisation paths part after the first step.

So every Signal run carries its own draw of seed noise on top of its hyperparameters' effect, just as a
Noise run does. That is why the Noise arm's spread, measured with the same grouping, is the right
yardstick for the Signal arm's: both contain the same kind of noise, and only one contains the effects.
"""


def own_sweep() -> str:
    return """## How to read this for your own sweep

1. **Run a Noise arm.** Train your baseline config as many times as your sweep has runs, each with its
   own seed, and give each run a placebo label from your grid. It costs as much as the sweep, and it is
   the only direct measure of what your seeds alone do.
2. **Compare like with like.** Compute the same spread for both arms, with the same levels and runs per
   level. A best-minus-worst spread is never zero, even for pure noise, and it grows with the number of
   levels: compare it with the Noise arm's, or with the pure-noise expectation, not with zero.
3. **Read the p-value, then the interval.** A small p says the hyperparameter does something; the
   interval of the ratio says how much bigger than noise it is, and how sure that is.
4. **Use the final epoch.** Early spreads are large in both arms and mostly say how fast runs learn.
5. **Mind the floor.** Below the test-set floor, differences say more about the test images than about
   the models; a bigger test set, not more seeds, lowers it.
6. **Plan the seeds.** Before tuning further, look up on the detectable-difference curve how many runs
   per level the difference you care about needs.
"""


# ---------------------------------------------------------------------------- conclusions and methods
def conclusions(result: dict, setup: dict) -> str:
    """Conclusions whose wording follows the numbers: which hyperparameter matters most, which are
    indistinguishable from noise, whether the checks passed, and how far the build is from the study."""
    params = result["params"]
    by_effect = sorted(params, key=lambda p: -params[p]["signal"]["effect"])
    sig = [p for p in by_effect if params[p]["significant"]]
    rest = [p for p in by_effect if not params[p]["significant"]]
    out = []
    if sig:
        k = f"params.{sig[0]}"
        out.append(f"**{label(sig[0]).capitalize()} matters most** here: its Signal effect of "
                   f"{num(result, f'{k}.signal.effect')} points is {num(result, f'{k}.ratio', ratio_spec)} times the "
                   f"Noise effect ({const(CI_LEVEL, 'ci_level', '.0%')} interval "
                   f"{ci(result, f'{k}.ratio_ci', ratio_spec)}), "
                   f"{pval(result, f'{k}.signal.p_value')}.")
        if len(sig) > 1:
            more = ", ".join(f"{label(p)} {num(result, f'params.{p}.signal.effect')} points "
                             f"({pval(result, f'params.{p}.signal.p_value')})" for p in sig[1:])
            out.append(f"{_names(sig[1:])} also clear{'s' if len(sig) == 2 else ''} the noise baseline, with "
                       f"smaller effects: {more}.")
    else:
        out.append("**No hyperparameter clears the noise baseline** in this build.")
    if rest:
        detail = ", ".join(f"{label(p)} {pval(result, f'params.{p}.signal.p_value')}" for p in rest)
        each = [_mde_at(result, p) for p in rest]
        same_limit = len({SPAN_TEXT.sub(r"\1", x) for x in each}) == 1
        limits = each[0] if same_limit else ", ".join(f"{label(p)} {x}" for p, x in zip(rest, each))
        names = _names(rest)
        names = names[:2] + names[2].upper() + names[3:]            # it opens the sentence
        out.append(f"{names} {'is' if len(rest) == 1 else 'are'} indistinguishable from seed noise here "
                   f"({detail}). That does not show the effect is zero: with these runs per level, differences below "
                   f"about {limits} points would usually be missed.")
    same = [p for p in writeup.RANKING if p in by_effect] == by_effect
    out.append("The order of the Signal effects matches the write-up's." if same else
               "The order of the Signal effects differs from the write-up's "
               f"({', '.join(map(label, writeup.RANKING))}).")
    fails = _placebo_failures(result)
    out.append("The placebo check passed: no Noise grouping looks like an effect." if not fails else
               f"The placebo check flagged {_names(fails)}; treat the noise baseline with some suspicion.")
    alpha = result["alpha"]
    split = [p for p in by_effect if params[p]["signal"]["p_value_perm"] is not None
             and (params[p]["signal"]["p_value_perm"] < alpha) != params[p]["significant"]]
    if split:
        out.append(f"For {_names(split)} the permutation test and the test against the Noise variance disagree, "
                   "so that verdict rests on the assumption that every config has the Noise arm's seed variance.")
    s, n = result["signal"], result["noise"]
    q = _headline("signal.overall_spread_first")
    r = _ratio(s["overall_spread_first"], n["overall_spread_first"])
    quoted = f"the write-up: about {ref(q.signal, 'first.signal')} against {ref(q.noise, 'first.noise')} points"
    if r is not None and r > 1:
        out.append(f"As in the write-up, the Signal runs are more spread than the Noise runs after the first epoch, "
                   f"{derived(r, 'first_spread_ratio', ratio_spec(r))} times as much ({quoted}).")
    else:
        out.append(f"Unlike the write-up, the Signal runs are not more spread than the Noise runs after the first "
                   f"epoch ({quoted}).")
    if not setup["is_study_size"]:
        out.append(f"All of this is for the **{profile_name(setup)}** profile, smaller than the write-up's study; "
                   "its verdicts apply to this data and these sizes.")
    return "## Conclusions\n\n" + "\n".join(f"* {line}" for line in out) + "\n"


def methods(result: dict) -> str:
    """How the numbers were computed; the method notes are analyze's own."""
    items = "\n".join(f'* *{html.escape(k)}*: <span class="analyze-text">{html.escape(v)}</span>'
                      for k, v in result["methods"].items())
    return (f"## Methods\n\nAll numbers come from `signal-noise analyze` on the same table with its defaults "
            f"(bootstrap and permutation seed {num(result, 'seed', 'd')}, alpha {num(result, 'alpha', 'g')}, metric "
            f"<code>{html.escape(result['metric'])}</code> at epoch {_ep(result)}); the full result is embedded in "
            f"this file as JSON (element <code>#analysis-result</code>).\n\n{items}\n")


def embedded_json(result: dict) -> str:
    """The analysis result as an inert JSON block, for anyone checking the numbers."""
    text = json.dumps(result, allow_nan=False).replace("</", "<\\/")
    return f'<script type="application/json" id="analysis-result">{text}</script>'
