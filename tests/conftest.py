"""Shared fixtures. MNIST comes from the project's data/ folder (``make data``), fetched if missing."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")  # W&B tests switch it on explicitly
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(scope="session")
def mnist_root():
    from signal_noise.data import ensure_mnist
    from signal_noise.paths import DATA_DIR

    ensure_mnist(DATA_DIR, log=lambda *a: None)
    return str(DATA_DIR)


@pytest.fixture(scope="session")
def small_data(mnist_root):
    """600 training and 500 test images (the class-balanced subsets), preloaded."""
    from signal_noise.train import load_data

    return load_data(mnist_root, 600, 500, "cpu")
