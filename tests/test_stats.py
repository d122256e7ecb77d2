"""signal_noise.stats and signal_noise.power: hand-sized fixtures, library agreement, calibration, power."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.power import TTestIndPower

from signal_noise import power, stats
from signal_noise.synth import GRID, grid_design, planted_sweep, standard_error

ACC = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 10.0]])
LAB = np.array(["a", "a", "b", "b"])
# a 2 x 2 grid, one run per cell, exactly additive: A moves y by 4, B by 2
Y22 = np.array([1.0, 3.0, 5.0, 7.0])
D22 = {"A": np.array([0, 0, 1, 1]), "B": np.array([0, 1, 0, 1])}


# ------------------------------------------------------------------ the write-up's quantities
def test_group_means_spreads_and_bands_by_hand():
    levels, means = stats.group_means(ACC, LAB)
    assert list(levels) == ["a", "b"]
    np.testing.assert_allclose(means, [[2, 3], [6, 8]])
    np.testing.assert_allclose(stats.group_spread(ACC, LAB), [4, 5])
    np.testing.assert_allclose(stats.overall_spread(ACC), [6, 8])
    _, lo, hi = stats.group_bands(ACC, LAB)
    np.testing.assert_allclose(lo, [[1, 2], [5, 6]])
    np.testing.assert_allclose(hi, [[3, 4], [7, 10]])
    assert stats.effect_size(ACC[:, 1], LAB) == 5.0


def test_group_means_agree_with_pandas():
    rng = np.random.default_rng(0)
    acc, lab = rng.normal(size=(40, 3)), rng.integers(0, 5, 40)
    levels, means = stats.group_means(acc, lab)
    expected = pd.DataFrame(acc).groupby(lab).mean()
    np.testing.assert_allclose(means, expected.to_numpy())
    np.testing.assert_array_equal(levels, expected.index)


def test_tidy_frames():
    curves = stats.curves_frame(ACC, LAB, epochs=np.array([1, 2]))
    assert list(curves.columns) == ["level", "epoch", "n", "mean", "min", "max"]
    row = curves[(curves.level == "b") & (curves.epoch == 2)].iloc[0]
    assert (row["n"], row["mean"], row["min"], row["max"]) == (2, 8.0, 6.0, 10.0)
    spread = stats.spread_frame(ACC, LAB)
    assert spread["epoch"].tolist() == [1, 2]
    assert spread["group_mean_spread"].tolist() == [4.0, 5.0] and spread["overall_spread"].tolist() == [6.0, 8.0]


# ------------------------------------------------------------------ ANOVA and the noise baseline
def test_main_effect_ss_by_hand_and_vectorised():
    assert stats.main_effect_ss(Y22, D22["A"]) == 16.0      # means 2, 6 around 4: 2*4 + 2*4
    assert stats.main_effect_ss(Y22, D22["B"]) == 4.0
    np.testing.assert_allclose(stats.main_effect_ss(np.stack([Y22, 2 * Y22]), D22["A"]), [16, 64])


def test_additive_anova_by_hand():
    table = stats.additive_anova(Y22, D22)
    assert table.loc["A", "sum_sq"] == pytest.approx(16) and table.loc["B", "sum_sq"] == pytest.approx(4)
    assert table.loc["A", "df"] == 1 and table.loc["Residual", "sum_sq"] == pytest.approx(0, abs=1e-20)


def test_main_effect_ss_is_type2_ss_on_the_balanced_grid():
    rng = np.random.default_rng(1)
    design = grid_design({"a": (1, 2, 3), "b": (10, 20, 30, 40), "c": ("x", "y")})
    y = rng.normal(size=24) + design["a"]
    table = stats.additive_anova(y, design)
    for p, labels in design.items():
        assert table.loc[p, "sum_sq"] == pytest.approx(stats.main_effect_ss(y, labels))


def test_signal_test_by_hand():
    out = stats.signal_test(Y22, D22, s2_noise=4.0, df_noise=10)
    assert out["A"]["F"] == pytest.approx(4.0)                # (16 / 1) / 4
    assert out["A"]["p_value"] == pytest.approx(sps.f.sf(4.0, 1, 10))
    assert out["B"]["F"] == pytest.approx(1.0)
    assert stats.signal_test(Y22, D22, 0.0, 10)["A"]["p_value"] == 0.0


def test_noise_baseline_pvalue_edges():
    np.testing.assert_allclose(stats.noise_baseline_pvalue([0.0, 1.0], 2, 0.0, 9), [1.0, 0.0])
    assert stats.noise_baseline_pvalue(6.0, 3, 2.0, 20) == pytest.approx(sps.f.sf(1.0, 3, 20))


def test_placebo_test_is_scipys_one_way_anova_for_one_factor():
    rng = np.random.default_rng(2)
    lab = np.repeat([1, 2, 3, 4], 6)
    y = rng.normal(size=24)
    out = stats.placebo_test(y, {"P": lab})["P"]
    expected = sps.f_oneway(*(y[lab == v] for v in (1, 2, 3, 4)))
    assert out["F"] == pytest.approx(expected.statistic) and out["p_value"] == pytest.approx(expected.pvalue)


def test_signal_test_handles_an_unbalanced_design():
    rng = np.random.default_rng(3)
    design = {"a": rng.integers(0, 3, 50), "b": rng.integers(0, 4, 50)}
    y = rng.normal(size=50) + 3.0 * design["a"]
    out = stats.signal_test(y, design, 1.0, 99)
    assert out["a"]["p_value"] < 1e-6 and out["b"]["p_value"] > 1e-3


# ------------------------------------------------------------------ permutation
def test_strata_codes():
    np.testing.assert_array_equal(stats.strata_codes(D22, "A"), [0, 1, 0, 1])
    np.testing.assert_array_equal(stats.strata_codes({"A": D22["A"]}, "A"), [0, 0, 0, 0])


def test_permutation_within_strata_by_hand():
    # within each B stratum the runs are (-2, +2) after removing stratum means; of the 4 assignments,
    # 2 give SS_A = 16 (as observed) and 2 give 0: exact p = 1/2
    p = stats.permutation_pvalue(Y22, D22["A"], stats.strata_codes(D22, "A"), np.random.default_rng(0), 19999)
    assert p == pytest.approx(0.5, abs=0.015)


def test_permutation_agrees_with_scipy_exact_test():
    rng = np.random.default_rng(4)
    y, lab = rng.normal(size=8), np.repeat([0, 1], 4)

    def ss(a, b, axis=-1):
        return stats.main_effect_ss(np.concatenate([a, b], axis=axis), lab)

    exact = sps.permutation_test((y[:4], y[4:]), ss, alternative="greater", vectorized=True).pvalue
    ours = stats.permutation_pvalue(y, lab, np.zeros(8, int), np.random.default_rng(5), 19999)
    assert ours == pytest.approx(exact, abs=0.015)


def test_permutation_keeps_other_params_and_skips_when_nothing_to_permute():
    rng = np.random.default_rng(6)
    design = grid_design({"a": (0, 1, 2), "b": (0, 1, 2, 3, 4)})
    y = 10.0 * design["b"] + rng.normal(size=15)         # a huge effect of b, none of a
    assert stats.permutation_pvalue(y, design["a"], stats.strata_codes(design, "a"), rng, 999) > 0.05
    assert stats.permutation_pvalue(y, design["b"], stats.strata_codes(design, "b"), rng, 999) < 0.01
    # every stratum holds one level only: nothing to permute
    assert stats.permutation_pvalue(y, design["a"], np.arange(15), rng, 99) is None


# ------------------------------------------------------------------ expected noise effect, shares
def test_expected_range_known_values():
    assert stats.expected_range([1, 1]) == pytest.approx(2 / math.sqrt(math.pi), rel=1e-6)
    assert stats.expected_range([1, 1, 1]) == pytest.approx(3 / math.sqrt(math.pi), rel=1e-6)
    assert stats.expected_range([1] * 10) == pytest.approx(3.0775, abs=1e-3)   # d2(10) of QC tables
    # two unequal scales: E|X1 - X2| = sqrt(2/pi) * sqrt(s1^2 + s2^2)
    assert stats.expected_range([1, 2]) == pytest.approx(math.sqrt(2 / math.pi) * math.sqrt(5), rel=1e-6)
    assert stats.expected_range([1]) == 0.0


def test_expected_noise_effect_matches_simulation():
    sigma, counts = 0.2, np.array([21] * 10)
    assert stats.expected_noise_effect(sigma, counts) == pytest.approx(0.2 / math.sqrt(21) * 3.0775, rel=1e-3)
    rng = np.random.default_rng(7)
    means = rng.normal(0, sigma / np.sqrt([5, 10, 40]), size=(100_000, 3))
    sim = (means.max(1) - means.min(1)).mean()
    assert stats.expected_noise_effect(sigma, [5, 10, 40]) == pytest.approx(sim, rel=0.01)


def test_variance_shares_by_hand():
    out = stats.variance_shares({"A": 16.0, "B": 4.0}, {"A": 1, "B": 1}, ss_total=21.0, n=4, s2_noise=1.0)
    assert out["A"] == pytest.approx(15 / 22) and out["B"] == pytest.approx(3 / 22)
    assert out["noise"] == pytest.approx(4 / 22)
    assert out["A"] + out["B"] + out["noise"] + out["rest"] == pytest.approx(1.0)
    assert out["rest"] == pytest.approx((1.0 - 1 * 1.0) / 22)   # SS_resid 1 with df_resid 1


# ------------------------------------------------------------------ uncertainty and power
def test_effect_ci_is_scipys_bootstrap_and_collapses_without_spread():
    rng = np.random.default_rng(8)
    y, lab = rng.normal(size=30), np.repeat([0, 1, 2], 10)
    ours = power.effect_ci(y, lab, np.random.default_rng(9), 500)
    ref = sps.bootstrap(tuple(y[lab == i] for i in range(3)),
                        lambda *g, axis=-1: np.ptp(np.stack([x.mean(axis) for x in g]), axis=0),
                        vectorized=True, axis=-1, n_resamples=500, method="percentile",
                        rng=np.random.default_rng(9)).confidence_interval
    assert ours == pytest.approx((ref.low, ref.high))
    assert power.effect_ci(np.repeat([1.0, 3.0], 5), np.repeat([0, 1], 5), rng, 200) == (2.0, 2.0)
    assert all(math.isnan(v) for v in power.effect_ci([1.0, 2.0, 3.0], [0, 0, 1], rng, 200))


def test_ratio_and_sd_intervals():
    rng = np.random.default_rng(10)
    lab = np.repeat([0, 1, 2], 40)
    y_sig = rng.normal(size=120) + lab * 1.0
    y_noise = rng.normal(size=120)
    lo, hi = power.ratio_ci(y_sig, lab, y_noise, lab, rng, 1000)
    ratio = stats.effect_size(y_sig, lab) / stats.effect_size(y_noise, lab)
    assert lo < ratio < hi and lo > 1
    y = rng.normal(0, 2.0, size=210)
    lo, hi = power.sd_ci(y, rng, 2000)
    s, df = np.std(y, ddof=1), 209
    chi = (s * math.sqrt(df / sps.chi2.ppf(0.975, df)), s * math.sqrt(df / sps.chi2.ppf(0.025, df)))
    assert lo < s < hi and lo == pytest.approx(chi[0], rel=0.05) and hi == pytest.approx(chi[1], rel=0.05)


def test_test_set_floor():
    assert power.test_set_floor_sd(98.0, 10000) == pytest.approx(100 * math.sqrt(0.98 * 0.02 / 10000))
    assert power.test_set_floor_sd(0.5, 100, scale=1.0) == pytest.approx(0.05)


def test_seeds_per_level_needed_agrees_with_statsmodels():
    assert power.seeds_per_level_needed(1.0, 1.0) == 17       # the textbook n for d = 1
    assert power.seeds_per_level_needed(-0.5, 1.0) == 64       # d = 0.5, sign ignored
    solver = TTestIndPower()
    for diff in (0.05, 0.3, 1.44):
        n = power.seeds_per_level_needed(diff, 0.2)
        assert solver.power(diff / 0.2, n, 0.05) >= 0.8 and (n == 2 or solver.power(diff / 0.2, n - 1, 0.05) < 0.8)
    assert power.seeds_per_level_needed(50.0, 1.0) == 2
    assert power.seeds_per_level_needed(0.0, 1.0) is None and power.seeds_per_level_needed(1.0, 0.0) is None


def test_mde_curve():
    ns, mde = power.mde_curve(0.2, n_max=30)
    assert ns[0] == 2 and ns[-1] == 30 and np.all(np.diff(mde) < 0)
    i = list(ns).index(17)
    assert TTestIndPower().power(mde[i] / 0.2, 17, 0.05) == pytest.approx(0.8, abs=1e-4)
    assert mde[i] == pytest.approx(0.2 * 0.99, abs=0.005)       # d ~ 0.99 at n = 17


# ------------------------------------------------------------------ calibration and power on study-shaped sweeps
DESIGN = grid_design(GRID)
N_RUNS = len(DESIGN["hidden_size"])


def _signal_pvalues(y_signal: np.ndarray, y_noise: np.ndarray) -> dict:
    """The pipeline's primary p-value, vectorised over simulated sweeps (rows)."""
    s2 = y_noise.var(axis=-1, ddof=1)
    return {p: stats.noise_baseline_pvalue(stats.main_effect_ss(y_signal, lab), len(GRID[p]) - 1, s2,
                                           y_noise.shape[-1] - 1) for p, lab in DESIGN.items()}


