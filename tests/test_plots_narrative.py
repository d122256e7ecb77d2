"""The report's prose and figures on synthetic sweeps: wording that follows the numbers, every shown
number tagged with the value it came from, and figures that build for any grid."""
from __future__ import annotations

import copy
import html
import re

import numpy as np
import pytest
from matplotlib.figure import Figure

from signal_noise import narrative, numtags, plots, render, synth, verdicts, writeup
from signal_noise.analyze import DEFAULT_PARAMS, analyze_table, validate

SMALL_GRID = {"num_layers": (2, 3), "batch_size": (64, 128), "hidden_size": (10, 20, 30)}
TAGGED = re.compile(r'<span class="(?:num[^"]*|ref|analyze-text)"[^>]*>[^<]*</span>|<code>[^<]*</code>')
SPAN = re.compile(r'<span class="num" data-key="([^"]+)" data-spec="([^"]*)">([^<]*)</span>')


def _sweep(effects: dict, seed: int, grid=synth.GRID, tmp_path=None):
    table = synth.planted_sweep(np.random.default_rng(seed), effects, grid=grid)
    result = analyze_table(table, n_resamples=300, n_perm=299)
    path = tmp_path / "sweep.csv"
    table.to_csv(path, index=False)
    return table, result, render.describe_setup(path, "full", table)


@pytest.fixture(scope="module")
def hidden_only(tmp_path_factory):
    """A study-sized sweep where only hidden size does anything, and strongly."""
    return _sweep({"hidden_size": 20.0}, seed=3, tmp_path=tmp_path_factory.mktemp("h"))


@pytest.fixture(scope="module")
def nothing(tmp_path_factory):
    return _sweep({}, seed=11, tmp_path=tmp_path_factory.mktemp("n"))


def _all_text(result: dict, setup: dict) -> str:
    parts = [narrative.title(setup, result), narrative.motivation(), narrative.design(setup),
             narrative.setup_section(setup, result), verdicts.framework_table(result), verdicts.caption_effects(),
             narrative.spread_section(result), narrative.caption_spreads(), narrative.range_section(result),
             narrative.caption_final(result), verdicts.writeup_table(result, setup), verdicts.lacking_section(result),
             verdicts.caption_mde(result), verdicts.fixed_seed(setup), verdicts.own_sweep(),
             verdicts.conclusions(result, setup), verdicts.methods(result)]
    for p in result["params"]:
        parts += [narrative.param_section(result, p), narrative.caption_curves(result, p),
                  narrative.caption_parallel(result, p)]
    return "\n".join(parts)


def test_conclusions_name_the_param_that_matters(hidden_only):
    _, result, setup = hidden_only
    text = verdicts.conclusions(result, setup)
    assert "**Hidden size matters most**" in text
    assert "**Batch size** and **layer count** are indistinguishable from seed noise" in text
    assert "placebo check passed" in text
    assert "smaller than the write-up's study" not in text     # the synthetic sweep has the study's size


def test_conclusions_when_nothing_clears_the_baseline(nothing):
    _, result, setup = nothing
    assert not any(e["significant"] for e in result["params"].values())
    text = verdicts.conclusions(result, setup)
    assert "**No hyperparameter clears the noise baseline**" in text and "matters most" not in text
    assert "are indistinguishable from seed noise" in text and "does not show the effect is zero" in text


def test_wording_follows_flipped_checks(hidden_only):
    _, result, setup = hidden_only
    changed = copy.deepcopy(result)
    changed["params"]["batch_size"]["noise"]["p_value"] = 0.001                  # a placebo "effect"
    changed["params"]["hidden_size"]["signal"]["p_value_perm"] = 0.5             # the two tests disagree
    changed["signal"]["overall_spread_first"] = changed["noise"]["overall_spread_first"]
    text = verdicts.conclusions(changed, setup) + verdicts.lacking_section(changed)
    assert "placebo check flagged **batch size**" in text and "placebo test is significant for **batch size**" in text
    assert "For **hidden size** the permutation test and the test against the Noise variance disagree" in text
    assert "Unlike the write-up, the Signal runs are not more spread" in text
    assert "Unlike the write-up" not in verdicts.conclusions(result, setup)


