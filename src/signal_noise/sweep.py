"""The sweep runner: plans an arm into the store, then workers claim runs, train them and record them.

A killed sweep resumes where it stopped: complete runs are skipped, and runs held by a dead process
(or an expired lease) are trained again from scratch, since nothing of an unfinished run is kept.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import socket
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import UserError
from .grid import check_arm, get_profile, plan_arm
from .paths import DATA_DIR, default_store
from .store import LEASE_SECONDS, Store, new_holder


@dataclass(frozen=True)
class SweepOptions:
    arm: str
    profile: str
    store: str
    workers: int = 1
    threads: int = 1           # torch threads in each worker
    device: str = "cpu"        # resolved already: cpu, cuda or cuda:K
    limit: int | None = None   # train at most this many runs in this invocation
    data_root: str = str(DATA_DIR)
    engine: str = "auto"       # auto, single, lean or batched (see engine.py)
    wandb_mode: str = "offline"
    retry_failed: bool = False


class Abandon(BaseException):
    """Raised in a worker by SIGTERM: drop the current runs, give them back, stop."""


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def default_workers(device: str) -> int:
    """One 1-thread worker per core on the CPU (measured faster than one process using every core);
    one worker per device on CUDA."""
    if device.startswith("cuda"):
        import torch

        return 1 if ":" in device else max(1, torch.cuda.device_count())
    return usable_cores()


def eligible_run_ids(store: Store, opts: SweepOptions, planned: list) -> list[str]:
    """The planned runs this invocation may train (the first --limit of them in plan order), longest
    first, so that the workers finish together instead of one waiting on a big run at the end."""
    from .model import run_flops

    done = {r["run_id"] for r in store.runs(opts.arm) if r["status"] in ("complete", "failed")}
    todo = [p for p in planned if p.run_id not in done]
    if opts.limit is not None:
        todo = todo[: opts.limit]

    def cost(p) -> float:
        c = p.config
        return run_flops(c.hidden_size, c.num_layers, c.n_train, c.n_test, c.epochs)

    return [p.run_id for p in sorted(todo, key=cost, reverse=True)]


def run_sweep(opts: SweepOptions, progress: bool = True) -> dict:
    """Train every pending run of one arm; returns the store's status counts afterwards."""
    check_arm(opts.arm)
    return run_planned(opts, plan_arm(opts.arm, get_profile(opts.profile)), progress)


def run_planned(opts: SweepOptions, planned: list, progress: bool = True) -> dict:
    """Plan these runs into the store (adding only the new ones), then train whichever are pending."""
    with Store(opts.store) as store:
        store.plan(planned, opts.profile)
        if opts.retry_failed:
            store.reset_failed(opts.arm)
        todo = eligible_run_ids(store, opts, planned)
    if todo:
        from .data import verify_raw

        verify_raw(opts.data_root)  # a clear error now rather than one per worker
        _run_workers(opts, todo, progress)
    with Store(opts.store) as store:
        return store.status_counts()


def _run_workers(opts: SweepOptions, todo: list[str], progress: bool) -> None:
    monitor = _Monitor(opts.store, todo, progress, f"{opts.arm} ({opts.profile})")
    monitor.start()
    try:
        if opts.workers == 1:
            _serve_in_process(opts, todo)
        else:
            _serve_in_children(opts, todo)
    finally:
        monitor.stop()


def _serve_in_process(opts: SweepOptions, todo: list[str]) -> None:
    previous = signal.signal(signal.SIGTERM, _raise_abandon)
    try:
        worker_loop(opts, todo, 0)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _serve_in_children(opts: SweepOptions, todo: list[str]) -> None:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_child_main, args=(asdict(opts), todo, i), name=f"sweep-worker-{i}")
             for i in range(opts.workers)]
    for p in procs:
        p.start()

    def forward(signum, frame):  # pass SIGTERM on, then wait for the workers to give their runs back
        for p in procs:
            if p.is_alive():
                os.kill(p.pid, signal.SIGTERM)
        raise Abandon()

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        for p in procs:
            p.join()
    except (KeyboardInterrupt, Abandon):
        for p in procs:
            if p.is_alive():
                os.kill(p.pid, signal.SIGTERM)
        for p in procs:
            p.join()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    bad = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if bad:
        raise UserError(f"{len(bad)} sweep worker(s) exited with codes {bad}; the store keeps what finished")


def _raise_abandon(signum, frame):
    raise Abandon()


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker if the runner dies, so a killed sweep leaves no orphans."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _child_main(opts_dict: dict, todo: list[str], index: int) -> None:
    _die_with_parent()
    signal.signal(signal.SIGTERM, _raise_abandon)
    signal.signal(signal.SIGINT, _raise_abandon)
    try:
        worker_loop(SweepOptions(**opts_dict), todo, index)
    except Abandon:
        os._exit(143)


def worker_loop(opts: SweepOptions, todo: list[str], index: int) -> None:
    """Claim, train and record runs until none of ``todo`` is left to claim."""
    import torch

    from .engine import choose_plan, train_claimed
    from .wandb_io import RunLogger

    torch.set_num_threads(opts.threads)
    device = opts.device
    if device == "cpu":
        from .stacked import retain_freed_memory

        retain_freed_memory()  # reuse the per-step buffers instead of page-faulting them in every step
    if device == "cuda" and torch.cuda.device_count() > 1:
        device = f"cuda:{index % torch.cuda.device_count()}"
    holder = new_holder()
    logger = RunLogger(opts.wandb_mode, opts.profile, directory=Path(opts.store).resolve().parent)
    with Store(opts.store) as store:
        beat = _Heartbeat(opts.store, holder)
        beat.start()
        try:
            while True:
                rows = choose_plan(store, holder, todo, opts, device)
                if not rows:
                    return
                try:
                    outcomes = train_claimed(rows, opts, device)
                except (Abandon, KeyboardInterrupt):
                    store.release(holder, [r["run_id"] for r in rows])
                    raise
                for row, result in outcomes:
                    info = {**result.info, "host": socket.gethostname(), "torch_version": torch.__version__,
                            "device": device, "threads": opts.threads}
                    if result.reason is None:
                        store.complete(holder, row["run_id"], result.records, info)
                        logger.log(row, result.records, info)
                    else:
                        store.fail(holder, row["run_id"], result.reason, info)
        finally:
            beat.stop()
            store.release(holder)


