"""What the sweep notebook shows: one line per run, and every run's accuracy curve."""
from __future__ import annotations

import pandas as pd

from .store import LABELS


def run_summary(table: pd.DataFrame, arm: str) -> pd.DataFrame:
    """One row per complete run of ``arm``: labels, actual config, seed, final and best accuracy, time.

    Args:
      table: the tidy table of ``store.load_results``.
    """
    rows = table[table["arm"] == arm]
    if rows.empty:
        return pd.DataFrame(columns=["run_id", *LABELS, "trains", "seed", "final_acc", "best_acc", "seconds", "path"])
    last = rows.sort_values("epoch").groupby("run_id", sort=False).tail(1).set_index("run_id")
    grouped = rows.groupby("run_id")
    out = pd.DataFrame({
        **{k: last[k] for k in LABELS},
        "trains": last["cfg_hidden_size"].astype(str) + "h/" + last["cfg_num_layers"].astype(str) + "l/b"
        + last["cfg_batch_size"].astype(str),
        "seed": last["seed"],
        "final_acc": last["acc"],
        "best_acc": grouped["acc"].max(),
        "seconds": grouped["seconds"].sum(),
        "path": last["path"],
    })
    return out.sort_values(list(LABELS)).reset_index()


def plot_run_curves(table: pd.DataFrame, arm: str, ax=None):
    """Test accuracy against epoch, one line per run, coloured by the run's labelled hidden size."""
    import matplotlib.pyplot as plt

    rows = table[table["arm"] == arm]
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    cmap = plt.get_cmap("viridis")
    sizes = sorted(rows["hidden_size"].unique())
    for run_id, run in rows.groupby("run_id"):
        h = run["hidden_size"].iloc[0]
        shade = sizes.index(h) / max(len(sizes) - 1, 1)
        ax.plot(run["epoch"], run["acc"], color=cmap(shade), alpha=0.6, lw=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{arm}: {rows['run_id'].nunique()} runs (colour: labelled hidden size)")
    return ax