def test_vectorised_pvalue_is_the_pipelines():
    rng = np.random.default_rng(11)
    y_sig, y_noise = rng.normal(98, 0.2, N_RUNS), rng.normal(98, 0.2, N_RUNS)
    fast = _signal_pvalues(y_sig, y_noise)
    slow = stats.signal_test(y_sig, DESIGN, float(np.var(y_noise, ddof=1)), N_RUNS - 1)
    for p in DESIGN:
        assert float(fast[p]) == pytest.approx(slow[p]["p_value"], rel=1e-8)


def test_calibration_of_the_noise_baseline_f_test():
    rng = np.random.default_rng(12)
    sims = 2000
    y_sig, y_noise = rng.normal(98, 0.2, (sims, N_RUNS)), rng.normal(98, 0.2, (sims, N_RUNS))
    rates = {p: float(np.mean(pv < 0.05)) for p, pv in _signal_pvalues(y_sig, y_noise).items()}
    for p, rate in rates.items():
        assert 0.02 <= rate <= 0.09, (p, rate)


def test_calibration_on_generated_null_sweeps():
    """200 whole null sweeps from the generator, final epoch, both the primary and the placebo test."""
    rng = np.random.default_rng(13)
    finals = []
    for _ in range(200):
        df = planted_sweep(rng, n_test=None)
        last = df[df.epoch == df.epoch.max()]
        finals.append((last[last.arm == "signal"].acc.to_numpy(), last[last.arm == "noise"]))
    y_sig = np.stack([f[0] for f in finals])
    y_noise = np.stack([f[1].acc.to_numpy() for f in finals])
    for p, pv in _signal_pvalues(y_sig, y_noise).items():
        assert 0.02 <= np.mean(pv < 0.05) <= 0.09, p
    # placebo: additive ANOVA on the noise arm with its own residual, vectorised (balanced labels)
    hits = {p: 0 for p in GRID}
    for _, noise in finals:
        y = noise.acc.to_numpy()
        noise_design = {p: noise[p].to_numpy() for p in GRID}
        ss = {p: stats.main_effect_ss(y, lab) for p, lab in noise_design.items()}
        df_res = N_RUNS - 1 - sum(len(GRID[p]) - 1 for p in GRID)
        ms_res = (((y - y.mean()) ** 2).sum() - sum(ss.values())) / df_res
        for p in GRID:
            hits[p] += sps.f.sf(ss[p] / (len(GRID[p]) - 1) / ms_res, len(GRID[p]) - 1, df_res) < 0.05
    for p in GRID:
        assert 0.02 <= hits[p] / 200 <= 0.09, p


