"""make bench: the project's runner against a loop shaped like yunjey's tutorial, on the same runs.

Reference: torchvision's MNIST with ToTensor through a shuffling DataLoader (a PIL image per sample),
the BDRNN with nn.LSTM, one run after another, the test set evaluated after every epoch, torch using
every core. Ours: ``signal-noise sweep``'s machinery (workers, threads and engine chosen as the runner
chooses them) on the very same runs. Both are timed in this one invocation on this one machine, for
the Noise config and for a sample of Signal configs spread over the grid. The last two lines are
``speedup noise: R`` and ``speedup signal: R``.

Usage: python bench/bench.py [--n-train 6000] [--n-test 1000] [--epochs 2] [--noise-runs 8]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from signal_noise.config import RunConfig  # noqa: E402
from signal_noise.data import subset_indices  # noqa: E402
from signal_noise.grid import NOISE_CONFIG, NOISE_SEED_BASE, SIGNAL_SEED  # noqa: E402
from signal_noise.model import BDRNN, run_flops  # noqa: E402
from signal_noise.paths import DATA_DIR  # noqa: E402
from signal_noise.store import PlannedRun, load_results  # noqa: E402
from signal_noise.sweep import SweepOptions, default_workers, run_planned, usable_cores  # noqa: E402

# (num_layers, batch_size, hidden_size): spread over the grid's corners and middle
SIGNAL_SAMPLE = [(2, 64, 10), (3, 100, 40), (4, 128, 100), (2, 200, 70), (3, 256, 20), (4, 400, 50),
                 (2, 512, 90), (3, 64, 60)]


def flops_of(cfg: RunConfig) -> float:
    return run_flops(cfg.hidden_size, cfg.num_layers, cfg.n_train, cfg.n_test, cfg.epochs)


def matmul_peak(threads: int) -> float:
    """Best GFLOP/s of a 1024^2 float32 matmul with this many threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(10):
        t = time.perf_counter()
        for _ in range(5):
            a @ b
        best = min(best, (time.perf_counter() - t) / 5)
    return 2 * 1024 ** 3 / best / 1e9


