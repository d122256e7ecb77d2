"""Which trainer takes which runs: the tutorial's nn.LSTM loop one run at a time (``single``), or the
stacked engine (``batched``: ``stacked.StackedBDRNN`` via ``batched.train_pack``), which skips the dead
work of the last layer's backward direction and trains several runs as one stack.

The automatic choice follows measurements (CPU seconds per epoch, one thread, 1,500 images; see the
README's performance section and ``bench/``):

- On the CPU the stack is compute-bound, so it wins where the dead-work cut is a large share: 2 layers
  with hidden >= 40 (1.05-1.24x) or large batches (1.08-1.13x); with 3-4 layers or small hidden sizes
  at small batches nn.LSTM's oneDNN kernel is as fast or faster (0.83-1.03x), so those go ``single``.
  Stacking several equal-size runs (the Noise arm) gains nothing more on a CPU (1.24x at K=2, 1.14x at
  K=4), and padding mixed hidden sizes into one stack loses (0.53x for 10..100 in one stack), so CPU
  packs hold at most two runs of one exact architecture.
- On a GPU one small LSTM leaves the chip idle, so every run goes ``batched``, in big packs: all runs
  of one (layers, batch size) share a stack, hidden sizes padded to 128 units (exactly-zero units), so a
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

CPU_PACK = 2
GPU_PACK = 256
GPU_WIDTH = 128


@dataclass(frozen=True)
class RunPlan:
    """How one run is trained: the path, the stack width, which runs may share its stack, how many."""
    path: str        # single | batched
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
    """The trainer for one run under ``engine`` (auto, single or batched) on ``device``."""
    gpu = device.startswith("cuda")
    shared = (cfg.num_layers, cfg.batch_size, cfg.epochs, cfg.lr, cfg.n_train, cfg.n_test)
    if engine == "single" or (engine == "auto" and not gpu and not _stack_wins_on_cpu(cfg)):
        return RunPlan("single", cfg.hidden_size, ("single", cfg.run_id("")), 1)
    if gpu:
        width = max(GPU_WIDTH, -(-cfg.hidden_size // 32) * 32)
        return RunPlan("batched", width, ("batched", width, *shared), GPU_PACK)
    return RunPlan("batched", cfg.hidden_size, ("batched", cfg.hidden_size, *shared), CPU_PACK)


def _stack_wins_on_cpu(cfg: RunConfig) -> bool:
    return cfg.num_layers == 2 and (cfg.hidden_size >= 40 or cfg.batch_size >= 256)


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
    if plan.path == "single":
        outcomes = []
        for row, cfg in zip(rows, cfgs):
            begin = time.perf_counter()
            try:
                data = load_data(opts.data_root, cfg.n_train, cfg.n_test, device)
                outcome = Outcome(train_run(cfg, data=data, device=device))
            except Exception as exc:  # recorded as failed; the sweep goes on
                outcome = Outcome(reason=_reason(exc))
            outcome.info = {"path": "single", "pack_size": 1, "width": cfg.hidden_size,
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
