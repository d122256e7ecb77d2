"""Training-step time of StackedBDRNN against K separate tutorial BDRNNs (nn.LSTM), single-threaded.

One step = forward, cross-entropy, backward and Adam(lr=0.003), each member on its own batch.
Prints milliseconds per member-step for both and their ratio (separate / stacked; > 1 means the stack
wins). On the CPU the times are process CPU time (user + sys), which other processes on a shared
machine disturb far less than wall time; the two arms' repetitions are interleaved for the same reason.
By default glibc is told to keep freed memory (retain_freed_memory) for both arms alike.

Usage: .venv/bin/python bench/stacked_micro.py [--reps N] [--threads N] [--device cpu|cuda] [--no-retain]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from signal_noise.model import make_model
from signal_noise.stacked import StackedBDRNN, retain_freed_memory

CASES = [  # (label, hidden sizes of the K members, layers, batch)
    ("h128 L2 B100 K1", [128], 2, 100),
    ("h128 L2 B100 K4", [128] * 4, 2, 100),
    ("h128 L2 B100 K8", [128] * 8, 2, 100),
    ("h10..100 L2 B64 K10", [10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 2, 64),
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _clock(device: torch.device) -> float:
    # CPU time of this process on the CPU; wall time on an accelerator, where the host mostly waits.
    return time.perf_counter() if device.type == "cuda" else time.process_time()


def _time_pair(step_a, step_b, reps: int, device: torch.device) -> tuple[float, float]:
    """Median seconds of step_a() and step_b(), alternating, after two warm-up runs of each."""
    for _ in range(2):
        step_a()
        step_b()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(reps):
        for step, out in ((step_a, times[0]), (step_b, times[1])):
            _sync(device)
            t0 = _clock(device)
            step()
            _sync(device)
            out.append(_clock(device) - t0)
    return statistics.median(times[0]), statistics.median(times[1])


def bench_case(hidden: list[int], layers: int, batch: int, reps: int,
               device: torch.device) -> tuple[float, float]:
    """Seconds per member-step: (separate nn.LSTM models, stack)."""
    k = len(hidden)
    models = [make_model(h, layers, seed)[0].to(device) for seed, h in enumerate(hidden)]
    x = torch.rand(k, batch, 28, 28, device=device)
    y = torch.randint(0, 10, (k, batch), device=device)
    loss_fn = nn.CrossEntropyLoss()

    opts = [torch.optim.Adam(m.parameters(), lr=0.003) for m in models]

    def separate_step() -> None:
        for j, (m, opt) in enumerate(zip(models, opts)):
            opt.zero_grad(set_to_none=True)
            loss_fn(m(x[j]), y[j]).backward()
            opt.step()

    stack = StackedBDRNN.from_members([m.cpu() for m in models]).to(device)
    models = [m.to(device) for m in models]
    stack_opt = torch.optim.Adam(stack.parameters(), lr=0.003)

    def stack_step() -> None:
        stack_opt.zero_grad(set_to_none=True)
        logits = stack(x)  # (K, B, 10)
        # Sum of per-member mean losses: each member's gradient is that of its own loss.
        loss = loss_fn(logits.flatten(0, 1), y.flatten()) * k
        loss.backward()
        stack_opt.step()

    t_sep, t_stack = _time_pair(separate_step, stack_step, reps, device)
    return t_sep / k, t_stack / k


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-retain", action="store_true", help="leave glibc's malloc as it is")
    args = parser.parse_args()
    retained = False if args.no_retain else retain_freed_memory()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, reps {args.reps}, "
          f"retain_freed_memory {retained}")
    print(f"{'case':<22}{'separate ms/member':>20}{'stacked ms/member':>20}{'ratio':>8}")
    for label, hidden, layers, batch in CASES:
        t_sep, t_stack = bench_case(hidden, layers, batch, args.reps, device)
        print(f"{label:<22}{1e3 * t_sep:>20.1f}{1e3 * t_stack:>20.1f}{t_sep / t_stack:>8.2f}")


if __name__ == "__main__":
    main()