def test_ranking_against_the_write_up(hidden_only):
    _, result, setup = hidden_only
    changed = copy.deepcopy(result)
    changed["params"]["num_layers"]["signal"]["effect"] = 99.0
    assert "differs from the write-up's" in verdicts.conclusions(changed, setup)
    assert "not in the write-up's order" in verdicts.writeup_table(changed, setup)


def test_every_shown_number_is_tagged_with_its_source(hidden_only, nothing):
    for _, result, setup in (hidden_only, nothing):
        text = _all_text(result, setup)
        spans = SPAN.findall(text)
        assert len(spans) > 100
        for key, spec, shown in spans:
            assert html.unescape(shown) == numtags.fmt(numtags.get(result, key), spec), key
        untagged = re.sub(r"(?m)^\d+\. ", "", TAGGED.sub("", text))   # ordered-list markers are syntax
        assert re.findall(r".{0,30}\d.{0,10}", untagged) == []


def test_p_values_and_small_numbers_display():
    assert numtags.fmt(0.0004, "p") == "< 0.001" and numtags.fmt(0.0123, "p") == "0.012"
    assert numtags.fmt(None, ".2f") == "n/a"
    assert numtags.pp_spec(0.0999) == ".2f" and numtags.pp_spec(0.047) == ".3f"
    assert numtags.ratio_spec(0.03) == ".2f" and numtags.ratio_spec(4.5) == ".1f" and numtags.ratio_spec(12) == ".0f"
    result = {"a": {"p": 0.0002, "q": 0.2}}
    assert numtags.pval(result, "a.p").startswith("p <") and numtags.pval(result, "a.q").startswith("p = ")


def test_write_up_keys_exist_in_the_analysis(hidden_only):
    _, result, _ = hidden_only
    for h in writeup.HEADLINES:
        assert isinstance(numtags.get(result, h.key_signal), float)
        assert isinstance(numtags.get(result, h.key_noise), float)
    assert set(writeup.RATIOS) == set(writeup.RANKING) == set(DEFAULT_PARAMS) == set(writeup.GROUP_MEAN_SPREAD)


def test_describe_setup_labels_a_tidy_table(hidden_only, tmp_path):
    table, result, setup = hidden_only
    assert setup["kind"] == "table" and setup["profile"] is None and setup["is_study_size"]
    assert "tidy results table" in narrative.title(setup, result)
    small = synth.planted_sweep(np.random.default_rng(0), {}, grid=SMALL_GRID, n_epochs=3)
    small.to_csv(tmp_path / "small.csv", index=False)
    setup = render.describe_setup(tmp_path / "small.csv", "tiny", small)
    assert not setup["is_study_size"] and setup["noise_seeds"] == 12 and setup["n_test"] == 10000


def test_figures_build_for_a_small_grid():
    table = synth.planted_sweep(np.random.default_rng(1), {"hidden_size": 6.0}, grid=SMALL_GRID, n_epochs=3)
    result = analyze_table(table, n_resamples=200, n_perm=199)
    arms = validate(table, "acc", DEFAULT_PARAMS)
    figures = [plots.curves(arms, "hidden_size", result["epoch"]),
               plots.parallel(arms, DEFAULT_PARAMS, "batch_size", result["epoch"]),
               plots.spreads(result), plots.final_accuracy(arms, result), plots.effects(result), plots.mde(result)]
    assert all(isinstance(f, Figure) for f in figures)
    assert [len(f.axes) for f in figures] == [4, 2, 2, 2, 1, 1]
    curves = figures[0].axes[1]
    assert len(curves.get_legend().get_texts()) == len(SMALL_GRID["hidden_size"])
