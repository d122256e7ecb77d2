"""The report's prose from the framework table on: the statistics the write-up lacked, and the
conclusions, generated from the analysis so that no number in it is typed by hand.

Each function takes the result dict of ``analyze.analyze_table`` (and the ``setup`` dict of
``render.describe_setup``) and returns Markdown; numbers are tagged by ``numtags``.
"""
from __future__ import annotations

import html
import json

from . import power, writeup
from .narrative import profile_name
from .numtags import (CI_LEVEL, SPAN_TEXT, epoch_text, headline, safe_ratio, ci, const, derived, get, num, pp_spec, pval,
                      ratio_spec, ref, setup_num)
from .plots import label


def _names(params: list[str]) -> str:
    names = [f"**{label(p)}**" for p in params]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _fewest(result: dict, p: str) -> str:
    """Key of the smallest runs-per-level count of ``p``'s Signal arm."""
    counts = result["params"][p]["signal"]["runs_per_level"]
    return f"params.{p}.signal.runs_per_level.{counts.index(min(counts))}"


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

Effects are in percentage points at epoch {epoch_text(result)}; bold rows clear the noise baseline at
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
    q = headline("signal.overall_spread_first")
    r = safe_ratio(s["overall_spread_first"], n["overall_spread_first"])
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
            f"<code>{html.escape(result['metric'])}</code> at epoch {epoch_text(result)}); the full result is embedded in "
            f"this file as JSON (element <code>#analysis-result</code>).\n\n{items}\n")


def embedded_json(result: dict) -> str:
    """The analysis result as an inert JSON block, for anyone checking the numbers."""
    text = json.dumps(result, allow_nan=False).replace("</", "<\\/")
    return f'<script type="application/json" id="analysis-result">{text}</script>'