def test_placebo_vectorised_formula_is_statsmodels():
    rng = np.random.default_rng(14)
    y = rng.normal(size=N_RUNS)
    ss = {p: stats.main_effect_ss(y, lab) for p, lab in DESIGN.items()}
    df_res = N_RUNS - 1 - sum(len(GRID[p]) - 1 for p in GRID)
    ms_res = (((y - y.mean()) ** 2).sum() - sum(ss.values())) / df_res
    out = stats.placebo_test(y, DESIGN)
    for p in GRID:
        assert out[p]["F"] == pytest.approx(ss[p] / (len(GRID[p]) - 1) / ms_res)


def test_calibration_of_the_permutation_test():
    rng = np.random.default_rng(15)
    strata = {p: stats.strata_codes(DESIGN, p) for p in GRID}
    hits = {p: 0 for p in GRID}
    for _ in range(200):
        y = rng.normal(98, 0.2, N_RUNS)
        for p in GRID:
            hits[p] += stats.permutation_pvalue(y, DESIGN[p], strata[p], rng, 199) < 0.05
    for p in GRID:
        assert 0.02 <= hits[p] / 200 <= 0.09, (p, hits[p])


def test_power_of_a_six_se_effect():
    """A 6-SE best-minus-worst effect (SE of a difference of two level means) is found at p < 0.01."""
    rng = np.random.default_rng(16)
    sims, sd = 500, 0.2
    for p, levels in GRID.items():
        k = len(levels)
        offsets = (np.arange(k) / (k - 1) - 0.5) * 6 * standard_error(sd, N_RUNS // k)
        shift = offsets[np.searchsorted(levels, DESIGN[p])]
        y_sig = rng.normal(98, sd, (sims, N_RUNS)) + shift
        y_noise = rng.normal(98, sd, (sims, N_RUNS))
        pv = _signal_pvalues(y_sig, y_noise)
        assert np.mean(pv[p] < 0.01) >= 0.95, p
        for q in GRID:
            if q != p:
                assert np.mean(pv[q] < 0.05) <= 0.09, (p, q)


def test_synth_plants_the_effect_it_says():
    sd = 0.2
    df = planted_sweep(np.random.default_rng(17), {"hidden_size": 6.0}, noise_sd=sd)
    assert len(df) == 4200 and set(df.arm) == {"signal", "noise"} and df.epoch.max() == 10
    sig = df[(df.arm == "signal") & (df.epoch == 10)]
    noise = df[(df.arm == "noise") & (df.epoch == 10)]
    assert sig[["num_layers", "batch_size", "hidden_size"]].drop_duplicates().shape[0] == 210
    assert sorted(map(tuple, noise[list(GRID)].to_numpy())) == sorted(map(tuple, sig[list(GRID)].to_numpy()))
    assert noise.acc.std() == pytest.approx(sd, rel=0.15) and 97.5 < noise.acc.mean() < 98.5
    first = df[(df.arm == "noise") & (df.epoch == 1)].acc
    assert first.mean() < 92 and first.std() > 4 * sd
    means = sig.groupby("hidden_size").acc.mean()
    assert means.iloc[-1] - means.iloc[0] == pytest.approx(6 * standard_error(sd, 21), abs=3 * standard_error(sd, 21))
    with pytest.raises(ValueError):
        planted_sweep(np.random.default_rng(0), {"dropout": 1.0})


def test_power_on_generated_sweeps():
    """Study-shaped sweeps from the generator: 6 SE on hidden size is found at p < 0.01 nearly always."""
    rng = np.random.default_rng(18)
    y_sig, y_noise = [], []
    for _ in range(100):
        df = planted_sweep(rng, {"hidden_size": 6.0}, n_test=None)
        last = df[df.epoch == 10]
        y_sig.append(last[last.arm == "signal"].acc.to_numpy())
        y_noise.append(last[last.arm == "noise"].acc.to_numpy())
    pv = _signal_pvalues(np.stack(y_sig), np.stack(y_noise))
    assert np.mean(pv["hidden_size"] < 0.01) >= 0.95
    assert np.mean(pv["num_layers"] < 0.05) <= 0.12 and np.mean(pv["batch_size"] < 0.05) <= 0.12
