import json
import sqlite3
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

from signal_noise.config import RunConfig
from signal_noise.errors import UserError
from signal_noise.store import SCHEMA_VERSION, EpochRecord, PlannedRun, Store, export_csv, load_results, new_holder


def _planned(n=3, arm="noise"):
    return [PlannedRun(arm, (2, 64, 10 * (i + 1)), RunConfig(seed=100 + i, epochs=2, n_train=500, n_test=500), i)
            for i in range(n)]


def test_round_trip(tmp_path):
    path = tmp_path / "s.sqlite"
    runs = _planned()
    with Store(path) as store:
        assert store.plan(runs, "tiny") == 3
        assert store.plan(runs, "tiny") == 0  # planning again adds nothing
        holder = new_holder()
        claimed = store.claim(holder, [r.run_id for r in runs], max_runs=2)
        assert [c["run_id"] for c in claimed] == [runs[0].run_id, runs[1].run_id]
        recs = [EpochRecord(1, 90.5, 0.3, 1.0), EpochRecord(2, 95.25, 0.1, 1.1)]
        store.complete(holder, runs[0].run_id, recs, {"path": "single", "pack_size": 1, "device": "cpu"})
        store.fail(holder, runs[1].run_id, "loss became nan", {"path": "single"})
        assert store.status_counts()["noise"] == {"planned": 3, "complete": 1, "failed": 1, "pending": 1}
    table = load_results(path)
    assert table["run_id"].unique().tolist() == [runs[0].run_id]
    assert table["acc"].tolist() == [90.5, 95.25] and table["epoch"].tolist() == [1, 2]
    assert table["hidden_size"].tolist() == [10, 10] and table["cfg_hidden_size"].tolist() == [128, 128]
    assert table["seed"].tolist() == [100, 100]
    with_failed = load_results(path, include_failed=True)
    assert set(with_failed["status"]) == {"complete", "failed"}
    out = tmp_path / "t.csv"
    assert export_csv(path, out) == 2
    csv = pd.read_csv(out)
    for col in ("run_id", "arm", "epoch", "acc", "loss", "num_layers", "batch_size", "hidden_size", "seed",
                "cfg_hidden_size", "cfg_lr"):
        assert col in csv.columns


def test_claims_never_overlap(tmp_path):
    runs = _planned(5)
    ids = [r.run_id for r in runs]
    with Store(tmp_path / "s.sqlite") as a, Store(tmp_path / "s.sqlite") as b:
        a.plan(runs, "tiny")
        first = a.claim("h1:1:a", ids, 3)
        second = b.claim("h2:1:b", ids, 3)
        assert not {r["run_id"] for r in first} & {r["run_id"] for r in second}
        assert len(first) + len(second) == 5


def test_expired_lease_is_reclaimed(tmp_path):
    runs = _planned(1)
    with Store(tmp_path / "s.sqlite") as store:
        store.plan(runs, "tiny")
        store.claim("otherhost:1:x", [runs[0].run_id], 1)
        assert store.claim(new_holder(), [runs[0].run_id], 1) == []  # a live lease elsewhere is respected
        store.conn.execute("UPDATE runs SET lease_expires=?", (time.time() - 1,))
        assert len(store.claim(new_holder(), [runs[0].run_id], 1)) == 1


def test_run_killed_midway_is_not_complete(tmp_path, mnist_root):
    path = tmp_path / "s.sqlite"
    runs = [PlannedRun("noise", (2, 64, 10), RunConfig(epochs=50, n_train=500, n_test=500), 0)]
    with Store(path) as store:
        store.plan(runs, "tiny")
    script = textwrap.dedent(f"""
        from signal_noise.store import Store, new_holder
        from signal_noise.train import train_run
        from signal_noise.config import RunConfig
        store = Store({str(path)!r})
        holder = new_holder()
        rows = store.claim(holder, [{runs[0].run_id!r}], 1)
        print("claimed", flush=True)
        train_run(RunConfig(epochs=50, n_train=500, n_test=500), data_root={mnist_root!r},
                  on_epoch=lambda r: print("epoch", r.epoch, flush=True))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "claimed"
    assert proc.stdout.readline().startswith("epoch 1")
    proc.kill()
    proc.wait()
    with Store(path) as store:
        assert store.status_counts()["noise"]["complete"] == 0
        assert store.conn.execute("SELECT count(*) FROM epochs").fetchone()[0] == 0
        again = store.claim(new_holder(), [runs[0].run_id], 1)  # the dead holder's run is free at once
        assert len(again) == 1 and again[0]["attempts"] == 2


def test_newer_schema_is_refused_and_kept(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        store.plan(_planned(2), "tiny")
        store.conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(UserError, match="schema version 2"):
        Store(path)
    assert sqlite3.connect(path).execute("SELECT count(*) FROM runs").fetchone()[0] == 2


def test_bad_store_paths(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        Store(tmp_path / "missing" / "s.sqlite")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        import os

        if os.geteuid() != 0:  # root can write anyway
            with pytest.raises(UserError, match="not writable"):
                Store(ro / "s.sqlite")
    finally:
        ro.chmod(0o700)
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database at all, just text" * 10)
    with pytest.raises(UserError, match="not a usable results store"):
        Store(junk)


def test_store_is_bound_to_one_profile(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        store.plan(_planned(1), "tiny")
        with pytest.raises(UserError, match="holds profile 'tiny'"):
            store.plan(_planned(1), "quick")


def test_config_json_is_stored(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        store.plan(_planned(1), "tiny")
        cfg = json.loads(store.runs()[0]["config"])
    assert cfg["hidden_size"] == 128 and cfg["lr"] == 0.003 and cfg["seed"] == 100
