"""Which trainer takes which runs.

Three paths, all giving the tutorial model's numbers from the run's own seed:
  single   the tutorial's BDRNN (nn.LSTM), one run at a time;
  lean     ``model.LeanBDRNN``: the same parameters through torch's LSTM kernel, minus the dead work of
           the last layer's backward direction (27 of its 28 steps feed nothing), one run at a time;
  batched  ``stacked.StackedBDRNN`` via ``batched.train_pack``: K runs as one stack, the same cut, a
           hand-written recurrence batched over runs and directions.

``auto`` follows measurements. Median CPU time of one training step (forward, backward, Adam) on one
thread, this project's 2-core machine:

  config (layers, hidden, batch)   nn.LSTM   lean            stacked K=1
  2, 128, 100 (the Noise config)   93.2 ms   67.8 (1.37x)    69.5 (1.34x)
  2, 10, 64                         5.2 ms    4.4 (1.18x)     5.9 (0.89x)
  2, 50, 64                        16.2 ms   11.8 (1.38x)    14.6 (1.11x)
  3, 50, 64                        26.4 ms   21.8 (1.21x)    26.4 (1.00x)
  4, 100, 128                     186.8 ms  162.9 (1.15x)   189.6 (0.99x)
  4, 20, 512                       86.8 ms   75.3 (1.15x)   101.5 (0.86x)

and stacking several equal runs on a CPU gains nothing more (1.24x at K=2, 1.14x at K=4 for the Noise
config, against 1.34x at K=1), while padding mixed hidden sizes into one stack loses (0.53x for 10..100).
So on a CPU every run goes ``lean``, and the parallelism comes from one single-thread worker per core.

On a GPU one small LSTM leaves the chip idle, so every run goes ``batched``, in big packs: all runs of
one (layers, batch size) share a stack, hidden sizes padded to 128 units (exactly-zero units), so a
run's arithmetic never depends on which other runs are still pending. Not yet measured on a GPU.
"""
from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass, field

from .config import RunConfig
from .store import EpochRecord, Store
from .train import TrainingFault, load_data, train_run

CPU_PACK = 4
GPU_PACK = 256
GPU_WIDTH = 128
ENGINES = ("auto", "single", "lean", "batched")


@dataclass(frozen=True)
class RunPlan:
    """How one run is trained: the path, the stack width, which runs may share its stack, how many."""
    path: str        # single | lean | batched
    width: int       # units per direction inside the stack
    key: tuple       # runs with equal keys can train in one stack
    max_pack: int


@dataclass
class Outcome:
    """What training one claimed run produced: its epochs, or the reason it failed."""
    records: list[EpochRecord] = field(default_factory=list)
    reason: str | None = None
    info: dict = field(default_factory=dict)


def row_config(row: dict) -> RunConfig:
    return RunConfig.from_dict(json.loads(row["config"]))


def plan_run(cfg: RunConfig, engine: str, device: str) -> RunPlan:
    """The trainer for one run under ``engine`` (auto, single, lean or batched) on ``device``."""
    gpu = device.startswith("cuda")
    path = ("batched" if gpu else "lean") if engine == "auto" else engine
    if path in ("single", "lean"):
        return RunPlan(path, cfg.hidden_size, (path, cfg.run_id("")), 1)
    shared = (cfg.num_layers, cfg.batch_size, cfg.epochs, cfg.lr, cfg.n_train, cfg.n_test)
    if gpu:
        width = max(GPU_WIDTH, -(-cfg.hidden_size // 32) * 32)
        return RunPlan("batched", width, ("batched", width, *shared), GPU_PACK)
    return RunPlan("batched", cfg.hidden_size, ("batched", cfg.hidden_size, *shared), CPU_PACK)


def choose_plan(store: Store, holder: str, todo: list[str], opts, device: str) -> list[dict]:
    """Claim the next runs to train together: the first pending run of ``todo`` and the pending runs
    that may share its stack, up to its pack size."""
    def plan(row: dict) -> RunPlan:
        return plan_run(row_config(row), opts.engine, device)

    return store.claim(holder, todo, key=lambda row: plan(row).key, limit=lambda row: plan(row).max_pack)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TrainingFault):
        return str(exc)
    last = traceback.extract_tb(exc.__traceback__)[-1:] or [None]
    where = f" ({last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno})" if last[0] else ""
    return f"{type(exc).__name__}: {exc}{where}"


def train_claimed(rows: list[dict], opts, device: str) -> list[tuple[dict, Outcome]]:
    """Train the claimed runs; a run that raises is an Outcome with a reason, never an exception."""
    cfgs = [row_config(r) for r in rows]
    plan = plan_run(cfgs[0], opts.engine, device)
    start = time.perf_counter()
    if plan.path in ("single", "lean"):
        outcomes = []
        for row, cfg in zip(rows, cfgs):
            begin = time.perf_counter()
            try:
                data = load_data(opts.data_root, cfg.n_train, cfg.n_test, device)
                outcome = Outcome(train_run(cfg, data=data, device=device, lean=plan.path == "lean"))
            except Exception as exc:  # recorded as failed; the sweep goes on
                outcome = Outcome(reason=_reason(exc))
            outcome.info = {"path": plan.path, "pack_size": 1, "width": cfg.hidden_size,
                            "train_seconds": time.perf_counter() - begin}
            outcomes.append((row, outcome))
        return outcomes
    from .batched import train_pack

    try:
        data = load_data(opts.data_root, cfgs[0].n_train, cfgs[0].n_test, device)
        members = train_pack(cfgs, data, device=device, width=plan.width)
        results = [Outcome(m.records, m.reason) for m in members]
    except Exception as exc:
        results = [Outcome(reason=_reason(exc)) for _ in rows]
    info = {"path": "batched", "pack_size": len(rows), "width": plan.width,
            "train_seconds": time.perf_counter() - start}
    for r in results:
        r.info = dict(info)
    return list(zip(rows, results))
