"""A new SQLite store is created whole or not at all.

MLflow creates a SQLite store by running its schema migrations one by one in the database file
itself; a failure in the middle (a full disk) leaves a store at an intermediate revision that every
later open refuses ("table _alembic_tmp_params already exists"). So the store is built aside, in a
file next to it, and moved into place only once every migration has run. The caller holds the
store's creation lock, so any file left aside by an earlier creation is stale.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

from optlab.errors import StoreError

ASIDE_MARK = ".tmp-"  # mlflow.db.tmp-<pid>: a store being built


def aside_path(database: Path) -> Path:
    return database.with_name(f"{database.name}{ASIDE_MARK}{os.getpid()}")


def needs_creation(database: Path) -> bool:
    """No store yet (a zero-byte file is what SQLite leaves when it could not write a single page)."""
    try:
        return database.stat().st_size == 0
    except FileNotFoundError:
        return True


def create_aside(database: Path, build) -> None:
    """Build the store with `build(uri)` in a file beside `database`, then move it into place. On any
    failure the file aside is removed (freeing what it took on a full disk) and the error raised."""
    remove_stale(database)
    aside = aside_path(database)
    try:
        build(f"sqlite:///{aside}")
        write_ahead_log(aside)
        os.replace(aside, database)
    except BaseException:
        _remove(aside)
        raise


def write_ahead_log(database: Path) -> None:
    """Put the store in SQLite's write-ahead-log mode (kept in the file: every later connection, MLflow's
    too, uses it). A commit then appends to the log instead of copying pages to a rollback journal first,
    and readers (resume, the UI) no longer wait for writers: the sweep's workers share one store. Still
    one file to copy once no optlab command has it open (`fold_log` at each command's exit)."""
    with closing(sqlite3.connect(database)) as connection:
        (mode,) = connection.execute("PRAGMA journal_mode=WAL").fetchone()
    if mode != "wal":
        raise StoreError(f"cannot put the new store {database} in write-ahead-log mode (SQLite answered {mode!r})")


# SQLite folds the log into the database after a commit that leaves it this long (its default, 1000
# pages, is 4 MB) and cuts the file back to the second size after a fold: a store near a full disk then
# needs ~1 MB beside it to record, as it did with a rollback journal. Set on every connection (not kept
# in the file): optlab's own (sqlite_recorder) and MLflow's, through SQLAlchemy (`bound_log_everywhere`).
LOG_FOLD_PAGES = 128
LOG_KEPT_BYTES = 1 << 20


def bound_log(connection) -> None:
    """Bound the write-ahead log of one DB-API SQLite connection (harmless on a store with a rollback journal)."""
    connection.execute(f"PRAGMA wal_autocheckpoint={LOG_FOLD_PAGES}")
    connection.execute(f"PRAGMA journal_size_limit={LOG_KEPT_BYTES}")


def bound_log_everywhere() -> None:
    """Bound the log of every SQLite connection SQLAlchemy opens in this process from now on (MLflow's)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not event.contains(Engine, "connect", _bound_new_connection):
        event.listen(Engine, "connect", _bound_new_connection)


def _bound_new_connection(dbapi_connection, _record) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        bound_log(dbapi_connection)


def fold_log(database: Path) -> None:
    """Copy what the write-ahead log holds into the database file and empty the log, so the file alone
    holds every committed run (a process that exits without closing its connections, as MLflow's pooled
    ones do, leaves the log beside it otherwise). Run at the exit of every command that opened the store;
    never raises (a store in use elsewhere is folded by the last command to finish)."""
    try:
        target = f"{Path(database).resolve().as_uri()}?mode=rw"  # never creates a file that is gone
        with closing(sqlite3.connect(target, uri=True, timeout=5)) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error:
        pass


def remove_stale(database: Path) -> None:
    """Remove what earlier creations left aside (a process killed while building)."""
    for path in database.parent.glob(f"{database.name}{ASIDE_MARK}*"):
        _remove(path)


def _remove(path: Path) -> None:
    for leftover in (path, *(path.with_name(path.name + end) for end in ("-journal", "-wal", "-shm"))):
        try:
            leftover.unlink()
        except FileNotFoundError:
            pass


def half_migrated(database: Path, exc: BaseException) -> StoreError | None:
    """One line saying what to do with a store that an interrupted creation or upgrade left at an
    intermediate schema revision (made by an earlier version of optlab, or by MLflow itself)."""
    message = str(exc)
    if "already exists" not in message:  # e.g. "table _alembic_tmp_params already exists"
        return None
    runs = _count_runs(database)
    holds = "no runs" if runs == 0 else f"{runs} runs" if runs else "an unknown number of runs"
    what = (
        f"delete {database} and run again"
        if runs == 0
        else "restore it from a backup, or move it away and run again to start a new store"
    )
    return StoreError(
        f"the tracking store {database} was left half-created by an interrupted schema migration "
        f"(e.g. a full disk) and holds {holds}: {what}"
    )


def _count_runs(database: Path) -> int | None:
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
            return connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    except sqlite3.Error:
        return None
