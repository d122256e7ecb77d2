"""W&B: the sweep files expand to the project's grid, the agent entry point trains what it is given,
offline run files hold the acc history, and the importer maps W&B runs onto store rows."""
import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from signal_noise.grid import PROFILES, plan_arm
from signal_noise.paths import SWEEPS_DIR
from signal_noise.store import Store, load_results
from signal_noise.wandb_io import import_wandb, offline_history


@pytest.mark.parametrize("arm", ["signal", "noise"])
def test_sweep_yaml_expands_to_the_grid(arm):
    spec = yaml.safe_load((SWEEPS_DIR / f"{arm}.yaml").read_text())
    assert spec["method"] == "grid"
    params = spec["parameters"]
    assert params["arm"]["value"] == arm and params["profile"]["value"] == "full"
    names = ("num_layers", "batch_size", "hidden_size")
    triples = list(itertools.product(*(params[n]["values"] for n in names)))
    assert len(triples) == 210
    assert sorted(triples) == sorted(p.labels for p in plan_arm(arm, PROFILES["full"]))
    assert spec["command"][-1] == "${args}" and "agent" in spec["command"]


def _offline_runs(folder: Path):
    return sorted((folder / "wandb").glob("offline-run-*"))


def test_agent_entry_point_trains_the_given_point(tmp_path, mnist_root):
    store = tmp_path / "agent.sqlite"
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    # the command line W&B's agent builds from sweeps/noise.yaml: ${env} signal-noise agent ${args}
    cmd = [sys.executable, "-m", "signal_noise.cli", "agent", "--arm=noise", "--profile=tiny", "--num_layers=3",
           "--batch_size=64", "--hidden_size=20", f"--store={store}", f"--data-root={mnist_root}", "--device=cpu"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = load_results(store)
    assert table["run_id"].nunique() == 1
    row = table.iloc[0]
    assert (row["num_layers"], row["batch_size"], row["hidden_size"]) == (3, 64, 20)  # labels
    assert (row["cfg_num_layers"], row["cfg_batch_size"], row["cfg_hidden_size"]) == (2, 100, 128)  # trained
    expected = next(p for p in plan_arm("noise", PROFILES["tiny"]) if p.labels == (3, 64, 20))
    assert row["seed"] == expected.config.seed and row["run_id"] == expected.run_id
    runs = _offline_runs(tmp_path)
    assert len(runs) == 1
    config, history = offline_history(runs[0])
    assert [h["acc"] for h in history] == pytest.approx(table["acc"].tolist())
    assert [h["epoch"] for h in history] == [1, 2]
    assert config["num_layers"] == 3 and config["actual"]["hidden_size"] == 128


def test_agent_rejects_a_point_off_the_grid(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "signal_noise.cli", "agent", "--arm=signal", "--profile=tiny",
                           "--num_layers=7", "--batch_size=64", "--hidden_size=10"], capture_output=True, text=True)
    assert proc.returncode == 2 and "not a grid point of profile tiny" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_sweep_logs_each_run_offline(tmp_path, mnist_root):
    store = tmp_path / "s.sqlite"
    cmd = [sys.executable, "-m", "signal_noise.cli", "sweep", "--arm", "signal", "--profile", "tiny",
           "--store", str(store), "--limit", "2", "--workers", "1", "--wandb", "offline", "--quiet",
           "--data-root", mnist_root]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = load_results(store)
    runs = _offline_runs(tmp_path)
    assert len(runs) == 2
    logged = {}
    for folder in runs:
        config, history = offline_history(folder)
        logged[config["run_id"]] = [h["acc"] for h in history]
        assert config["arm"] == "signal" and config["profile"] == "tiny"
    for run_id, rows in table.groupby("run_id"):
        assert logged[run_id] == pytest.approx(rows["acc"].tolist())


class _FakeRun:
    def __init__(self, rid, config, history, state="finished"):
        self.id, self.config, self._history, self.state = rid, config, history, state

    def scan_history(self, keys=None):
        return iter(self._history)


class _FakeApi:
    def __init__(self, runs):
        self._runs = runs
        self.asked = None

    def runs(self, path, filters=None):
        self.asked = (path, filters)
        return self._runs


def test_import_maps_wandb_history_to_store_rows(tmp_path):
    original = _FakeRun("a1", {"num_layers": 3, "batch_size": 64, "hidden_size": 20},  # the original fork's runs
                        [{"_step": 0, "epoch": 0, "acc": 91.0, "loss": 0.3}, {"_step": 1, "epoch": 1, "acc": 95.5, "loss": 0.2}])
    ours = _FakeRun("b2", {"num_layers": 2, "batch_size": 100, "hidden_size": 50, "arm": "noise", "plan_index": 4,
                           "actual": {"hidden_size": 128, "num_layers": 2, "batch_size": 100, "seed": 1004, "epochs": 2}},
                    [{"epoch": 1, "acc": 96.0, "loss": 0.1}, {"epoch": 2, "acc": 97.25, "loss": 0.05}])
    running = _FakeRun("c3", {"num_layers": 2, "batch_size": 64, "hidden_size": 10}, [], state="running")
    api = _FakeApi([original, ours, running])
    store = tmp_path / "w.sqlite"
    counts = import_wandb("me/proj", str(store), sweep="sw1", arm="signal", api=api)
    assert api.asked == ("me/proj", {"sweep": "sw1"})
    assert counts == {"imported": 2, "skipped": 0, "unfinished": 1}
    table = load_results(store)
    sig = table[table["arm"] == "signal"]
    assert sig["epoch"].tolist() == [1, 2] and sig["acc"].tolist() == [91.0, 95.5]
    assert (sig["hidden_size"].iloc[0], sig["cfg_hidden_size"].iloc[0], sig["seed"].iloc[0]) == (20, 20, 23)
    noise = table[table["arm"] == "noise"]
    assert noise["hidden_size"].iloc[0] == 50 and noise["cfg_hidden_size"].iloc[0] == 128
    assert noise["seed"].iloc[0] == 1004 and noise["acc"].tolist() == [96.0, 97.25]
    again = import_wandb("me/proj", str(store), arm="signal", api=api)
    assert again["skipped"] == 2 and again["imported"] == 0
    with Store(store) as s:
        assert s.status_counts()["signal"]["complete"] == 1
