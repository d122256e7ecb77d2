"""Synthetic sweeps shaped like the write-up's study, with effects planted where the caller says.

Used by the tests (power and calibration) and handy for trying the analysis without training.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

# the write-up's grid: 3 x 7 x 10 = 210 cells, one Signal run each
GRID: dict[str, tuple] = {
    "num_layers": (2, 3, 4),
    "batch_size": (64, 100, 128, 200, 256, 400, 512),
    "hidden_size": (10, 20, 30, 40, 50, 60, 70, 80, 90, 100),
}


def grid_design(grid: Mapping[str, tuple] = GRID) -> dict[str, np.ndarray]:
    """Every combination of the grid's levels, one run per cell: {param: (n_cells,) labels}."""
    names = list(grid)
    mesh = np.meshgrid(*[np.asarray(grid[p]) for p in names], indexing="ij")
    return {p: m.ravel() for p, m in zip(names, mesh)}


def standard_error(noise_sd: float, n_per_level: int) -> float:
    """SE of the difference between two level means of n runs each: noise_sd * sqrt(2 / n)."""
    return float(noise_sd) * np.sqrt(2.0 / n_per_level)


def planted_sweep(rng: np.random.Generator, effects_se: Mapping[str, float] | None = None,
                  grid: Mapping[str, tuple] = GRID, n_epochs: int = 10, noise_sd: float = 0.2,
                  final_mean: float = 98.0, first_mean: float = 90.0, early_boost: float = 8.0,
                  n_test: int | None = 10000) -> pd.DataFrame:
    """A tidy table of a Signal arm over the full grid plus a Noise arm with the same label triples.

    Effects: for param P with k levels of n = n_cells / k Signal runs each, a planted effect of
    ``effects_se[P]`` = m means the true level means at the final epoch rise linearly over the levels
    (in the grid's order) from -m*SE/2 to +m*SE/2, so best minus worst = m * SE, where
    SE = noise_sd * sqrt(2 / n) is the standard error of the difference between two level means of
    n runs each (``standard_error``). Effects are additive over params; params not named get none.
    Earlier epochs scale effects and noise up by 1 + early_boost * (exp(-(e-1)/2) - exp(-(E-1)/2)),
    which is exactly 1 at the final epoch E, so the final-epoch noise SD is ``noise_sd``.

    Noise arm: the same label triples (shuffled), but every run has the same true mean (no effects);
    only the seed noise differs. Seed noise is a per-run level plus a per-epoch wobble (correlation
    0.64 between epochs), i.i.d. between runs in both arms.

    Args:
      rng: the random generator (seeds are drawn from it too).
      effects_se: {param: planted best-minus-worst difference at the final epoch, in SEs}.
      grid: {param: levels}; n_epochs: epochs 1..n_epochs; noise_sd: final-epoch seed SD (metric units).
      final_mean, first_mean: the learning curve's mean accuracy (percent) at the last and first epoch.
      n_test: written as column cfg_n_test when not None.
    Returns:
      DataFrame, one row per (run, epoch): run_id, arm, epoch, acc, seed, the params, [cfg_n_test].
    """
    effects_se = dict(effects_se or {})
    unknown = set(effects_se) - set(grid)
    if unknown:
        raise ValueError(f"planted effects for params not in the grid: {sorted(unknown)}")
    design = grid_design(grid)
    n = len(next(iter(design.values())))
    epochs = np.arange(1, n_epochs + 1)
    decay = np.exp(-(epochs - 1) / 2.0)
    curve = final_mean + (first_mean - final_mean) * (decay - decay[-1]) / (1.0 - decay[-1] if n_epochs > 1 else 1.0)
    boost = 1.0 + early_boost * (decay - decay[-1])                                     # (n_epochs,)

    signal_shift = np.zeros(n)
    for p, m in effects_se.items():
        k = len(grid[p])
        se = standard_error(noise_sd, n // k)
        offsets = (np.arange(k) / (k - 1) - 0.5) * m * se
        index = {v: i for i, v in enumerate(grid[p])}
        signal_shift += offsets[[index[v] for v in design[p]]]

    def arm(name: str, shift: np.ndarray, labels: dict) -> pd.DataFrame:
        z = 0.8 * rng.standard_normal((n, 1)) + 0.6 * rng.standard_normal((n, n_epochs))  # var 1, corr .64
        acc = np.clip(curve + boost * (shift[:, None] + noise_sd * z), 0.0, 100.0)
        seeds = rng.integers(0, 2**31, n)
        frame = pd.DataFrame({
            "run_id": np.repeat([f"{name}-{i:03d}" for i in range(n)], n_epochs),
            "arm": name, "epoch": np.tile(epochs, n), "acc": acc.ravel(), "seed": np.repeat(seeds, n_epochs),
            **{p: np.repeat(v, n_epochs) for p, v in labels.items()},
        })
        if n_test is not None:
            frame["cfg_n_test"] = int(n_test)
        return frame

    order = rng.permutation(n)
    return pd.concat([arm("signal", signal_shift, design),
                      arm("noise", np.zeros(n), {p: v[order] for p, v in design.items()})], ignore_index=True)
