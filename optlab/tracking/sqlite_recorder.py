"""A run recorder that writes one run straight into MLflow's SQLite schema, without importing MLflow.

Importing MLflow and opening its store cost about 2 s of CPU here, more than a short `optlab run`
trains, so on the default store `optlab run` would wait for it. This recorder writes, with Python's
sqlite3, the rows MLflow's SqlAlchemyStore writes for create_run, log_batch and set_terminated (runs,
tags, params, metrics, latest_metrics) and the artifact files MLflow's local artifact repository
writes (config.json, params.safetensors under the run's artifact folder). MLflow then reads the run
as one of its own: the UI, search_runs, the report.

It is used only where the store's layout is the one it was checked against: `SqliteRunRecorder.open`
returns None (and the caller records through MLflow) unless the database exists at the schema
revision below, the experiment exists, is active and already carries optlab's UI tags, its artifacts
are in a local folder, and MLflow's workspaces are off. tests/test_sqlite_recorder.py checks the revision
against the installed MLflow's, and that a run written here has the same rows as the same run written
through MLflow. `OPTLAB_STORE_WRITER=mlflow` always records through MLflow.

The promises are RunRecorder's: bad storage before the run exists refuses in one line; FINISHED only
when the metrics, params, weights and status are all stored and read back, else FAILED with the reason.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
import uuid
from contextlib import closing, suppress
from pathlib import Path

from optlab.errors import StoreError
from optlab.tracking import sqlite_creation
from optlab.tracking.accounting import timed
from optlab.tracking.failures import describe
from optlab.tracking.point_buffer import PointBuffer
from optlab.tracking.preflight import check_folder_writable, local_folder
from optlab.tracking.run_facts import (
    CONFIG,
    WEIGHTS,
    abandoned,
    abandoned_reason,
    discarded,
    end_status,
    end_tags,
    run_files,
    run_params,
    run_tags,
    save_weights,
    storage_problems,
)
from optlab.tracking.ui import DESCRIBED_BY, is_described
from optlab.tracking.uri import sqlite_path

SCHEMA_REVISION = "dc11669786a5"  # MLflow 3.17's alembic head, the layout written here
WRITER_ENV = "OPTLAB_STORE_WRITER"  # "mlflow": never write directly
BUSY_TIMEOUT = 30.0  # seconds a write waits for another process's transaction
DEFAULT_WORKSPACE = "default"
RUN_NAME_TAG = "mlflow.runName"
MAX_TAG_VALUE, MAX_PARAM_VALUE, MAX_KEY, MAX_RUN_NAME = 8000, 6000, 250, 250  # MLflow's limits


def database(uri: str) -> Path | None:
    """The SQLite file this recorder may write for `uri`, or None (another store, a different layout,
    direct writing switched off)."""
    path = sqlite_path(uri)
    if path is None or os.environ.get(WRITER_ENV, "direct") == "mlflow":
        return None
    if os.environ.get("MLFLOW_ENABLE_WORKSPACES", "").lower() in ("1", "true") or os.environ.get("MLFLOW_WORKSPACE"):
        return None
    try:
        if not path.is_file():
            return None
        with closing(connect(path, read_only=True)) as connection:
            found = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    except (OSError, sqlite3.Error):
        return None
    return path if found == [(SCHEMA_REVISION,)] else None


def connect(path: Path, read_only: bool = False) -> sqlite3.Connection:
    target = f"{path.resolve().as_uri()}?mode=ro" if read_only else str(path)
    connection = sqlite3.connect(target, uri=read_only, timeout=BUSY_TIMEOUT, isolation_level=None)
    if not read_only and connection.execute("PRAGMA journal_mode").fetchone() == ("wal",):
        # In write-ahead-log mode (stores optlab creates) a commit then waits for no disk flush: a process
        # crash loses nothing, a power cut at most the last commits, whole and in order (a run's end is
        # committed after its points, so a store never says FINISHED without them). A store with a
        # rollback journal keeps SQLite's full flushes: there, fewer could corrupt it on a power cut.
        connection.execute("PRAGMA synchronous=NORMAL")
        sqlite_creation.bound_log(connection)
    return connection


class Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any error): the writer lock is taken before reading."""

    def __init__(self, connection: sqlite3.Connection):
        self.connection = connection

    def __enter__(self) -> sqlite3.Connection:
        self.connection.execute("BEGIN IMMEDIATE")
        return self.connection

    def __exit__(self, kind, exc, tb):
        if kind is None:
            self.connection.execute("COMMIT")
        else:
            try:
                self.connection.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        return False


