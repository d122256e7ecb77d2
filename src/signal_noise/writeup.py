"""The write-up's headline figures, kept as quoted reference values (not results of this build).

Every number is in percentage points of MNIST test accuracy, read by eye off W&B plots of the
original study (210 Signal + 210 Noise runs, all of MNIST, 10 epochs; see ``grid.PROFILES["full"]``).
``source`` says which passage of /work/shared/seed/signal-vs-noise-writeup.txt each one comes from.
The write-up quotes some quantities twice with slightly different values; the notes say where.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Quoted:
    """One figure the write-up states, and where.

    key: the path of the matching quantity in ``analyze_table``'s result (signal/noise side).
    """
    label: str
    signal: float
    noise: float
    key_signal: str
    key_noise: str
    source: str
    note: str = ""


# the write-up's study size, for saying how far a smaller profile is from it
STUDY = {"signal_runs": 210, "noise_runs": 210, "epochs": 10, "n_train": 60000, "n_test": 10000}

HEADLINES: tuple[Quoted, ...] = (
    Quoted("hidden size: best minus worst group mean, final epoch", 1.5, 0.13,
           "params.hidden_size.signal.effect", "params.hidden_size.noise.effect",
           "'BDRNN-specific' bullets: 'a meaningful effect of 1.5% ..., 10X the Noise effect (0.13%)'",
           "the hidden-size Noise section also says group means differ by 'about 0.1% at the end'"),
    Quoted("batch size: best minus worst group mean, final epoch", 0.42, 0.1,
           "params.batch_size.signal.effect", "params.batch_size.noise.effect",
           "'BDRNN-specific' bullets: 'a weak effect (0.42%), 4X the Noise effect on accuracy (0.1%)'",
           "the batch-size Noise section gives 0.12% for smallest versus largest batch"),
    Quoted("layer count: best minus worst group mean, final epoch", 0.18, 0.04,
           "params.num_layers.signal.effect", "params.num_layers.noise.effect",
           "'BDRNN-specific' bullets: '0.18% ... 4-5 times greater than the Noise effect of layer count (0.04%)'",
           "the layer-count Noise section says group means vary by 'about 0.05% throughout'"),
    Quoted("final accuracy range over all runs", 3.0, 0.9,
           "signal.overall_spread", "noise.overall_spread",
           "closing parallel-coordinates paragraph: 'about 3% for Signal and 0.9% for Noise'",
           "the per-hyperparameter sections put the end-of-training range at about 2-2.5% (Signal) and 1% (Noise)"),
    Quoted("first-epoch accuracy range over all runs", 45.0, 4.0,
           "signal.overall_spread_first", "noise.overall_spread_first",
           "per-hyperparameter sections: 'around 45%' (Signal; 47% in the layer-count one) and 'around 4%' (Noise)",
           "the framework bullets summarise this as '~10X higher at epoch 1'"),
)

# the write-up's per-hyperparameter group-mean spreads at the first and last epoch (start, end)
GROUP_MEAN_SPREAD = {
    "num_layers": {"signal": (1.2, 0.2), "noise": (0.05, 0.05)},
    "batch_size": {"signal": (9.0, 0.4), "noise": (0.1, 0.1)},
    "hidden_size": {"signal": (15.0, 1.5), "noise": (0.2, 0.1)},
}

# its ratios of Signal to Noise effect, as stated (layer count: '4-5 times')
RATIOS = {"hidden_size": 10.0, "batch_size": 4.0, "num_layers": 4.5}

# its verdicts, in its own order of importance
RANKING = ("hidden_size", "batch_size", "num_layers")
