"""The single-run trainer: the tutorial's loop over preloaded tensors, one BDRNN at a time."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from .config import RunConfig
from .data import load_split
from .errors import UserError
from .model import make_model
from .store import EpochRecord

EVAL_BATCH = 2000  # evaluation needs no graph, so large batches keep it a small share of the epoch


class TrainingFault(Exception):
    """A run that cannot go on (its loss stopped being finite); recorded as failed with this reason."""


@dataclass(frozen=True)
class Data:
    """Preloaded tensors (ToTensor semantics: uint8 / 255) on the training device."""
    train_x: torch.Tensor  # (n_train, 28, 28) float32
    train_y: torch.Tensor  # (n_train,) int64
    test_x: torch.Tensor   # (n_test, 28, 28) float32
    test_y: torch.Tensor   # (n_test,) int64


@lru_cache(maxsize=4)
def load_data(root: str, n_train: int, n_test: int, device: str = "cpu") -> Data:
    """The class-balanced subsets (see ``data.balanced_order``) of the given sizes, loaded once."""
    tx, ty = load_split(root, train=True, n=n_train)
    vx, vy = load_split(root, train=False, n=n_test)
    dev = torch.device(device)
    return Data(tx.to(dev), ty.to(dev), vx.to(dev), vy.to(dev))


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` is the first CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:K") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name} asked for, but torch sees no CUDA device")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UserError(f"device {name} asked for, but there are {torch.cuda.device_count()} CUDA devices")
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"unsupported device {name!r}; use auto, cpu, cuda or cuda:K")
    return dev


def epoch_order(generator: torch.Generator, n: int) -> torch.Tensor:
    """The run's shuffled sample order for one epoch, drawn from its own generator (on the CPU)."""
    return torch.randperm(n, generator=generator)


def batch_slices(n: int, batch_size: int) -> list[slice]:
    """Consecutive batches of an epoch; the last one is smaller when n is not a multiple (drop_last=False)."""
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def check_finite(loss_value: float, epoch: int, step: int) -> None:
    if not math.isfinite(loss_value):
        raise TrainingFault(f"loss became {loss_value} at epoch {epoch}, step {step}")


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Test accuracy in percent, the original's ``100 * correct / total``."""
    correct = 0
    for s in batch_slices(len(y), EVAL_BATCH):
        correct += int((model(x[s]).argmax(dim=1) == y[s]).sum())
    return 100.0 * correct / len(y)


def train_run(cfg: RunConfig, data: Data | None = None, device: str | torch.device = "cpu",
              data_root: str | Path | None = None, on_epoch=None, on_step=None, on_end=None,
              lean: bool = False) -> list[EpochRecord]:
    """Train one BDRNN as the tutorial does and evaluate it after every epoch.

    The run's seed drives a ``torch.Generator`` that draws the initial weights and then every epoch's
    shuffle, so the same config and seed on the same machine give identical accuracies.

    Args:
      cfg: the run's configuration.
      data: preloaded tensors; loaded from ``data_root`` with cfg's subset sizes when omitted.
      device: where to train.
      on_epoch: called with each EpochRecord as it is measured.
      on_step: called as ``on_step(epoch, step, loss)`` after every optimiser step (tests, progress).
      on_end: called with the trained model (tests).
      lean: train ``LeanBDRNN`` (same parameters and numbers, no dead work) instead of ``BDRNN``.
    Returns:
      one EpochRecord per epoch.
    Raises:
      TrainingFault: the loss stopped being finite.
    """
    device = torch.device(device)
    if data is None:
        from .paths import DATA_DIR

        data = load_data(str(data_root or DATA_DIR), cfg.n_train, cfg.n_test, str(device))
    model, generator = make_model(cfg.hidden_size, cfg.num_layers, cfg.seed, lean=lean)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    criterion = nn.CrossEntropyLoss()
    n = len(data.train_y)
    records = []
    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        model.train()
        order = epoch_order(generator, n).to(device)
        total = torch.zeros((), device=device)
        for step, s in enumerate(batch_slices(n, cfg.batch_size)):
            idx = order[s]
            loss = criterion(model(data.train_x[idx]), data.train_y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(idx)
            if on_step is not None:
                on_step(epoch, step, float(loss.detach()))
        mean_loss = float(total) / n
        check_finite(mean_loss, epoch, step)
        model.eval()
        acc = accuracy(model, data.test_x, data.test_y)
        record = EpochRecord(epoch, acc, mean_loss, time.perf_counter() - start)
        records.append(record)
        if on_epoch is not None:
            on_epoch(record)
    if on_end is not None:
        on_end(model)
    return records


def register(sub) -> None:
    defaults = RunConfig()
    p = sub.add_parser("train", help="train one BDRNN and print its test accuracy after every epoch")
    for name, value in defaults.to_dict().items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value, metavar=type(value).__name__.upper())
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:K")
    p.add_argument("--lean", action="store_true", help="skip the dead work of the last backward direction")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--data-root", default=None, help="data folder (default: the project's data/)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from tqdm import tqdm

    fields = RunConfig().to_dict()
    cfg = RunConfig(**{name: getattr(args, name) for name in fields})
    device = resolve_device(args.device)
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    from .paths import DATA_DIR

    data = load_data(str(args.data_root or DATA_DIR), cfg.n_train, cfg.n_test, str(device))
    steps = len(batch_slices(cfg.n_train, cfg.batch_size))
    bar = tqdm(total=steps * cfg.epochs, unit="step", desc=f"train h{cfg.hidden_size} l{cfg.num_layers} b{cfg.batch_size}")

    def on_epoch(r: EpochRecord) -> None:
        bar.write(f"epoch {r.epoch}/{cfg.epochs}: test accuracy {r.acc:.2f}%  loss {r.loss:.4f}  {r.seconds:.1f}s")

    try:
        train_run(cfg, data=data, device=device, on_epoch=on_epoch, on_step=lambda e, s, l: bar.update(1),
                  lean=args.lean)
    except TrainingFault as exc:
        raise UserError(f"training failed: {exc}") from None
    finally:
        bar.close()
    return 0