def _now_ms() -> int:
    return int(time.time() * 1000)


def _artifact_uri(location: str, run_id: str) -> str:
    """MLflow's append_to_uri_path(location, run_id, "artifacts") for a local location."""
    return f"{location.rstrip('/')}/{run_id}/artifacts"


def sanitized(value: float) -> tuple[float, int]:
    """MLflow's sanitize_metric_value: NaN is stored as 0 with is_nan, infinities as the largest floats."""
    if math.isnan(value):
        return 0.0, 1
    if math.isinf(value):
        return (1.7976931348623157e308 if value > 0 else -1.7976931348623157e308), 0
    return value, 0


class SqliteRunRecorder:
    """The recorder protocol (start, log, log_series, finish, abort, run_id, status, reason) on sqlite3."""

    def __init__(self, path: Path, experiment_id: int, location: str, parent_run_id: str | None = None):
        self.path, self.experiment_id, self.location = path, experiment_id, location
        self.parent_run_id = parent_run_id  # a sweep's point: its parent run (its runs are the sweep's to close)
        self.connection = connect(path)
        self.run_id: str | None = None
        self.status: str | None = None
        self.reason: str | None = None
        self._points = PointBuffer()  # kept until the run's end (or an explicit flush): one transaction
        self._logged_keys: set[str] = set()
        self._n_params = 0
        self._folder: Path | None = None

    @property
    def folder(self) -> Path:
        """The run's artifact folder; only a started run has one."""
        if self._folder is None:
            raise RuntimeError("the run has no artifact folder before start()")
        return self._folder

    @classmethod
    def open(
        cls, uri: str, experiment: str | None = None, experiment_id: str | None = None, parent_run_id: str | None = None
    ) -> SqliteRunRecorder | None:
        """A recorder for `experiment` (a name, or `experiment_id`) in the store at `uri`, or None when MLflow
        must record instead. `parent_run_id`: the runs are nested under it (a sweep's points)."""
        with timed("run creation"):
            return cls._open(uri, experiment, experiment_id, parent_run_id)

    @classmethod
    def _open(
        cls, uri: str, experiment: str | None, experiment_id: str | None, parent_run_id: str | None
    ) -> SqliteRunRecorder | None:
        path = database(uri)
        if path is None:
            return None
        if experiment is not None:
            column, key = "name", experiment
        elif experiment_id is not None:
            column, key = "experiment_id", experiment_id
        else:  # neither a name nor an id: nothing to open
            return None
        try:
            with closing(connect(path, read_only=True)) as connection:
                found = connection.execute(
                    "SELECT experiment_id, artifact_location, lifecycle_stage FROM experiments "
                    f"WHERE {column} = ? AND workspace = ?",
                    (int(key) if column == "experiment_id" else key, DEFAULT_WORKSPACE),
                ).fetchall()
                if len(found) != 1 or found[0][2] != "active" or local_folder(found[0][1]) is None:
                    return None
                found_id, location, _ = found[0]
                tags = dict(  # only those is_described reads (the saved views' tags are large)
                    connection.execute(
                        "SELECT key, value FROM experiment_tags WHERE experiment_id = ? AND key IN (?, ?, ?)",
                        (found_id, *DESCRIBED_BY),
                    ).fetchall()
                )
        except (sqlite3.Error, ValueError, TypeError):
            return None
        if not is_described(tags) or not (location.startswith("file:") or location.startswith("/")):
            return None
        return cls(path, found_id, location, parent_run_id)

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self, config, problem, plan, extra_tags: dict | None = None) -> SqliteRunRecorder:
        """Create the run (raises NotDirect, having written nothing, for a run MLflow must record)."""
        with timed("run creation"):
            return self._start(config, problem, plan, extra_tags)

    def _start(self, config, problem, plan, extra_tags: dict | None = None) -> SqliteRunRecorder:
        run_name = config.run_name or config.label()
        tags = {**run_tags(config, problem, self.parent_run_id, extra_tags), RUN_NAME_TAG: run_name}
        params = run_params(config, problem, plan)
        _check_limits(run_name, tags, params)
        check_folder_writable(local_folder(self.location))  # before a run exists that could not finish
        run_id = uuid.uuid4().hex
        artifact_uri = _artifact_uri(self.location, run_id)
        try:
            with Transaction(self.connection) as db:
                if self.parent_run_id is None:
                    self._close_abandoned(db)
                db.execute(
                    "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, "
                    "status, start_time, end_time, deleted_time, source_version, lifecycle_stage, artifact_uri, "
                    "experiment_id) VALUES (?, ?, 'UNKNOWN', '', '', ?, 'RUNNING', ?, NULL, NULL, '', 'active', "
                    "?, ?)",
                    (run_id, run_name, tags.get("mlflow.user", "unknown"), _now_ms(), artifact_uri, self.experiment_id),
                )
                db.executemany(
                    "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                    [(k, v, run_id) for k, v in tags.items()],
                )
                db.executemany(
                    "INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
                    [(k, v, run_id) for k, v in params.items()],
                )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot create the run in {self.path}: {describe(exc)}") from exc
        self.run_id, self._n_params, self._folder = run_id, len(params), local_folder(artifact_uri)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with timed("artifacts"), open(self.folder / CONFIG, "w") as file:
                json.dump(config.to_dict(), file, indent=2, default=str)
            for name, data in run_files(config, problem).items():
                (self.folder / name).parent.mkdir(parents=True, exist_ok=True)
                (self.folder / name).write_bytes(data)
        except BaseException as exc:
            interrupted = isinstance(exc, KeyboardInterrupt)
            self.abort(
                "KILLED" if interrupted else "FAILED", "interrupted" if interrupted else f"storage: {describe(exc)}"
            )
            if isinstance(exc, Exception):
                raise StoreError(f"run {run_id}: could not record its config: {describe(exc)}") from exc
            raise
        return self

    def log(self, step: int, values: dict[str, float]) -> None:
        self._points.log(step, values)

    def log_series(self, steps: list[int], columns: dict[str, list[float]]) -> None:
        self._points.log_series(steps, columns)

    def finish(self, status: str, reason: str | None, summary: dict, params) -> None:
        """Store what is left and end the run: FINISHED only when everything is stored and read back."""
        with timed("run end"):
            self._finish(status, reason, summary, params)

    def _finish(self, status: str, reason: str | None, summary: dict, params) -> None:
        problems = storage_problems(
            status, params, self.flush, self._save_weights, self._missing, self._discard_weights
        )
        status, reason = end_status(status, reason, problems)
        try:
            self._end(status, end_tags(status, reason, summary))
        except sqlite3.Error as exc:
            if status == "FINISHED":  # no status tag: not everything is stored
                status, reason = "FAILED", f"storage: status tag: {describe(exc)}"
                if params is not None:
                    discarded(self._discard_weights)
            try:
                self._end(status, {})
            except sqlite3.Error as again:
                raise StoreError(
                    f"run {self.run_id}: could not record its end ({status}): {describe(again)}; it "
                    f"stays RUNNING in the store until the next start in its experiment marks it "
                    f"KILLED"
                ) from again
        self.status, self.reason = status, reason
        self.connection.close()

    def _save_weights(self, params) -> None:
        try:
            with timed("artifacts"):
                save_weights(params, self.folder / WEIGHTS)
        except Exception:
            with suppress(OSError):  # a partial file is no weights
                (self.folder / WEIGHTS).unlink(missing_ok=True)
            raise

    def _discard_weights(self) -> None:
        (self.folder / WEIGHTS).unlink(missing_ok=True)

    def abort(self, status: str, reason: str) -> None:
        """End a run that cannot go on (interrupted, its start failed) as KILLED or FAILED; never raises."""
        if self.run_id is None or self.status is not None:
            return
        try:
            self._end(status, end_tags(status, reason, {}))
            self.status, self.reason = status, reason
        except sqlite3.Error:
            pass

    # ---- the rows -------------------------------------------------------------------------
    def flush(self) -> None:
        """Store the points logged so far (in one transaction)."""
        if not self._points:
            return
        with timed("metric writes"):
            self._store(list(zip(*self._points.take())))  # (key, value, timestamp, step) in logging order

    def _store(self, rows: list[tuple]) -> None:
        self._logged_keys.update(row[0] for row in rows)
        stored: list[tuple] = []
        latest: dict[str, tuple] = {}
        for key, raw, stamp, step in rows:
            value, is_nan = sanitized(raw)
            stored.append((key, value, stamp, self.run_id, step, is_nan))
            current = latest.get(key)
            if current is None or (step, stamp, value) > (current[2], current[1], current[0]):
                latest[key] = (value, stamp, step, is_nan)
        with Transaction(self.connection) as db:
            self._check_active(db)
            # an identical point twice is one point (MLflow keeps one row too)
            db.executemany(
                "INSERT OR IGNORE INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                stored,
            )
            before = {
                key: (value, stamp, step)
                for key, value, stamp, step in db.execute(
                    "SELECT key, value, timestamp, step FROM latest_metrics WHERE run_uuid = ?", (self.run_id,)
                )
            }
            newer = [
                (key, value, stamp, step, is_nan, self.run_id)
                for key, (value, stamp, step, is_nan) in latest.items()
                if key not in before or (step, stamp, value) > (before[key][2], before[key][1], before[key][0])
            ]
            db.executemany(
                "INSERT OR REPLACE INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                newer,
            )

    def _check_active(self, db: sqlite3.Connection) -> None:
        found = db.execute("SELECT lifecycle_stage FROM runs WHERE run_uuid = ?", (self.run_id,)).fetchone()
        if found is None or found[0] != "active":
            raise StoreError(f"run {self.run_id} is {'missing' if found is None else found[0]} in the store")

    def _end(self, status: str, tags: dict[str, str]) -> None:
        with Transaction(self.connection) as db:
            db.executemany(
                "INSERT OR REPLACE INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                [(k, v, self.run_id) for k, v in tags.items()],
            )
            db.execute("UPDATE runs SET status = ?, end_time = ? WHERE run_uuid = ?", (status, _now_ms(), self.run_id))

    def _missing(self, with_weights: bool) -> list[str]:
        """Read the run back: what a FINISHED run promises and the store does not hold."""
        try:
            missing = []
            ((params,),) = self.connection.execute("SELECT count(*) FROM params WHERE run_uuid = ?", (self.run_id,))
            if params < self._n_params:
                missing.append(f"params: {params} of {self._n_params} stored")
            stored = {
                key
                for (key,) in self.connection.execute(
                    "SELECT key FROM latest_metrics WHERE run_uuid = ?", (self.run_id,)
                )
            }
            lost = sorted(self._logged_keys - stored)
            if lost:
                missing.append(f"metrics: {', '.join(lost[:5])}{' ...' if len(lost) > 5 else ''} not stored")
            if with_weights and not ((self.folder / WEIGHTS).is_file() and (self.folder / WEIGHTS).stat().st_size):
                missing.append(f"weights: {WEIGHTS} not stored")
            if not (self.folder / CONFIG).is_file():
                missing.append(f"config: {CONFIG} not stored")
            return missing
        except (OSError, sqlite3.Error) as exc:
            return [f"read-back: {describe(exc)}"]

    def _close_abandoned(self, db: sqlite3.Connection) -> None:
        """recorder.close_abandoned_runs, inside the transaction that creates the new run."""
        running = [
            run_id
            for (run_id,) in db.execute(
                "SELECT run_uuid FROM runs"
                " WHERE experiment_id = ? AND status = 'RUNNING' AND lifecycle_stage = 'active'",
                (self.experiment_id,),
            )
        ]
        for run_id in running:
            tags = dict(db.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,)).fetchall())
            if not abandoned(tags):
                continue
            db.executemany(
                "INSERT OR REPLACE INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                [("optlab.status", "KILLED", run_id), ("optlab.failure_reason", abandoned_reason(tags), run_id)],
            )
            db.execute("UPDATE runs SET status = 'KILLED', end_time = ? WHERE run_uuid = ?", (_now_ms(), run_id))


class NotDirect(Exception):
    """Raised by start before anything is written: this run is for MLflow to record (its own rules apply)."""


def _check_limits(run_name: str, tags: dict[str, str], params: dict[str, str]) -> None:
    """Values beyond MLflow's length limits, which MLflow truncates or refuses by its own settings."""
    if len(run_name) > MAX_RUN_NAME or any(
        len(k) > MAX_KEY or len(v) > limit
        for items, limit in ((tags, MAX_TAG_VALUE), (params, MAX_PARAM_VALUE))
        for k, v in items.items()
    ):
        raise NotDirect("a name or value beyond MLflow's length limits")
