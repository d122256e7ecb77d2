"""The write-up's quantities and their significance against the noise baseline.

Pure functions over numpy arrays; no I/O, no plotting. Shapes used throughout:
  acc:    (n_runs, n_epochs) metric per run and epoch (accuracy in percent in the study).
  y:      (n_runs,) the metric at one epoch; functions marked "vectorised" take (..., n_runs).
  labels: (n_runs,) the (possibly placebo) value of one hyperparameter for each run.
  design: mapping param -> (n_runs,) labels, one entry per hyperparameter of the sweep.

Uncertainty and power (bootstrap intervals, the test-set floor, seeds needed) live in ``power.py``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import integrate, stats


def _codes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    levels, codes = np.unique(np.asarray(labels), return_inverse=True)
    return levels, codes.reshape(-1)


def group_means(acc: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean metric of the runs at each level.

    Args:
      acc: (n_runs, n_epochs) or (n_runs,).
      labels: (n_runs,).
    Returns:
      levels (k,) sorted, and means (k, n_epochs) or (k,).
    """
    acc = np.asarray(acc, dtype=float)
    levels, codes = _codes(labels)
    onehot = np.eye(len(levels))[codes]                     # (n_runs, k)
    return levels, (onehot.T @ acc) / onehot.sum(0).reshape((-1,) + (1,) * (acc.ndim - 1))


def group_bands(acc: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each level's min-max band (the write-up's less-saturated band around a mean line).

    Returns:
      levels (k,), mins (k, n_epochs), maxs (k, n_epochs).
    """
    acc = np.asarray(acc, dtype=float)
    levels, codes = _codes(labels)
    mins = np.stack([acc[codes == i].min(0) for i in range(len(levels))])
    maxs = np.stack([acc[codes == i].max(0) for i in range(len(levels))])
    return levels, mins, maxs


def group_spread(acc: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Max minus min of per-label mean accuracy (the write-up's "group mean" variation).

    Args:
      acc: (n_runs, n_epochs) accuracy in percent, or (n_runs,).
      labels: (n_runs,) the hyperparameter value of each run.
    Returns:
      (n_epochs,) spread of group means, in the metric's units (a float for 1-D ``acc``).
    """
    _, means = group_means(acc, labels)
    return means.max(0) - means.min(0)


def effect_size(y: np.ndarray, labels: np.ndarray) -> float:
    """The write-up's effect size: the group-mean spread at one epoch. y: (n_runs,)."""
    return float(group_spread(np.asarray(y, dtype=float).reshape(-1), labels))


def overall_spread(acc: np.ndarray) -> np.ndarray:
    """Max minus min over all runs, per epoch. acc: (n_runs, n_epochs) -> (n_epochs,)."""
    acc = np.asarray(acc, dtype=float)
    return acc.max(0) - acc.min(0)


def curves_frame(acc: np.ndarray, labels: np.ndarray, epochs: np.ndarray | None = None) -> pd.DataFrame:
    """Tidy per-level learning curves for plotting: one row per (level, epoch).

    Args:
      acc: (n_runs, n_epochs); labels: (n_runs,); epochs: (n_epochs,) numbers, default 1..n_epochs.
    Returns:
      DataFrame with columns level, epoch, n, mean, min, max.
    """
    acc = np.asarray(acc, dtype=float)
    epochs = np.arange(1, acc.shape[1] + 1) if epochs is None else np.asarray(epochs)
    levels, means = group_means(acc, labels)
    _, mins, maxs = group_bands(acc, labels)
    counts = np.unique(np.asarray(labels), return_counts=True)[1]
    k, e = means.shape
    return pd.DataFrame({
        "level": np.repeat(levels, e), "epoch": np.tile(epochs, k), "n": np.repeat(counts, e),
        "mean": means.ravel(), "min": mins.ravel(), "max": maxs.ravel(),
    })


def spread_frame(acc: np.ndarray, labels: np.ndarray, epochs: np.ndarray | None = None) -> pd.DataFrame:
    """Tidy per-epoch spreads: one row per epoch.

    Returns:
      DataFrame with columns epoch, group_mean_spread, overall_spread, overall_min, overall_max.
    """
    acc = np.asarray(acc, dtype=float)
    epochs = np.arange(1, acc.shape[1] + 1) if epochs is None else np.asarray(epochs)
    return pd.DataFrame({
        "epoch": epochs, "group_mean_spread": group_spread(acc, labels),
        "overall_spread": overall_spread(acc), "overall_min": acc.min(0), "overall_max": acc.max(0),
    })