class _Heartbeat(threading.Thread):
    """Renews this worker's leases so other runners know it is alive."""

    def __init__(self, store_path: str, holder: str):
        super().__init__(daemon=True)
        self.store_path, self.holder = store_path, holder
        self._stop_event = threading.Event()

    def run(self) -> None:
        with Store(self.store_path) as store:
            while not self._stop_event.wait(LEASE_SECONDS / 4):
                store.renew(self.holder)

    def stop(self) -> None:
        self._stop_event.set()


class _Monitor(threading.Thread):
    """A tqdm bar over this invocation's runs, fed by polling the store (workers may be processes)."""

    def __init__(self, store_path: str, todo: list[str], enabled: bool, desc: str):
        super().__init__(daemon=True)
        self.store_path, self.todo, self.enabled, self.desc = store_path, set(todo), enabled, desc
        self._stop_event = threading.Event()

    def _finished(self, store: Store) -> tuple[int, int]:
        rows = store.conn.execute("SELECT run_id, status FROM runs WHERE status IN ('complete', 'failed')").fetchall()
        done = [s for rid, s in rows if rid in self.todo]
        return len(done), done.count("failed")

    def run(self) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        with Store(self.store_path) as store, tqdm(total=len(self.todo), unit="run", desc=self.desc) as bar:
            while True:
                stopping = self._stop_event.wait(0.5)
                done, failed = self._finished(store)
                if done != bar.n:  # redraw only on progress: the bar also lands in executed notebooks
                    bar.set_postfix(failed=failed, refresh=False)
                    bar.update(done - bar.n)
                if stopping:
                    return

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


def register(sub) -> None:
    p = sub.add_parser("sweep", help="train one arm of a profile into a results store (resumable)")
    p.add_argument("--arm", required=True, help="signal or noise")
    p.add_argument("--profile", required=True, help="full, quick or tiny")
    p.add_argument("--store", default=None, help="results store (default: results/<profile>.sqlite)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core, or per GPU)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: cores / workers)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:K")
    p.add_argument("--limit", type=int, default=None, help="train at most N runs now")
    p.add_argument("--engine", default="auto", choices=("auto", "single", "lean", "batched"),
                   help="single: the tutorial's nn.LSTM; lean: the same minus dead work; batched: runs stacked; "
                        "auto: lean on a CPU, batched on a GPU (the measured faster)")
    p.add_argument("--retry-failed", action="store_true", help="train failed runs again")
    p.add_argument("--data-root", default=None, help="data folder (default: the project's data/)")
    p.add_argument("--wandb", default=None, choices=("offline", "online", "disabled"),
                   help="W&B mode (default: $WANDB_MODE, else offline)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def make_options(arm: str, profile: str, store: str | None = None, workers: int | None = None,
                 threads: int | None = None, device: str = "auto", limit: int | None = None,
                 data_root: str | None = None, engine: str = "auto", wandb_mode: str | None = None,
                 retry_failed: bool = False) -> SweepOptions:
    """Validated sweep options with the machine's defaults filled in (the CLI and the notebook use it)."""
    from .train import resolve_device

    check_arm(arm)
    prof = get_profile(profile)
    dev = str(resolve_device(device))
    workers = workers if workers is not None else default_workers(dev)
    if workers < 1:
        raise UserError(f"workers must be at least 1, got {workers}")
    if limit is not None and limit < 0:
        raise UserError(f"limit must be non-negative, got {limit}")
    threads = threads if threads is not None else max(1, usable_cores() // workers)
    if threads < 1:
        raise UserError(f"threads must be at least 1, got {threads}")
    from .engine import ENGINES

    if engine not in ENGINES:
        raise UserError(f"unknown engine {engine!r}; use {', '.join(ENGINES)}")
    mode = wandb_mode or os.environ.get("WANDB_MODE") or "offline"
    if mode not in ("offline", "online", "disabled"):
        raise UserError(f"unknown W&B mode {mode!r}; use offline, online or disabled")
    if not store:
        store = str(default_store(prof.name))
        Path(store).parent.mkdir(parents=True, exist_ok=True)
    return SweepOptions(arm=arm, profile=prof.name, store=str(store), workers=workers, threads=threads,
                        device=dev, limit=limit, data_root=str(data_root or DATA_DIR), engine=engine,
                        wandb_mode=mode, retry_failed=retry_failed)


def _run(args) -> int:
    opts = make_options(args.arm, args.profile, args.store, args.workers, args.threads, args.device,
                        args.limit, args.data_root, args.engine, args.wandb, args.retry_failed)
    try:
        counts = run_sweep(opts, progress=not args.quiet)
    except (KeyboardInterrupt, Abandon):
        print("signal-noise: sweep stopped; unfinished runs were given back and will be trained on resume",
              flush=True)
        return 130
    c = counts[opts.arm]
    print(json.dumps({"arm": opts.arm, "profile": opts.profile, "store": opts.store, **c}))
    return 0
