#!/usr/bin/env bash
# The full study on one GPU, as one prepared run for the device tool (an H200 machine with python3 +
# torch but no network, no wandb and no papermill). UNTESTED: no GPU was lent to the session that
# wrote it. Before the call, here:  mkdir -p .gpu-data && gzip -c data/MNIST/raw/<each file> > .gpu-data/<file>.gz
# (and `echo /.gpu-data/ >> .git/info/exclude`); call with carry [".gpu-data"]. The store comes back in $OUT.
# Resumable: run it again with the store carried back in (.gpu-data/full.sqlite) and it goes on.
set -euo pipefail
export PYTHONPATH=$PWD/src WANDB_MODE=disabled PYTHONUNBUFFERED=1
mkdir -p data/MNIST/raw
for f in .gpu-data/*-ubyte.gz; do gunzip -c "$f" > "data/MNIST/raw/$(basename "$f" .gz)"; done
store=${OUT:-/tmp}/full.sqlite
[ -f .gpu-data/full.sqlite ] && cp .gpu-data/full.sqlite "$store"
nvidia-smi -L
python3 - "$store" <<'PY'
import json, sys, time
import torch
from signal_noise.data import verify_raw
from signal_noise.sweep import make_options, run_sweep

verify_raw("data")
print("torch", torch.__version__, torch.cuda.get_device_name(0), flush=True)
for arm in ("noise", "signal"):
    start = time.time()
    opts = make_options(arm, "full", store=sys.argv[1], device="cuda", wandb_mode="disabled")
    counts = run_sweep(opts, progress=True)
    print(json.dumps({"arm": arm, "seconds": round(time.time() - start, 1), **counts[arm]}), flush=True)
PY
