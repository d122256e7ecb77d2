"""Weights & Biases: log every run as the original fork did, run W&B sweep agents, import W&B runs.

Each run becomes one W&B run with ``epoch``, ``acc`` (test accuracy, %) and ``loss`` logged per epoch,
its labels and actual config in ``wandb.config`` and tags for arm and profile. ``WANDB_MODE`` decides:
``offline`` (the default: files under the store's folder, ``results/wandb/``), ``online`` (needs
``wandb login``) or ``disabled``. The results store is written in every mode, and W&B trouble never
fails a run.
"""
from __future__ import annotations

import json
import os
import struct
import sys
from pathlib import Path

from .config import RunConfig
from .errors import UserError
from .store import LABELS, EpochRecord, PlannedRun, Store

PROJECT = "signal-noise"


def wandb_config(row: dict, cfg: RunConfig, profile: str) -> dict:
    """The config a W&B run carries: the labels under the original names, plus the actual config."""
    return {**{k: int(row[k]) for k in LABELS}, "arm": row["arm"], "profile": profile, "run_id": row["run_id"],
            "seed": cfg.seed, "actual": cfg.to_dict()}


class RunLogger:
    """Logs finished runs to W&B (one W&B run each) in the given mode; a no-op when disabled."""

    def __init__(self, mode: str, profile: str, directory: Path | str | None = None):
        self.mode, self.profile = mode, profile
        self.directory = Path(directory) if directory else None
        self.broken: str | None = None

    def log(self, row: dict, records: list[EpochRecord], info: dict, store_path: str | None = None) -> None:
        if self.mode == "disabled" or self.broken:
            return
        try:
            import wandb

            cfg = RunConfig.from_dict(json.loads(row["config"]))
            directory = self.directory or (Path(store_path).parent if store_path else Path.cwd())
            directory.mkdir(parents=True, exist_ok=True)
            run = wandb.init(project=PROJECT, dir=str(directory), mode=self.mode, reinit="finish_previous",
                             name=f"{row['arm']}-{row['plan_index']:03d}", group=row["arm"],
                             tags=[row["arm"], self.profile], config={**wandb_config(row, cfg, self.profile),
                                                                      "path": info.get("path")},
                             settings=wandb.Settings(silent=True, console="off", x_disable_stats=True))
            for r in records:
                run.log({"epoch": r.epoch, "acc": r.acc, "loss": r.loss})
            run.finish()
        except Exception as exc:  # W&B is a mirror of the store: report once and carry on
            self.broken = f"{type(exc).__name__}: {exc}"
            print(f"signal-noise: W&B logging switched off: {self.broken}", file=sys.stderr)


# ----------------------------------------------------------------------------- offline run files

