"""signal_noise.analyze: the table, the JSON, the command and its one-line errors."""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from signal_noise import analyze, stats
from signal_noise.errors import UserError
from signal_noise.synth import GRID, planted_sweep

PARAMS = tuple(GRID)


@pytest.fixture(scope="module")
def study() -> pd.DataFrame:
    """Shaped like the write-up: 210 + 210 runs, 10 epochs; hidden size 6 SE, batch size 3 SE, layers none."""
    return planted_sweep(np.random.default_rng(2024), {"hidden_size": 6.0, "batch_size": 3.0})


@pytest.fixture(scope="module")
def result(study) -> dict:
    return analyze.analyze_table(study)


def _tiny() -> pd.DataFrame:
    """2 x 2 grid, 2 epochs; the signal arm is exactly additive (A: +4, B: +2), noise runs 97 +- 1."""
    rows = []
    for i, (a, b, acc) in enumerate([(0, 0, 91.0), (0, 1, 93.0), (1, 0, 95.0), (1, 1, 97.0)]):
        rows += [dict(run_id=f"s{i}", arm="signal", epoch=e, acc=acc - (2 - e), A=a, B=b) for e in (1, 2)]
    for i, (a, b, acc) in enumerate([(0, 0, 96.0), (0, 1, 98.0), (1, 0, 97.0), (1, 1, 97.0)]):
        rows += [dict(run_id=f"n{i}", arm="noise", epoch=e, acc=acc - 5 * (2 - e), A=a, B=b) for e in (1, 2)]
    return pd.DataFrame(rows)


def _keys(d: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in d.items():
        out.add(prefix + k)
        if isinstance(v, dict):
            out |= _keys(v, prefix + k + ".")
    return out


# ------------------------------------------------------------------ the result
def test_json_has_every_key_of_the_issue(result):
    keys = _keys(result)
    for top in ("noise.sd", "noise.sd_ci", "epoch", "metric"):
        assert top in keys
    for p in PARAMS:
        for k in ("signal.effect", "noise.effect", "signal.p_value", "noise.p_value", "signal.ci", "ratio",
                  "significant", "seeds_per_level_needed", "variance_share", "signal.p_value_perm",
                  "noise.expected_effect"):
            assert f"params.{p}.{k}" in keys, k
    assert result["epoch"] == 10 and result["metric"] == "acc"
    json.dumps(result, allow_nan=False)


def test_planted_six_se_effect_is_found_and_null_is_not(result):
    hidden, layers = result["params"]["hidden_size"], result["params"]["num_layers"]
    assert hidden["signal"]["p_value"] < 0.01 and hidden["signal"]["p_value_perm"] < 0.01 and hidden["significant"]
    # a null param comes out p < 0.05 in 5% of sweeps by design (the rates are tested in test_stats);
    # in this one sweep it must not reach the 6-SE effect's p < 0.01
    assert layers["signal"]["p_value"] >= 0.01 and layers["signal"]["p_value_perm"] >= 0.01
    for p in PARAMS:                                # the placebo check
        assert result["params"][p]["noise"]["p_value"] >= 0.01


def test_values_agree_with_the_stats_functions(study, result):
    last = study[study.epoch == 10]
    sig, noise = last[last.arm == "signal"].sort_values("run_id"), last[last.arm == "noise"].sort_values("run_id")
    assert result["noise"]["sd"] == pytest.approx(noise.acc.std())
    lo, hi = result["noise"]["sd_ci"]
    assert lo < result["noise"]["sd"] < hi
    for p in PARAMS:
        e = result["params"][p]
        assert e["signal"]["effect"] == pytest.approx(stats.effect_size(sig.acc, sig[p]))
        assert e["noise"]["effect"] == pytest.approx(stats.effect_size(noise.acc, noise[p]))
        assert e["ratio"] == pytest.approx(e["signal"]["effect"] / e["noise"]["effect"])
        if p != "num_layers":   # planted effects; a null one's percentile interval may sit above it
            assert e["signal"]["ci"][0] <= e["signal"]["effect"] <= e["signal"]["ci"][1]
        assert e["noise"]["expected_effect"] == pytest.approx(
            result["noise"]["sd"] / math.sqrt(210 / len(GRID[p])) * stats.expected_range([1] * len(GRID[p])))
    assert result["noise"]["test_set_floor_sd"] == pytest.approx(
        100 * math.sqrt(noise.acc.mean() / 100 * (1 - noise.acc.mean() / 100) / 10000))
    shares = [result["params"][p]["variance_share"] for p in PARAMS]
    assert sum(shares) + result["variance_share"]["noise"] + result["variance_share"]["rest"] == pytest.approx(1)
    assert result["params"]["hidden_size"]["variance_share"] == max(shares)


def test_tiny_table_by_hand():
    r = analyze.analyze_table(_tiny(), params=("A", "B"), n_resamples=200, n_perm=99)
    a, b = r["params"]["A"], r["params"]["B"]
    assert a["signal"]["effect"] == 4.0 and b["signal"]["effect"] == 2.0
    assert a["noise"]["effect"] == 0.0 and b["noise"]["effect"] == 1.0    # noise means A: 97, 97; B: 96.5, 97.5
    assert r["noise"]["sd"] == pytest.approx(np.std([96, 98, 97, 97], ddof=1))
    s2 = np.var([96, 98, 97, 97], ddof=1)
    assert a["signal"]["F"] == pytest.approx(16 / s2) and a["signal"]["df"] == 1
    assert a["ratio"] is None                                             # 4 / 0: not a finite number
    assert b["ratio"] == 2.0
    assert a["signal"]["effect_first"] == 4.0 and a["noise"]["effect_first"] == 0.0
    assert r["first_epoch"] == 1 and r["signal"]["overall_spread"] == 6.0 and r["noise"]["overall_spread"] == 2.0
    assert a["signal"]["group_means"] == {"0": 92.0, "1": 96.0}
    assert a["signal"]["best_level"] == 1 and a["signal"]["worst_level"] == 0
    assert r["noise"]["test_set_floor_sd"] is None                        # no n_test anywhere
    assert analyze.analyze_table(_tiny(), params=("A",), epoch=1, n_test=100, n_resamples=200,
                                 n_perm=99)["noise"]["test_set_floor_sd"] == pytest.approx(100 * math.sqrt(.92 * .08 / 100))


def test_epoch_choice_and_first_epoch(study):
    r = analyze.analyze_table(study, epoch=1, n_resamples=200, n_perm=99)
    assert r["epoch"] == 1
    assert r["params"]["hidden_size"]["signal"]["effect"] == pytest.approx(
        r["params"]["hidden_size"]["signal"]["spread_by_epoch"]["1"])


def test_report_text(result):
    text = analyze.format_report(result)
    assert "hidden_size" in text and "noise (seed) SD" in text and "test-set floor" in text


# ------------------------------------------------------------------ the command
def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    analyze.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["analyze", *argv])
    return args.func(args)


