"""Which trainer takes which runs: the single-run tutorial loop, or stacks of runs trained at once."""
from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass, field

from .config import RunConfig
from .store import EpochRecord, Store
from .train import TrainingFault, load_data, train_run


@dataclass
class Outcome:
    """What training one claimed run produced: its epochs, or the reason it failed."""
    records: list[EpochRecord] = field(default_factory=list)
    reason: str | None = None
    info: dict = field(default_factory=dict)


def row_config(row: dict) -> RunConfig:
    return RunConfig.from_dict(json.loads(row["config"]))


def engine_for(cfg: RunConfig, engine: str, device: str) -> str:
    """The trainer a run goes to: ``single`` or ``batched``."""
    if engine in ("single", "batched"):
        return engine
    return "single"


def choose_plan(store: Store, holder: str, todo: list[str], opts, device: str) -> list[dict]:
    """Claim the next runs to train together (one, for the single-run trainer)."""
    return store.claim(holder, todo, max_runs=1)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TrainingFault):
        return str(exc)
    last = traceback.extract_tb(exc.__traceback__)[-1:] or [None]
    where = f" ({last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno})" if last[0] else ""
    return f"{type(exc).__name__}: {exc}{where}"


def train_claimed(rows: list[dict], opts, device: str) -> list[tuple[dict, Outcome]]:
    """Train the claimed runs; a run that raises is an Outcome with a reason, never an exception."""
    outcomes = []
    for row in rows:
        cfg = row_config(row)
        start = time.perf_counter()
        try:
            data = load_data(opts.data_root, cfg.n_train, cfg.n_test, device)
            records = train_run(cfg, data=data, device=device)
            outcome = Outcome(records)
        except Exception as exc:  # recorded as failed; the sweep goes on
            outcome = Outcome(reason=_reason(exc))
        outcome.info = {"path": "single", "pack_size": 1, "width": cfg.hidden_size,
                        "train_seconds": time.perf_counter() - start}
        outcomes.append((row, outcome))
    return outcomes
