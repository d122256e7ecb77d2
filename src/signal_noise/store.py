"""The results store: one SQLite file per profile (WAL mode), planned runs, leases and per-epoch rows.

Tables:
  meta(key, value)           schema_version and the profile the store belongs to.
  runs(run_id, ...)          one row per planned run: arm, the three labels, the actual config as JSON,
                             seed, status (pending|running|complete|failed), the lease of whoever trains
                             it, and, once finished, timings, host, torch version, device and path.
  epochs(run_id, epoch, ...) acc (percent), loss (mean train loss), seconds, one row per epoch.

A run becomes complete in the same transaction that inserts all of its epochs, so an interrupted run
leaves no counted rows. Claims go through ``BEGIN IMMEDIATE`` so two runners never take the same run; a
lease expires when its holder stops renewing it, and a holder on this host whose process is gone is
released at once.
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .config import RunConfig
from .errors import UserError

SCHEMA_VERSION = 1
LEASE_SECONDS = 120.0
ARMS = ("signal", "noise")
LABELS = ("num_layers", "batch_size", "hidden_size")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    arm TEXT NOT NULL CHECK (arm IN ('signal', 'noise')),
    num_layers INTEGER NOT NULL,
    batch_size INTEGER NOT NULL,
    hidden_size INTEGER NOT NULL,
    config TEXT NOT NULL,
    seed INTEGER NOT NULL,
    plan_index INTEGER NOT NULL,
    profile TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'complete', 'failed')),
    reason TEXT,
    holder TEXT,
    lease_expires REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    path TEXT,
    pack_size INTEGER,
    width INTEGER,
    started_at REAL,
    finished_at REAL,
    train_seconds REAL,
    host TEXT,
    torch_version TEXT,
    device TEXT,
    threads INTEGER
);
CREATE INDEX IF NOT EXISTS runs_status ON runs (arm, status);
CREATE TABLE IF NOT EXISTS epochs (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    epoch INTEGER NOT NULL,
    acc REAL NOT NULL,
    loss REAL NOT NULL,
    seconds REAL NOT NULL,
    PRIMARY KEY (run_id, epoch)
);
"""


@dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep: its labels (what it is grouped by) and the config it really trains."""
    arm: str
    labels: tuple[int, int, int]  # (num_layers, batch_size, hidden_size) as named in the grid
    config: RunConfig
    plan_index: int

    @property
    def run_id(self) -> str:
        return self.config.run_id(self.arm)


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    acc: float      # test accuracy in percent
    loss: float     # mean training loss over the epoch
    seconds: float  # wall time of the epoch, evaluation included


def new_holder() -> str:
    """An identity for one runner process: host, pid and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _holder_is_dead(holder: str | None) -> bool:
    if not holder:
        return True
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another machine: only its lease can tell
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a zombie (killed, not yet reaped) answers kill(0) but will never renew its lease
        state = Path(f"/proc/{pid_text}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state in ("Z", "X")
    except (OSError, IndexError):
        return False


class Store:
    """A results store on disk. Opening creates it (and its schema) if it does not exist.

    Args:
      path: the SQLite file.
      create: if False, a missing file is an error instead of a new store.
    """

    def __init__(self, path: Path | str, create: bool = True):
        self.path = Path(path)
        folder = self.path.parent
        if not folder.is_dir():
            raise UserError(f"store folder {folder} does not exist")
        if not self.path.exists():
            if not create:
                raise UserError(f"no results store at {self.path}")
            if not os.access(folder, os.W_OK):
                raise UserError(f"store folder {folder} is not writable")
        elif self.path.is_dir():
            raise UserError(f"store path {self.path} is a folder, not a file")
        existed = self.path.exists()
        try:
            self.conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            self.conn.execute("PRAGMA busy_timeout = 60000")
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self._check_schema()
        except sqlite3.DatabaseError as exc:
            if not existed:
                raise UserError(f"cannot create a results store at {self.path}: {exc}") from None
            raise UserError(f"{self.path} is not a usable results store: {exc}") from None

    # ------------------------------------------------------------------ schema
    def _check_schema(self) -> None:
        if self._has_meta():
            self._check_or_create()  # only reads
            return
        with self.transaction():  # creation is serialised between processes
            self._check_or_create()

    def _has_meta(self) -> bool:
        return bool(self.conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone())

    def _check_or_create(self) -> None:
        if self._has_meta():
            row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else None
            if version is None:
                raise UserError(f"{self.path} has no schema version: not a signal-noise store")
            if version > SCHEMA_VERSION:
                raise UserError(f"{self.path} was written by schema version {version}; this signal-noise "
                                f"reads up to {SCHEMA_VERSION}: upgrade signal-noise")
            if version < SCHEMA_VERSION:
                raise UserError(f"{self.path} has old schema version {version}; no migration exists")
            return
        tables = self.conn.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0]
        if tables:
            raise UserError(f"{self.path} is an SQLite file but not a signal-noise store")
        for statement in _SCHEMA.strip().split(";\n"):
            if statement.strip():
                self.conn.execute(statement)
        self.conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def transaction(self) -> "_Transaction":
        """``with store.transaction():`` commits on success and rolls back on any exception.

        Every transaction here writes, so each takes the write lock up front (BEGIN IMMEDIATE), where the
        busy timeout applies: a deferred one that read first could not upgrade once another runner had
        committed (SQLite's "database is locked", which waits for nobody)."""
        return _Transaction(self.conn)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def bind_profile(self, profile: str) -> None:
        """Tie the store to one profile; sweeping another profile into it is an error."""
        with self.transaction():  # two runners starting together must not both insert
            self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('profile', ?)", (profile,))
            current = self.get_meta("profile")
            if current != profile:
                raise UserError(f"{self.path} holds profile {current!r}, not {profile!r}; use another --store")

    # ------------------------------------------------------------------ planning and claiming
    def plan(self, runs: list[PlannedRun], profile: str) -> int:
        """Insert planned runs that are not there yet; returns how many were new."""
        self.bind_profile(profile)
        rows = [(r.run_id, r.arm, *r.labels, json.dumps(r.config.to_dict(), sort_keys=True), r.config.seed,
                 r.plan_index, profile) for r in runs]
        with self.transaction():
            before = self.conn.total_changes
            self.conn.executemany(
                "INSERT OR IGNORE INTO runs (run_id, arm, num_layers, batch_size, hidden_size, config, seed, "
                "plan_index, profile) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            return self.conn.total_changes - before

    def _reclaimable(self, now: float) -> list[str]:
        """Runs held by a runner whose lease ran out or whose process on this host is gone."""
        rows = self.conn.execute("SELECT run_id, holder, lease_expires FROM runs WHERE status='running'").fetchall()
        return [rid for rid, holder, expires in rows if (expires or 0) < now or _holder_is_dead(holder)]

    def claim(self, holder: str, run_ids: list[str], max_runs: int = 1, key=None, limit=None) -> list[dict]:
        """Atomically take claimable runs among ``run_ids`` (in that order) that share ``key(row)`` with
        the first one taken: at most ``limit(first_row)`` of them when ``limit`` is given, else
        ``max_runs``. Returns their rows (dicts), empty when nothing is left."""
        now = time.time()
        with self.transaction():
            stale = self._reclaimable(now)
            if stale:
                self.conn.executemany("UPDATE runs SET status='pending', holder=NULL WHERE run_id=?",
                                      [(r,) for r in stale])
            pending = {row["run_id"]: row for row in self._rows("status='pending'")}
            chosen: list[dict] = []
            for rid in run_ids:
                row = pending.get(rid)
                if row is None:
                    continue
                if chosen and key is not None and key(row) != key(chosen[0]):
                    continue
                chosen.append(row)
                if len(chosen) == 1 and limit is not None:
                    max_runs = limit(row)
                if len(chosen) >= max_runs:
                    break
            self.conn.executemany(
                "UPDATE runs SET status='running', holder=?, lease_expires=?, attempts=attempts+1, started_at=? "
                "WHERE run_id=?", [(holder, now + LEASE_SECONDS, now, r["run_id"]) for r in chosen])
            fresh = {r["run_id"]: r for r in self._rows("holder=? AND status='running'", (holder,))}
        return [fresh[r["run_id"]] for r in chosen]

    def renew(self, holder: str) -> None:
        with self.transaction():
            self.conn.execute("UPDATE runs SET lease_expires=? WHERE holder=? AND status='running'",
                              (time.time() + LEASE_SECONDS, holder))

    def release(self, holder: str, run_ids: list[str] | None = None) -> None:
        """Give runs back (pending) without recording anything: an abandoned run leaves no trace."""
        with self.transaction():
            if run_ids is None:
                self.conn.execute("UPDATE runs SET status='pending', holder=NULL WHERE holder=? AND status='running'",
                                  (holder,))
            else:
                self.conn.executemany(
                    "UPDATE runs SET status='pending', holder=NULL WHERE holder=? AND status='running' AND run_id=?",
                    [(holder, r) for r in run_ids])

    def complete(self, holder: str, run_id: str, records: list[EpochRecord], info: dict) -> None:
        """Record a finished run: all its epochs and its status in one transaction."""
        with self.transaction():
            owner = self.conn.execute("SELECT holder, status FROM runs WHERE run_id=?", (run_id,)).fetchone()
            if owner is None or owner[1] != "running" or owner[0] != holder:
                raise RuntimeError(f"run {run_id} is no longer held by {holder} (state {owner})")
            self._insert_epochs(run_id, records)
            self._finish(run_id, "complete", None, info)

    def _insert_epochs(self, run_id: str, records: list[EpochRecord]) -> None:
        self.conn.executemany("INSERT INTO epochs VALUES (?, ?, ?, ?, ?)",
                              [(run_id, r.epoch, r.acc, r.loss, r.seconds) for r in records])

    def fail(self, holder: str, run_id: str, reason: str, info: dict) -> None:
        with self.transaction():
            self._finish(run_id, "failed", reason, info, holder=holder)

    def _finish(self, run_id: str, status: str, reason: str | None, info: dict, holder: str | None = None) -> None:
        cols = ("path", "pack_size", "width", "train_seconds", "host", "torch_version", "device", "threads")
        values = [info.get(c) for c in cols]
        where = "run_id=?" + (" AND holder=?" if holder else "")
        params = [status, reason, time.time(), *values, run_id] + ([holder] if holder else [])
        self.conn.execute(
            f"UPDATE runs SET status=?, reason=?, holder=NULL, lease_expires=NULL, finished_at=?, "
            f"{', '.join(c + '=?' for c in cols)} WHERE {where}", params)

    def import_complete(self, planned: PlannedRun, records: list[EpochRecord], profile: str, info: dict) -> bool:
        """Record a run trained elsewhere (a W&B agent, an import) as complete, with its epochs, in one
        transaction. Returns False, changing nothing, when that run is already complete here."""
        with self.transaction():
            row = self.conn.execute("SELECT status FROM runs WHERE run_id=?", (planned.run_id,)).fetchone()
            if row and row[0] == "complete":
                return False
            if row is None:
                self.bind_profile(profile)
                self.conn.execute(
                    "INSERT INTO runs (run_id, arm, num_layers, batch_size, hidden_size, config, seed, plan_index, "
                    "profile, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'running')",
                    (planned.run_id, planned.arm, *planned.labels, json.dumps(planned.config.to_dict(), sort_keys=True),
                     planned.config.seed, planned.plan_index, profile))
            self.conn.execute("DELETE FROM epochs WHERE run_id=?", (planned.run_id,))
            self._insert_epochs(planned.run_id, records)
            self._finish(planned.run_id, "complete", None, info)
        return True

    def reset_failed(self, arm: str) -> int:
        with self.transaction():
            cur = self.conn.execute("UPDATE runs SET status='pending', reason=NULL WHERE arm=? AND status='failed'",
                                    (arm,))
            return cur.rowcount

    # ------------------------------------------------------------------ reading
    def _rows(self, where: str = "1", params: tuple = ()) -> list[dict]:
        cur = self.conn.execute(f"SELECT * FROM runs WHERE {where} ORDER BY arm, plan_index", params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def runs(self, arm: str | None = None, status: str | None = None) -> list[dict]:
        clauses, params = [], []
        if arm:
            clauses.append("arm=?")
            params.append(arm)
        if status:
            clauses.append("status=?")
            params.append(status)
        return self._rows(" AND ".join(clauses) or "1", tuple(params))

    def status_counts(self) -> dict:
        """{arm: {planned, complete, failed, pending}} where pending counts running runs too."""
        out = {arm: {"planned": 0, "complete": 0, "failed": 0, "pending": 0} for arm in ARMS}
        for arm, status, n in self.conn.execute("SELECT arm, status, count(*) FROM runs GROUP BY arm, status"):
            out[arm]["planned"] += n
            out[arm]["pending" if status in ("pending", "running") else status] += n
        return out

    def epochs(self, run_id: str) -> list[EpochRecord]:
        rows = self.conn.execute("SELECT epoch, acc, loss, seconds FROM epochs WHERE run_id=? ORDER BY epoch",
                                 (run_id,)).fetchall()
        return [EpochRecord(*r) for r in rows]


class _Transaction:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        if self.conn.in_transaction:  # nested: ride on the outer transaction
            self.nested = True
            return self.conn
        self.nested = False
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.nested:
            return
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")


CONFIG_COLUMNS = ("hidden_size", "num_layers", "batch_size", "epochs", "lr", "seed", "n_train", "n_test")


def load_results(path: Path | str, include_failed: bool = False) -> pd.DataFrame:
    """The tidy long table: one row per (complete run, epoch).

    Columns: run_id, arm, epoch, acc, loss, seconds, num_layers, batch_size, hidden_size (the labels),
    seed, status, path, and the actual config as cfg_<field> for every RunConfig field. With
    ``include_failed`` failed runs appear once each with epoch, acc and loss missing.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no results store at {path}")
    with Store(path, create=False) as store:
        runs = pd.DataFrame(store.runs())
        epochs = pd.read_sql_query("SELECT * FROM epochs", store.conn)
    columns = ["run_id", "arm", "epoch", "acc", "loss", "seconds", *LABELS, "seed", "status", "path",
               *(f"cfg_{c}" for c in CONFIG_COLUMNS)]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    cfg = pd.DataFrame([json.loads(c) for c in runs["config"]]).add_prefix("cfg_")
    runs = pd.concat([runs.drop(columns=["config"]).reset_index(drop=True), cfg], axis=1)
    keep = runs["status"].isin(["complete", "failed"] if include_failed else ["complete"])
    table = runs[keep].merge(epochs, on="run_id", how="left" if include_failed else "inner")
    table = table.sort_values(["arm", "plan_index", "epoch"], kind="stable").reset_index(drop=True)
    if not include_failed:
        table["epoch"] = table["epoch"].astype(int)
    return table[columns]


def export_csv(store_path: Path | str, out: Path | str) -> int:
    """Write the tidy table as CSV through a temporary file, so a failure leaves any old file intact.
    Returns the number of rows written."""
    table = load_results(store_path)
    out = Path(out)
    if not out.parent.is_dir():
        raise UserError(f"output folder {out.parent} does not exist")
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        table.to_csv(tmp, index=False)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return len(table)


def register(sub) -> None:
    p = sub.add_parser("export", help="write a store's tidy per-epoch table as CSV")
    p.add_argument("--store", required=True)
    p.add_argument("--csv", required=True, help="output CSV file")
    p.set_defaults(func=_run_export)
    p = sub.add_parser("status", help="planned, complete, failed and pending runs per arm")
    p.add_argument("--store", required=True)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_run_status)


def _run_export(args) -> int:
    n = export_csv(args.store, args.csv)
    print(f"wrote {n} rows to {args.csv}")
    return 0


def _run_status(args) -> int:
    if not Path(args.store).is_file():
        raise UserError(f"no results store at {args.store}")
    with Store(args.store, create=False) as store:
        counts = store.status_counts()
        profile = store.get_meta("profile")
    if args.json:
        print(json.dumps(counts))
        return 0
    print(f"store {args.store} (profile {profile})")
    print(f"{'arm':8}{'planned':>9}{'complete':>10}{'failed':>8}{'pending':>9}")
    for arm, c in counts.items():
        print(f"{arm:8}{c['planned']:>9}{c['complete']:>10}{c['failed']:>8}{c['pending']:>9}")
    return 0