def test_command_on_csv_and_parquet_full_size(study, tmp_path, capsys):
    csv, pq, out = tmp_path / "study.csv", tmp_path / "study.parquet", tmp_path / "out.json"
    study.to_csv(csv, index=False)
    study.to_parquet(pq)
    start = time.perf_counter()
    assert _run([str(csv), "--json", str(out)]) == 0
    assert time.perf_counter() - start < 30
    from_csv = json.loads(out.read_text())
    assert "hidden_size" in capsys.readouterr().out
    assert [f.name for f in tmp_path.iterdir() if f.name.endswith(".tmp")] == []
    assert _run([str(pq), "--json", str(out), "--params", "hidden_size,batch_size,num_layers"]) == 0
    from_pq = json.loads(out.read_text())
    assert from_pq["params"]["hidden_size"]["signal"]["effect"] == pytest.approx(
        from_csv["params"]["hidden_size"]["signal"]["effect"])


def test_command_options(tmp_path):
    path, out = tmp_path / "t.csv", tmp_path / "o.json"
    _tiny().assign(loss=1.0).to_csv(path, index=False)
    assert _run([str(path), "--params", "A,B", "--epoch", "1", "--alpha", "0.1", "--n-test", "50",
                 "--n-resamples", "200", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["epoch"] == 1 and r["alpha"] == 0.1 and r["noise"]["n_test"] == 50
    assert _run([str(path), "--params", "A", "--metric", "loss", "--n-resamples", "200"]) == 0


def _bad(df_or_text, tmp_path, suffix=".csv", argv=("--params", "A,B")) -> str:
    path = tmp_path / f"bad{suffix}"
    if isinstance(df_or_text, pd.DataFrame):
        df_or_text.to_csv(path, index=False)
    else:
        path.write_text(df_or_text)
    with pytest.raises(UserError) as info:
        _run([str(path), *argv])
    message = str(info.value)
    assert "\n" not in message
    return message


def test_bad_inputs_are_one_line_errors(tmp_path):
    t = _tiny()
    assert "missing column(s): B" in _bad(t.drop(columns="B"), tmp_path)
    assert "'control'" in _bad(t.assign(arm=t.arm.replace("noise", "control")), tmp_path)
    nan = t.copy()
    nan.loc[3, "acc"] = np.nan
    assert "NaN" in _bad(nan, tmp_path) and "run s1, epoch 2" in _bad(nan, tmp_path)
    text = t.astype({"acc": object})
    text.loc[0, "acc"] = "ninety"
    assert "non-numeric value 'ninety'" in _bad(text, tmp_path)
    assert "'B' has only one level" in _bad(t.assign(B=1), tmp_path)
    assert "no noise arm" in _bad(t[t.arm == "signal"], tmp_path)
    assert "no signal arm" in _bad(t[t.arm == "noise"], tmp_path)
    assert "empty file" in _bad("", tmp_path)
    assert "no rows" in _bad("run_id,arm,epoch,acc,A,B\n", tmp_path)
    assert "unknown file type" in _bad("x", tmp_path, suffix=".xlsx")
    assert "cannot read" in _bad("not parquet", tmp_path, suffix=".parquet")
    assert "epoch 7 is not in both arms" in _bad(t, tmp_path, argv=("--params", "A,B", "--epoch", "7"))
    assert "--epoch must be" in _bad(t, tmp_path, argv=("--params", "A,B", "--epoch", "final"))
    assert "alpha" in _bad(t, tmp_path, argv=("--params", "A,B", "--alpha", "1.5"))
    assert "more than one row" in _bad(pd.concat([t, t.iloc[:1]]), tmp_path)
    assert "has no row for epoch(s) [2]" in _bad(t.drop(index=1), tmp_path)
    assert "changes its B" in _bad(t.assign(B=np.where(t.index == 0, 1, t.B)), tmp_path)
    assert "disagrees" in _bad(t.assign(n_test=100), tmp_path, argv=("--params", "A,B", "--n-test", "50"))
    with pytest.raises(UserError, match="no such file"):
        _run([str(tmp_path / "missing.csv")])


def test_json_folder_must_exist(tmp_path):
    path = tmp_path / "t.csv"
    _tiny().to_csv(path, index=False)
    with pytest.raises(UserError, match="does not exist"):
        _run([str(path), "--params", "A,B", "--n-resamples", "200", "--json", str(tmp_path / "no" / "o.json")])


def test_console_entry_point(tmp_path):
    cli = pytest.importorskip("signal_noise.cli")
    if "analyze" not in cli.COMMAND_MODULES:
        pytest.skip("signal_noise.cli does not register analyze yet")
    path = tmp_path / "t.csv"
    _tiny().drop(columns="B").to_csv(path, index=False)
    proc = subprocess.run([sys.executable, "-m", "signal_noise.cli", "analyze", str(path), "--params", "A,B"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith("signal-noise: error: missing column(s): B")
    proc = subprocess.run([sys.executable, "-m", "signal_noise.cli", "analyze", str(path), "--params", "A",
                           "--n-resamples", "200"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_results_store(tmp_path):
    store = pytest.importorskip("signal_noise.store")
    if not hasattr(store, "load_results"):
        pytest.skip("signal_noise.store has no load_results yet")
    from signal_noise.config import RunConfig

    path = tmp_path / "r.sqlite"
    cells = [(nl, bs, hs) for nl in (2, 3) for bs in (64, 128) for hs in (10, 20)]
    planned = [store.PlannedRun("signal", c, RunConfig(num_layers=c[0], batch_size=c[1], hidden_size=c[2], epochs=2,
                                                       n_test=500), i) for i, c in enumerate(cells)]
    planned += [store.PlannedRun("noise", c, RunConfig(epochs=2, seed=100 + i, n_test=500), 100 + i)
                for i, c in enumerate(cells)]
    rng = np.random.default_rng(0)
    with store.Store(path) as s:
        s.plan(planned, "test")
        holder = store.new_holder()
        for run in planned:
            assert s.claim(holder, [run.run_id], 1)
            records = [store.EpochRecord(e, 95 + e + 0.1 * run.labels[2] * (run.arm == "signal") + rng.normal(0, .2),
                                         0.1, 1.0) for e in (1, 2)]
            s.complete(holder, run.run_id, records, {})
    r = analyze.analyze_table(analyze.read_table(path), n_resamples=200, n_perm=99)
    assert r["n_runs"] == {"signal": 8, "noise": 8} and r["noise"]["n_test"] == 500 and r["epoch"] == 2
    assert r["params"]["hidden_size"]["signal"]["effect"] > r["params"]["hidden_size"]["noise"]["effect"]