def read_wandb_file(path: Path | str) -> list[bytes]:
    """The records of an offline ``run-*.wandb`` file (a LevelDB-style log after a 7-byte header)."""
    blob = Path(path).read_bytes()
    if blob[:4] != b":W&B":
        raise UserError(f"{path}: not a W&B run file")
    block, pos, out, partial = 32768, 7, [], b""
    while pos + 7 <= len(blob):
        left_in_block = block - pos % block
        if left_in_block < 7:  # the writer pads a block's tail that cannot hold a header
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", blob[pos:pos + 7])
        payload = blob[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            out.append(payload)
        elif kind == 2:
            partial = payload
        elif kind == 3:
            partial += payload
        elif kind == 4:
            out.append(partial + payload)
            partial = b""
        elif kind == 0 and length == 0:
            continue
    return out


def offline_history(run_dir: Path | str) -> tuple[dict, list[dict]]:
    """(config, history rows) of one offline run folder, read back from its ``.wandb`` file."""
    from wandb.proto import wandb_internal_pb2 as pb

    files = sorted(Path(run_dir).glob("run-*.wandb"))
    if not files:
        raise UserError(f"{run_dir}: no run-*.wandb file")
    config, history = {}, []
    for payload in read_wandb_file(files[0]):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            for item in record.run.config.update:
                config[item.key] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                config[item.key] = json.loads(item.value_json)
        elif kind == "history":
            row = {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in record.history.item}
            history.append(row)
    config = {k: (v.get("value") if isinstance(v, dict) and "value" in v else v) for k, v in config.items()}
    return config, history


# ----------------------------------------------------------------------------- import from the W&B API

def history_records(rows) -> list[EpochRecord]:
    """EpochRecords from W&B history rows with ``epoch``, ``acc`` and ``loss``; epochs renumbered 1..E
    in logged order (the original fork counted from 0, this project from 1)."""
    clean = [r for r in rows if r.get("acc") is not None]
    clean.sort(key=lambda r: (r.get("epoch") is None, r.get("epoch", 0), r.get("_step", 0)))
    out = []
    for i, r in enumerate(clean, start=1):
        acc, loss = float(r["acc"]), float(r.get("loss", float("nan")))
        out.append(EpochRecord(i, acc, loss, float(r.get("_runtime", 0.0) or 0.0)))
    return out


def run_from_wandb(run, default_arm: str | None, profile: str) -> tuple[PlannedRun, list[EpochRecord]]:
    """Map one W&B API run (``.config``, ``.id``, ``.scan_history()``) to a planned run and its epochs."""
    config = dict(run.config)
    arm = config.get("arm", default_arm)
    if arm not in ("signal", "noise"):
        raise UserError(f"W&B run {run.id} has no arm in its config; pass --arm signal or --arm noise")
    try:
        labels = tuple(int(config[k]) for k in LABELS)
    except (KeyError, TypeError, ValueError):
        raise UserError(f"W&B run {run.id} lacks one of the labels {', '.join(LABELS)}") from None
    records = history_records(list(run.scan_history()))
    actual = dict(config.get("actual") or {})
    if not actual:  # a run of the original fork: the labels are the config it trained
        actual = {"num_layers": labels[0], "batch_size": labels[1], "hidden_size": labels[2],
                  "seed": int(config.get("seed", 23)), "epochs": max(len(records), 1)}
    cfg = RunConfig.from_dict(actual)
    index = int(config.get("plan_index", -1))
    return PlannedRun(arm, labels, cfg, index), records


def import_wandb(path: str, store_path: str, sweep: str | None = None, arm: str | None = None,
                 profile: str = "wandb", api=None) -> dict:
    """Copy the finished runs of a W&B project (optionally one sweep) into a store as complete runs.
    Returns counts: imported, skipped (already complete), unfinished."""
    if api is None:
        import wandb

        api = wandb.Api()
    filters = {"sweep": sweep} if sweep else None
    runs = api.runs(path, filters=filters) if filters else api.runs(path)
    counts = {"imported": 0, "skipped": 0, "unfinished": 0}
    with Store(store_path) as store:
        for run in runs:
            if getattr(run, "state", "finished") != "finished":
                counts["unfinished"] += 1
                continue
            planned, records = run_from_wandb(run, arm, profile)
            if not records:
                counts["unfinished"] += 1
                continue
            if store.import_complete(planned, records, profile, {"path": "wandb", "host": f"wandb:{run.id}"}):
                counts["imported"] += 1
            else:
                counts["skipped"] += 1
    return counts


# ----------------------------------------------------------------------------- the CLI, including the W&B agent's entry point

def register(sub) -> None:
    p = sub.add_parser("import-wandb", help="copy finished W&B runs (a project or one sweep) into a store")
    p.add_argument("path", help="ENTITY/PROJECT")
    p.add_argument("--sweep", default=None, help="only runs of this sweep ID")
    p.add_argument("--store", required=True)
    p.add_argument("--arm", default=None, choices=("signal", "noise"), help="arm for runs whose config has none")
    p.add_argument("--profile", default="wandb", help="profile name to record (default: wandb)")
    p.set_defaults(func=_run_import)

    # what a W&B sweep's command runs (sweeps/*.yaml): signal-noise agent --arm=noise --profile=full
    # --num_layers=3 --batch_size=64 --hidden_size=20; it trains that grid point of the arm, records it in
    # the store and logs it to the W&B run the agent started
    p = sub.add_parser("agent", help="train one grid point as a W&B sweep agent's command")
    p.add_argument("--arm", required=True)
    p.add_argument("--profile", default="full")
    for name in LABELS:
        p.add_argument(f"--{name}", f"--{name.replace('_', '-')}", dest=name, type=int, required=True)
    p.add_argument("--replicate", type=int, default=0, help="which Noise replicate of this label triple")
    p.add_argument("--store", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--data-root", default=None)
    p.set_defaults(func=_run_agent)


def _run_import(args) -> int:
    counts = import_wandb(args.path, args.store, sweep=args.sweep, arm=args.arm, profile=args.profile)
    print(json.dumps(counts))
    return 0


def _run_agent(args) -> int:
    from .grid import check_arm, get_profile, plan_arm
    from .paths import DATA_DIR, default_store
    from .train import load_data, resolve_device, train_run

    check_arm(args.arm)
    profile = get_profile(args.profile)
    labels = tuple(getattr(args, k) for k in LABELS)
    matches = [p for p in plan_arm(args.arm, profile) if p.labels == labels]
    if not matches:
        raise UserError(f"{dict(zip(LABELS, labels))} is not a grid point of profile {profile.name}")
    if not 0 <= args.replicate < len(matches):
        raise UserError(f"replicate {args.replicate} is outside 0..{len(matches) - 1}")
    planned = matches[args.replicate]
    device = resolve_device(args.device)
    store_path = Path(args.store) if args.store else default_store(profile.name)
    store_path.parent.mkdir(parents=True, exist_ok=True)
    cfg = planned.config
    data = load_data(str(args.data_root or DATA_DIR), cfg.n_train, cfg.n_test, str(device))
    mode = os.environ.get("WANDB_MODE", "offline")
    run = None
    if mode != "disabled":
        import wandb

        row = {"run_id": planned.run_id, "arm": planned.arm, "plan_index": planned.plan_index,
               **dict(zip(LABELS, labels))}
        # under an agent, wandb.init joins the sweep's run; the sweep's own parameters are kept
        run = wandb.init(project=PROJECT, dir=str(store_path.parent), tags=[planned.arm, profile.name],
                         config=wandb_config(row, cfg, profile.name), allow_val_change=True)

    def on_epoch(r: EpochRecord) -> None:
        print(f"epoch {r.epoch}: acc {r.acc:.2f}%  loss {r.loss:.4f}", flush=True)
        if run is not None:
            run.log({"epoch": r.epoch, "acc": r.acc, "loss": r.loss})

    records = train_run(cfg, data=data, device=device, on_epoch=on_epoch)
    with Store(store_path) as store:
        store.import_complete(planned, records, profile.name, {"path": "single", "device": str(device)})
    if run is not None:
        run.finish()
    return 0
