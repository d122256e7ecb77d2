"""The configuration of one training run, validated and stored with every result."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass

from .errors import UserError


@dataclass(frozen=True)
class RunConfig:
    hidden_size: int = 128
    num_layers: int = 2
    batch_size: int = 100
    epochs: int = 10
    lr: float = 0.003        # yunjey's value, kept by the original sweep
    seed: int = 23           # the original fork's torch.manual_seed(23)
    n_train: int = 60000     # first n of a fixed class-balanced order; 60000 = all of MNIST train
    n_test: int = 10000      # likewise for the 10K test images

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_layers", "batch_size", "epochs", "n_train", "n_test"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise UserError(f"{name} must be an integer, got {value!r}")
            if value < 1:
                raise UserError(f"{name} must be at least 1, got {value}")
        if self.n_train > 60000:
            raise UserError(f"n_train must be at most 60000 (MNIST's training set), got {self.n_train}")
        if self.n_test > 10000:
            raise UserError(f"n_test must be at most 10000 (MNIST's test set), got {self.n_test}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise UserError(f"seed must be a non-negative integer, got {self.seed!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) or self.lr <= 0:
            raise UserError(f"lr must be a positive finite number, got {self.lr!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def run_id(self, arm: str) -> str:
        """A stable id: a hash of the arm and every field (model, optimiser, seed, data sizes)."""
        payload = json.dumps({"arm": arm, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise UserError(f"unknown config field(s): {', '.join(sorted(unknown))}")
        return cls(**d)
