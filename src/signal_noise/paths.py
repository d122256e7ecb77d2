"""Project paths, resolved from this file so the current directory never matters."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("SIGNAL_NOISE_DATA", ROOT / "data"))
RESULTS_DIR = ROOT / "results"
REPORT_DIR = ROOT / "report"
NOTEBOOKS_DIR = ROOT / "notebooks"
SWEEPS_DIR = ROOT / "sweeps"


def default_store(profile: str) -> Path:
    """The results store a profile writes to unless told otherwise."""
    return RESULTS_DIR / f"{profile}.sqlite"
