"""Kill a quick Noise sweep with SIGKILL halfway, restart it, and compare with an uninterrupted store.

Usage: python bench/kill_resume.py REFERENCE_STORE NEW_STORE   (e.g. results/quick.sqlite /tmp/k.sqlite)
"""
import signal, subprocess, sys, time, os
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from signal_noise.store import Store, load_results
ref, store = sys.argv[1], sys.argv[2]
cmd = [sys.executable, "-m", "signal_noise.cli", "sweep", "--arm", "noise", "--profile", "quick", "--store", store, "--quiet", "--wandb", "disabled"]
env = dict(os.environ, WANDB_MODE="disabled")
t0 = time.time()
p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
while True:
    time.sleep(2)
    if os.path.exists(store):
        with Store(store) as s:
            c = s.status_counts()["noise"]["complete"]
        if c >= 18:  # half of the quick profile's 36 Noise runs
            break
p.send_signal(signal.SIGKILL); p.wait()
with Store(store) as s:
    at_kill = {r["run_id"]: (r["finished_at"], r["attempts"]) for r in s.runs("noise", "complete")}
    running = [r["run_id"] for r in s.runs("noise", "running")]
print(f"killed after {time.time()-t0:.0f}s: {len(at_kill)} complete, {len(running)} in flight (lost with the kill)")
subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
with Store(store) as s:
    after = {r["run_id"]: (r["finished_at"], r["attempts"]) for r in s.runs("noise", "complete")}
    counts = s.status_counts()["noise"]
    attempts = [r["attempts"] for r in s.runs("noise")]
untouched = all(after[k] == v for k, v in at_kill.items())
a, b = load_results(ref), load_results(store); a = a[a.arm == "noise"]
acc = lambda t: {rid: g.sort_values("epoch")["acc"].tolist() for rid, g in t.groupby("run_id")}
same = acc(a) == acc(b)
print(f"after restart: {counts}; runs complete before the kill untouched: {untouched}; "
      f"runs trained twice: {sum(x > 1 for x in attempts)} (the {len(running)} killed in flight were retrained once more)")
print(f"same set of complete runs as the uninterrupted sweep: {set(acc(a)) == set(acc(b))}; identical accuracies run by run: {same}")
print(f"total wall {time.time()-t0:.0f}s")
