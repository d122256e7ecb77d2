"""The batched trainer: K runs of one layer count and batch size trained as one stack.

Each member gets exactly what the single-run trainer would give it: its own initial weights and its
own shuffle each epoch, both from its own seed's generator (``model.make_model``), its own Adam state
(Adam is elementwise over the stacked tensors) and its own loss. The stack only shares the arithmetic,
so a run's numbers do not depend on which runs trained beside it, beyond float rounding when its
hidden size is padded to a wider stack.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .config import RunConfig
from .model import make_model
from .stacked import StackedBDRNN
from .store import EpochRecord
from .train import Data, batch_slices, epoch_order

# rows (members x images) evaluated at once: bounded so the saved gates stay within memory
EVAL_ROWS = {"cpu": 8192, "cuda": 131072}


@dataclass
class MemberResult:
    records: list[EpochRecord] = field(default_factory=list)
    reason: str | None = None   # set when the member's loss stopped being finite


def _check_pack(cfgs: list[RunConfig]) -> None:
    shared = ("num_layers", "batch_size", "epochs", "lr", "n_train", "n_test")
    for name in shared:
        values = {getattr(c, name) for c in cfgs}
        if len(values) != 1:
            raise ValueError(f"a pack must share {name}, got {sorted(values)}")


@torch.no_grad()
def stacked_accuracy(stack: StackedBDRNN, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(K,) test accuracy in percent of every member on the same images x (n, 28, 28), labels y (n,)."""
    rows = EVAL_ROWS.get(x.device.type, 8192)
    chunk = max(1, rows // stack.num_members)
    correct = torch.zeros(stack.num_members, dtype=torch.long, device=x.device)
    for s in batch_slices(len(y), chunk):
        correct += (stack(x[s]).argmax(-1) == y[s]).sum(-1)
    return correct.double().mul_(100.0 / len(y))


def train_pack(cfgs: list[RunConfig], data: Data, device: str | torch.device = "cpu", width: int | None = None,
               on_epoch=None, on_step=None, on_end=None) -> list[MemberResult]:
    """Train K runs that share layer count, batch size, epochs, lr and data sizes, all at once.

    Args:
      cfgs: the K runs' configs (hidden sizes and seeds may differ).
      data: preloaded tensors on ``device``.
      width: units per direction inside the stack (default: the widest member); narrower members are
        padded with units that stay exactly zero.
      on_epoch: called as ``on_epoch(epoch, records)`` with the K EpochRecords (None for failed members).
      on_step: called as ``on_step(epoch, step, losses)`` with the (K,) batch losses (tests).
      on_end: called with the trained stack (tests compare its predictions).
    Returns:
      one MemberResult per config, in order.
    """
    _check_pack(cfgs)
    device = torch.device(device)
    first = cfgs[0]
    models, generators = zip(*(make_model(c.hidden_size, c.num_layers, c.seed) for c in cfgs))
    stack = StackedBDRNN([c.hidden_size for c in cfgs], first.num_layers, width=width).load_members(models)
    stack.to(device)
    optimizer = torch.optim.Adam(stack.parameters(), lr=first.lr)
    k, n = len(cfgs), len(data.train_y)
    results = [MemberResult() for _ in cfgs]
    alive = torch.ones(k, dtype=torch.bool, device=device)
    for epoch in range(1, first.epochs + 1):
        start = time.perf_counter()
        stack.train()
        order = torch.stack([epoch_order(g, n) for g in generators]).to(device)  # (K, n)
        total = torch.zeros(k, dtype=torch.float64, device=device)
        for step, s in enumerate(batch_slices(n, first.batch_size)):
            idx = order[:, s]                                   # (K, b): each member its own images
            logits = stack(data.train_x[idx])                   # (K, b, 10)
            losses = F.cross_entropy(logits.flatten(0, 1), data.train_y[idx].flatten(),
                                     reduction="none").view(k, -1).mean(1)
            # a failed member drops out of the objective; where() keeps its NaN away from the rest
            objective = torch.where(alive, losses, torch.zeros_like(losses)).sum()
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            optimizer.step()
            total += losses.detach().double() * idx.shape[1]
            if on_step is not None:
                on_step(epoch, step, losses.detach())
        mean_loss = (total / n).tolist()
        stack.eval()
        accs = stacked_accuracy(stack, data.test_x, data.test_y).tolist()
        seconds = time.perf_counter() - start
        epoch_records = []
        for i, r in enumerate(results):
            if r.reason is None and not math.isfinite(mean_loss[i]):
                r.reason = f"loss became {mean_loss[i]} at epoch {epoch}, step {step}"
                alive[i] = False
            if r.reason is None:
                r.records.append(EpochRecord(epoch, accs[i], mean_loss[i], seconds))
                epoch_records.append(r.records[-1])
            else:
                epoch_records.append(None)
        if on_epoch is not None:
            on_epoch(epoch, epoch_records)
        if not bool(alive.any()):
            break
    if on_end is not None:
        on_end(stack)
    for r in results:
        if r.reason is not None:
            r.records = []
    return results