def main_effect_ss(y: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Between-level sum of squares sum_l n_l (mean_l - grand mean)^2, vectorised.

    On a balanced full grid this equals the Type II sum of squares of the additive ANOVA.
    Args:
      y: (..., n_runs); labels: (n_runs,).
    Returns:
      (...,) sums of squares.
    """
    y = np.asarray(y, dtype=float)
    levels, codes = _codes(labels)
    onehot = np.eye(len(levels))[codes]
    counts = onehot.sum(0)
    means = (y @ onehot) / counts
    return ((means - y.mean(-1, keepdims=True)) ** 2 * counts).sum(-1)


def additive_anova(y: np.ndarray, design: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Type II ANOVA of the additive model y ~ C(P1) + C(P2) + ... (statsmodels OLS + anova_lm).

    Works on unbalanced data too (Type II: each term adjusted for all the others).
    Returns:
      DataFrame indexed by param names plus "Residual", columns sum_sq, df, F, PR(>F).
    """
    from statsmodels.formula.api import ols
    from statsmodels.stats.anova import anova_lm

    names = list(design)
    frame = pd.DataFrame({f"x{i}": np.asarray(design[p]) for i, p in enumerate(names)})
    frame["y"] = np.asarray(y, dtype=float)
    formula = "y ~ " + " + ".join(f"C(x{i})" for i in range(len(names)))
    table = anova_lm(ols(formula, data=frame).fit(), typ=2)
    table.index = [names[int(t[3:-1])] if t.startswith("C(x") else t for t in table.index]
    return table


def noise_baseline_pvalue(ss, df, s2_noise, df_noise):
    """Upper tail of F = (ss/df) / s2_noise on (df, df_noise) degrees of freedom, vectorised.

    Where s2_noise is 0 (a noise arm with no spread), p is 0 for any ss > 0 and 1 otherwise.
    """
    ss, s2 = np.asarray(ss, dtype=float), np.asarray(s2_noise, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = (ss / df) / s2
    p = stats.f.sf(f, df, df_noise)
    return np.where(s2 > 0, p, np.where(ss > 0, 0.0, 1.0))


def signal_test(y: np.ndarray, design: Mapping[str, np.ndarray], s2_noise: float, df_noise: int) -> dict:
    """Does each hyperparameter change the Signal arm's metric? The primary test.

    Model: the additive ANOVA y ~ C(P1) + C(P2) + C(P3) on the Signal arm at one epoch, with
    F_P = (SS_P / df_P) / s2_noise, where s2_noise is the sample variance of the Noise arm's metric
    (df_noise = n_noise - 1), and p = P(F(df_P, df_noise) > F_P). Why this error term:
      * the Signal grid has one run per cell, so it has no replicate (pure error) term of its own;
      * the additive model's residual mixes the interactions with seed noise, so testing against it
        is conservative by an unknown amount when interactions exist;
      * the Noise arm measures exactly the seed variance, the thing a hyperparameter must beat;
      * SS_P and s2_noise come from different runs, so they are independent, and under H0 (no effect
        of P, seed noise with the Noise arm's variance) F_P is exactly F-distributed.
    SS_P is Type II, so other hyperparameters varying at the same time are adjusted for (on the
    balanced grid this is the plain between-level SS). The assumption is that the Noise arm's seed
    variance applies to every Signal config; ``permutation_pvalue`` is the check that drops it.

    Returns:
      {param: {"ss", "df", "F", "p_value"}}.
    """
    table = additive_anova(y, design)
    out = {}
    for p in design:
        ss, df = float(table.loc[p, "sum_sq"]), float(table.loc[p, "df"])
        out[p] = {"ss": ss, "df": df, "F": ss / df / s2_noise if s2_noise > 0 else math.inf,
                  "p_value": float(noise_baseline_pvalue(ss, df, s2_noise, df_noise))}
    return out


def placebo_test(y: np.ndarray, design: Mapping[str, np.ndarray]) -> dict:
    """The same additive ANOVA on the Noise arm's placebo labels, error = its own residual MS.

    Every Noise run trains the same config, so under i.i.d. seeds the labels are exchangeable and
    the ordinary F test with the additive model's residual mean square is exact (no interactions
    exist to pollute the residual). It should come out non-significant: a small p here means the
    labels were not placebo after all (or the runs are not i.i.d., e.g. drift over time).

    Returns:
      {param: {"ss", "df", "F", "p_value"}}.
    """
    table = additive_anova(y, design)
    return {p: {"ss": float(table.loc[p, "sum_sq"]), "df": float(table.loc[p, "df"]),
                "F": float(table.loc[p, "F"]), "p_value": float(table.loc[p, "PR(>F)"])} for p in design}


def strata_codes(design: Mapping[str, np.ndarray], exclude: str) -> np.ndarray:
    """(n_runs,) integer code of each run's combination of every param except ``exclude``."""
    others = [_codes(v)[1] for p, v in design.items() if p != exclude]
    if not others:
        return np.zeros(len(next(iter(design.values()))), dtype=int)
    return np.unique(np.stack(others, axis=1), axis=0, return_inverse=True)[1].reshape(-1)


def permutation_pvalue(y: np.ndarray, labels: np.ndarray, strata: np.ndarray, rng: np.random.Generator,
                       n_perm: int = 1999) -> float | None:
    """Within-strata permutation test of one hyperparameter, a check that assumes no noise model.

    P's labels are permuted within each combination of the other params (``strata``), which keeps
    their effects, and their interactions with each other, fixed. The statistic is the between-level
    SS of y after subtracting stratum means (= SS_P on the balanced grid). Under H0 (P does nothing
    in any stratum) the runs of a stratum are exchangeable, whatever the noise variance of each
    config, so p = (1 + #{T* >= T}) / (1 + n_perm) is valid without borrowing the Noise arm's SD.

    Args:
      y: (n_runs,); labels: (n_runs,); strata: (n_runs,) ints from ``strata_codes``.
    Returns:
      the p-value, or None when no stratum holds two different levels (nothing to permute).
    """
    y, strata = np.asarray(y, dtype=float), np.asarray(strata)
    _, codes = _codes(labels)
    if not any(len(np.unique(codes[strata == s])) > 1 for s in np.unique(strata)):
        return None
    _, s_codes = _codes(strata)
    s_means = np.bincount(s_codes, y) / np.bincount(s_codes)
    resid = y - s_means[s_codes]
    observed = main_effect_ss(resid, codes)
    # argsort of (stratum + uniform key) shuffles within strata; base maps sorted slots back to runs
    order = np.argsort(s_codes + rng.random((n_perm, len(y))), axis=1)
    base = np.argsort(s_codes, kind="stable")
    permuted = np.empty((n_perm, len(y)))
    permuted[:, base] = resid[order]
    null = main_effect_ss(permuted, codes)
    hits = np.sum(null >= observed - 1e-9 * max(1.0, abs(observed)))
    return float((1 + hits) / (1 + n_perm))


def expected_range(scales: np.ndarray) -> float:
    """E[max - min] of independent N(0, s_i^2) variables, by numerical integration.

    E[max] = int_0^inf (1 - F(x)) dx - int_-inf^0 F(x) dx with F(x) = prod Phi(x / s_i); by symmetry
    E[min] = -E[max]. For k unit scales this is the range constant d2(k) (1.128 for k=2, 3.078 for 10).
    """
    s = np.asarray(scales, dtype=float)
    if len(s) < 2:
        return 0.0
    cdf = lambda x: float(np.prod(stats.norm.cdf(x / s)))                         # noqa: E731
    upper = integrate.quad(lambda x: 1.0 - cdf(x), 0, np.inf)[0]
    lower = integrate.quad(cdf, -np.inf, 0)[0]
    return 2.0 * (upper - lower)


def expected_noise_effect(sigma: float, counts: np.ndarray) -> float:
    """Expected group-mean spread under pure noise: level means ~ N(mu, sigma^2 / n_l).

    For equal n this is sigma / sqrt(n) * E[range of k standard normals].
    Args:
      sigma: the seed SD; counts: (k,) runs per level.
    """
    return float(sigma) * expected_range(1.0 / np.sqrt(np.asarray(counts, dtype=float)))


def variance_shares(ss: Mapping[str, float], df: Mapping[str, float], ss_total: float, n: int,
                    s2_noise: float) -> dict:
    """Share of the Signal arm's variance explained by each param, by seed noise, and the rest.

    With MS_e = s2_noise (the Noise arm's seed variance) and the Signal arm's n runs:
      omega2_P = (SS_P - df_P * MS_e) / (SS_total + MS_e)       (omega squared, noise as error)
      noise    = n * MS_e / (SS_total + MS_e)                     (sigma2_noise / estimated total)
      rest     = 1 - sum_P omega2_P - noise
    (SS_total + MS_e) / n estimates the variance of a new Signal run, so the three parts add to 1;
    on the balanced grid rest = (SS_resid - df_resid * MS_e) / (SS_total + MS_e): what the additive
    model's residual holds beyond seed noise (interactions). Estimates are unbiased-ish, not clipped:
    a slightly negative share means "no more than noise" and reads as zero.

    Returns:
      {param: share, ..., "noise": share, "rest": share}.
    """
    denom = ss_total + s2_noise
    if denom <= 0:
        return {**{p: None for p in ss}, "noise": None, "rest": None}
    out = {p: (ss[p] - df[p] * s2_noise) / denom for p in ss}
    out["noise"] = n * s2_noise / denom
    out["rest"] = 1.0 - sum(out[p] for p in ss) - out["noise"]
    return out
