"""Uncertainty and power: bootstrap intervals, the test-set floor, seeds needed, detectable effects.

Pure functions over numpy arrays, the random generator passed in explicitly; shapes as in ``stats``.

Bootstrap intervals use ``scipy.stats.bootstrap`` with the percentile method. BCa was tried and
covered worse on sweeps shaped like the study (300 simulated sweeps each, 95% nominal, true
best-minus-worst spread in SEs of a difference of two level means): 6 SE over 7 levels of 30 runs,
percentile 94% vs BCa 87%; 24 SE over 10 levels of 21, 96% vs 91%; 6 SE over 3 levels of 70, 95% vs
93%; only at 3 SE did BCa do better (88% vs 82%). The effect size, max minus min of level means, is
non-smooth and biased upward: under pure noise its expectation is sigma / sqrt(n) * d2(k) > 0 (see
``stats.expected_noise_effect``), so small effects are overstated and their intervals undercover;
for an effect near the noise level the bootstrap adds its own upward bias and the percentile
interval can even lie wholly above the estimate. An interval for a Noise-arm effect never covers 0
(a range cannot be negative). Read small effects and their intervals against the expected noise
effect, not against zero; the p-values, not these intervals, are the test.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

from .stats import _codes


def _bootstrap(samples: tuple, statistic, rng: np.random.Generator, n_resamples: int,
               confidence: float) -> tuple[float, float]:
    if any(len(s) < 2 for s in samples):
        return (math.nan, math.nan)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        # a ratio whose resampled denominator is 0 gives inf or NaN bounds: reported as such, not warned
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        ci = stats.bootstrap(samples, statistic, method="percentile", vectorized=True, axis=-1,
                             n_resamples=n_resamples, confidence_level=confidence, rng=rng).confidence_interval
    return (float(ci.low), float(ci.high))


def _split(y: np.ndarray, labels: np.ndarray) -> tuple:
    y = np.asarray(y, dtype=float)
    _, codes = _codes(labels)
    return tuple(y[codes == i] for i in range(codes.max() + 1))


def _range_of_means(*groups: np.ndarray, axis: int = -1) -> np.ndarray:
    means = np.stack([g.mean(axis=axis) for g in groups])
    return means.max(0) - means.min(0)


def effect_ci(y: np.ndarray, labels: np.ndarray, rng: np.random.Generator, n_resamples: int = 2000,
              confidence: float = 0.95) -> tuple[float, float]:
    """Bootstrap interval for the effect size (max - min of level means).

    Runs are resampled within each level independently (one bootstrap sample per level).
    Args:
      y: (n_runs,) metric at one epoch; labels: (n_runs,).
    Returns:
      (low, high); NaNs when a level has fewer than 2 runs.
    """
    return _bootstrap(_split(y, labels), _range_of_means, rng, n_resamples, confidence)


def ratio_ci(y_signal: np.ndarray, labels_signal: np.ndarray, y_noise: np.ndarray, labels_noise: np.ndarray,
             rng: np.random.Generator, n_resamples: int = 2000, confidence: float = 0.95) -> tuple[float, float]:
    """Bootstrap interval for Signal effect / Noise effect, resampling both arms within levels.

    Args:
      y_signal, labels_signal: (n_signal,); y_noise, labels_noise: (n_noise,).
    Returns:
      (low, high); NaNs where a level has fewer than 2 runs.
    """
    sig, noi = _split(y_signal, labels_signal), _split(y_noise, labels_noise)
    k = len(sig)

    def ratio(*groups, axis=-1):
        with np.errstate(divide="ignore", invalid="ignore"):
            return _range_of_means(*groups[:k], axis=axis) / _range_of_means(*groups[k:], axis=axis)

    return _bootstrap(sig + noi, ratio, rng, n_resamples, confidence)


def sd_ci(y: np.ndarray, rng: np.random.Generator, n_resamples: int = 2000,
          confidence: float = 0.95) -> tuple[float, float]:
    """Bootstrap interval for the sample SD (ddof=1) of the Noise arm's metric. y: (n_runs,)."""
    return _bootstrap((np.asarray(y, dtype=float),), lambda x, axis=-1: np.std(x, axis=axis, ddof=1),
                      rng, n_resamples, confidence)


def test_set_floor_sd(accuracy: float, n_test: int, scale: float = 100.0) -> float:
    """SD of an accuracy that finite test-set sampling alone gives: sqrt(p (1 - p) / n_test).

    Args:
      accuracy: the observed accuracy in metric units (percent when scale=100, a fraction when 1).
      n_test: test-set size.
      scale: 100 for percent, 1 for a fraction.
    Returns:
      the SD in metric units (percentage points for a metric in percent).
    """
    p = float(accuracy) / scale
    return scale * math.sqrt(p * (1.0 - p) / int(n_test))


def seeds_per_level_needed(difference: float, sd: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Smallest n >= 2 per level at which a two-sided two-sample t-test reaches ``power``.

    d = |difference| / sd (Cohen's d with the Noise arm's SD), equal groups of n, statsmodels
    ``TTestIndPower``. Returns None when the difference is zero (no n suffices) or sd is not positive.
    """
    from statsmodels.stats.power import TTestIndPower

    if not (sd > 0) or not np.isfinite(difference) or difference == 0:
        return None
    d, solver = abs(difference) / sd, TTestIndPower()

    def achieved(n: int) -> float:
        value = solver.power(effect_size=d, nobs1=n, alpha=alpha, ratio=1.0)
        if np.isfinite(value):
            return float(value)
        # statsmodels' two-sided power can be NaN for large d (the far tail underflows); the upper tail
        # at alpha/2 is then all of it
        return float(solver.power(effect_size=d, nobs1=n, alpha=alpha / 2, ratio=1.0, alternative="larger"))

    if achieved(2) >= power:
        return 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        n = solver.solve_power(effect_size=d, alpha=alpha, power=power, ratio=1.0)
    if not np.isfinite(n):
        return None
    n = max(2, math.ceil(float(n) - 1e-9))
    while achieved(n) < power:  # the root is a float; make sure its ceiling really gets there
        n += 1
    while n > 2 and achieved(n - 1) >= power:
        n -= 1
    return n


def mde_curve(sd: float, n_max: int = 50, alpha: float = 0.05, power: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """Minimal detectable difference between two level means against runs per group.

    Returns:
      ns (n_max - 1,) = 2..n_max, and differences (n_max - 1,) in metric units: the smallest true
      difference a two-sided two-sample t-test at ``alpha`` detects with ``power``, given the seed SD.
    """
    from statsmodels.stats.power import TTestIndPower

    ns = np.arange(2, n_max + 1)
    solver = TTestIndPower()
    d = [solver.solve_power(effect_size=None, nobs1=int(n), alpha=alpha, power=power, ratio=1.0) for n in ns]
    return ns, np.asarray(d, dtype=float) * float(sd)
