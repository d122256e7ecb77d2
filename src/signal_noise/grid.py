"""The two arms of the study as data, and the profiles that size them.

Signal: every (num_layers, batch_size, hidden_size) of the grid, trained as labelled, one run each,
every run seeded 23 like the original sweep's ``torch.manual_seed(23)``.
Noise: the same label triples, but every run trains the write-up's fixed config (hidden 128, 2 layers,
batch 100); run i of the arm gets its own seed ``NOISE_SEED_BASE + i``. Grouping Noise runs by their
labels gives what grouping alone produces when nothing is changed: the null.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from .config import RunConfig
from .errors import UserError
from .store import PlannedRun

SIGNAL_SEED = 23
NOISE_SEED_BASE = 1000   # noise seeds 1000, 1001, ...: distinct, reproducible, none equal to 23
NOISE_CONFIG = {"hidden_size": 128, "num_layers": 2, "batch_size": 100}

FULL_GRID = {
    "num_layers": (2, 3, 4),
    "batch_size": (64, 100, 128, 200, 256, 400, 512),
    "hidden_size": tuple(range(10, 101, 10)),
}


@dataclass(frozen=True)
class Profile:
    """How big a study to run: data sizes, epochs and which grid points each arm trains."""
    name: str
    n_train: int
    n_test: int
    epochs: int
    num_layers: tuple[int, ...]
    batch_size: tuple[int, ...]
    hidden_size: tuple[int, ...]
    noise_replicates: int = 1   # Noise runs per label triple
    summary: str = ""

    def label_triples(self) -> list[tuple[int, int, int]]:
        return list(itertools.product(self.num_layers, self.batch_size, self.hidden_size))

    def describe(self) -> dict:
        triples = self.label_triples()
        return {"profile": self.name, "n_train": self.n_train, "n_test": self.n_test, "epochs": self.epochs,
                "signal_runs": len(triples), "noise_runs": len(triples) * self.noise_replicates,
                "levels": {"num_layers": list(self.num_layers), "batch_size": list(self.batch_size),
                           "hidden_size": list(self.hidden_size)}}


PROFILES = {
    "full": Profile("full", 60000, 10000, 10, **FULL_GRID,
                    summary="the write-up's study: 210 + 210 runs, all of MNIST, 10 epochs"),
    # sized for about a quarter hour on 2 CPU cores; batch 512 is left out because on 8K images it
    # would take only 16 steps an epoch, and the study would measure step counts, not batch size
    "quick": Profile("quick", 8000, 2000, 3, num_layers=(2, 3, 4), batch_size=(64, 128, 256),
                     hidden_size=(10, 40, 70, 100),
                     summary="a CPU-sized study: 36 + 36 runs on an 8K/2K class-balanced subset, 3 epochs"),
    "tiny": Profile("tiny", 500, 500, 2, num_layers=(2, 3), batch_size=(64, 128), hidden_size=(10, 20),
                    summary="for tests and CI: 8 + 8 runs on 500/500 images, 2 epochs"),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise UserError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None


def check_arm(arm: str) -> str:
    if arm not in ("signal", "noise"):
        raise UserError(f"unknown arm {arm!r}; choose signal or noise")
    return arm


def config_for(arm: str, labels: tuple[int, int, int], index: int, profile: Profile) -> RunConfig:
    """The config a run with these labels really trains in this arm."""
    num_layers, batch_size, hidden_size = labels
    common = {"epochs": profile.epochs, "n_train": profile.n_train, "n_test": profile.n_test}
    if check_arm(arm) == "signal":
        return RunConfig(hidden_size=hidden_size, num_layers=num_layers, batch_size=batch_size,
                         seed=SIGNAL_SEED, **common)
    return RunConfig(**NOISE_CONFIG, seed=NOISE_SEED_BASE + index, **common)


def plan_arm(arm: str, profile: Profile) -> list[PlannedRun]:
    """Every run of one arm in a fixed order (Noise: each label triple ``noise_replicates`` times)."""
    check_arm(arm)
    reps = profile.noise_replicates if arm == "noise" else 1
    triples = [t for t in profile.label_triples() for _ in range(reps)]
    return [PlannedRun(arm, t, config_for(arm, t, i, profile), i) for i, t in enumerate(triples)]