def reference_run(cfg: RunConfig, train_set, test_set) -> float:
    """The tutorial's loop for one run; returns the final test accuracy in percent."""
    torch.manual_seed(cfg.seed)
    model = BDRNN(hidden_size=cfg.hidden_size, num_layers=cfg.num_layers)
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True)
    test_loader = torch.utils.data.DataLoader(test_set, batch_size=cfg.batch_size, shuffle=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    criterion = nn.CrossEntropyLoss()
    acc = 0.0
    for _ in range(cfg.epochs):
        model.train()
        for images, labels in train_loader:
            loss = criterion(model(images.reshape(-1, 28, 28)), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for images, labels in test_loader:
                predicted = model(images.reshape(-1, 28, 28)).argmax(1)
                total += labels.size(0)
                correct += (predicted == labels).sum().item()
        acc = 100.0 * correct / total
    return acc


def reference(cfgs: list[RunConfig], root: str) -> tuple[float, list[float]]:
    from torchvision import datasets, transforms

    torch.set_num_threads(usable_cores())
    tv_train = datasets.MNIST(root, train=True, transform=transforms.ToTensor(), download=False)
    tv_test = datasets.MNIST(root, train=False, transform=transforms.ToTensor(), download=False)
    cfg0 = cfgs[0]
    train_set = torch.utils.data.Subset(tv_train, subset_indices(tv_train.targets.numpy(), cfg0.n_train).tolist())
    test_set = torch.utils.data.Subset(tv_test, subset_indices(tv_test.targets.numpy(), cfg0.n_test).tolist())
    start = time.perf_counter()
    accs = [reference_run(c, train_set, test_set) for c in cfgs]
    return time.perf_counter() - start, accs


def ours(planned: list[PlannedRun], root: str, arm: str) -> tuple[float, list[float], dict]:
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "bench.sqlite")
        workers = default_workers("cpu")
        opts = SweepOptions(arm=arm, profile="bench", store=store, workers=workers,
                            threads=max(1, usable_cores() // workers), device="cpu", data_root=root,
                            wandb_mode="disabled")
        start = time.perf_counter()
        run_planned(opts, planned, progress=False)
        seconds = time.perf_counter() - start
        table = load_results(store)
        final = table.sort_values("epoch").groupby("run_id").tail(1)
        paths = final["path"].value_counts().to_dict()
        return seconds, final["acc"].tolist(), {"workers": workers, "paths": paths}


def eval_share(n_images: int = 2000) -> float:
    """Share of a full-size Noise-config epoch (60K training images, then the 10K test images) that
    evaluation takes on the CPU path (lean model, one thread), from per-image times measured here."""
    from signal_noise.model import make_model
    from signal_noise.train import accuracy, batch_slices

    torch.set_num_threads(1)
    model, _ = make_model(NOISE_CONFIG["hidden_size"], NOISE_CONFIG["num_layers"], seed=0, lean=True)
    x, y = torch.rand(n_images, 28, 28), torch.randint(0, 10, (n_images,))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.003)
    start = time.perf_counter()
    for s in batch_slices(n_images, NOISE_CONFIG["batch_size"]):
        loss = nn.functional.cross_entropy(model(x[s]), y[s])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    train_per_image = (time.perf_counter() - start) / n_images
    model.eval()
    start = time.perf_counter()
    accuracy(model, x, y)
    eval_per_image = (time.perf_counter() - start) / n_images
    return 10000 * eval_per_image / (60000 * train_per_image + 10000 * eval_per_image)


def summary(accs: list[float]) -> str:
    sd = statistics.stdev(accs) if len(accs) > 1 else float("nan")
    return f"final acc {statistics.mean(accs):.2f} +- {sd:.2f} (sd, n={len(accs)})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-train", type=int, default=6000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--noise-runs", type=int, default=8)
    ap.add_argument("--data-root", default=str(DATA_DIR))
    args = ap.parse_args(argv)
    common = dict(epochs=args.epochs, n_train=args.n_train, n_test=args.n_test)
    noise = [PlannedRun("noise", (2, 100, 10 * (i + 1)), RunConfig(**NOISE_CONFIG, seed=NOISE_SEED_BASE + i, **common), i)
             for i in range(args.noise_runs)]
    signal = [PlannedRun("signal", t, RunConfig(num_layers=t[0], batch_size=t[1], hidden_size=t[2],
                                                seed=SIGNAL_SEED, **common), i) for i, t in enumerate(SIGNAL_SAMPLE)]
    cores = usable_cores()
    peak1, peak_all = matmul_peak(1), matmul_peak(cores)
    print(f"machine: {cores} cores, torch {torch.__version__}; matmul peak {peak1:.1f} GFLOP/s on 1 thread, "
          f"{peak_all:.1f} GFLOP/s on {cores}")
    print(f"runs: {args.n_train} train / {args.n_test} test images, {args.epochs} epochs, evaluation every epoch")
    print(f"evaluation share of a full-size Noise epoch (60K train + 10K test, CPU path): {100 * eval_share():.1f}%")
    speedups = {}
    for arm, planned in (("noise", noise), ("signal", signal)):
        cfgs = [p.config for p in planned]
        flops = sum(flops_of(c) for c in cfgs)
        ref_s, ref_acc = reference(cfgs, args.data_root)
        our_s, our_acc, info = ours(planned, args.data_root, arm)
        for name, secs, accs in (("tutorial loop", ref_s, ref_acc), ("signal-noise", our_s, our_acc)):
            print(f"{arm:6} {name:14} {len(cfgs)} runs in {secs:7.1f} s = {len(cfgs) / secs * 3600:7.1f} runs/h, "
                  f"{flops / secs / 1e9:6.1f} GFLOP/s of tutorial-model work "
                  f"({100 * flops / secs / 1e9 / peak_all:.0f}% of peak); {summary(accs)}")
        print(f"{arm:6} signal-noise used {info['workers']} workers; paths {info['paths']}")
        if len(cfgs) > 2 and statistics.stdev(ref_acc) + statistics.stdev(our_acc) > 0:
            from scipy import stats

            p = stats.ttest_ind(ref_acc, our_acc, equal_var=False).pvalue
            print(f"{arm:6} final accuracy, tutorial loop vs signal-noise: Welch t-test p = {p:.2f} "
                  f"(same init per seed, shuffles drawn differently)")
        speedups[arm] = ref_s / our_s
    print(f"speedup noise: {speedups['noise']:.2f}")
    print(f"speedup signal: {speedups['signal']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
