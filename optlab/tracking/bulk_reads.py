"""Metric histories of many runs at once.

`MlflowClient.get_metric_history` reads one metric of one run per call: a sweep's seed groups read ten
or so curves of every reported run, thousands of calls on the default suite. On a SQL store MLflow's own
`SqlAlchemyStore.get_metric_history_bulk` reads one metric of many runs in one query; this uses it per
metric key (chunks of CHUNK runs), and any other store (a tracking server), or any surprise, falls back
to the per-run calls. All give the same points.

On a SQLite store with the layout the direct writer was checked against (`sqlite_recorder.database`),
the points are read with one plain SQL query per CHUNK runs instead: MLflow's bulk read builds an ORM
object per point, about 20 s for the convergence sweep's 560,000 points against well under a second.
"""

from __future__ import annotations

import math
import sqlite3
from contextlib import closing

from optlab.tracking.sqlite_recorder import connect, database

CHUNK = 500  # run ids per query (SQLite's bound-parameter limit is far above)
MAX_POINTS = 10**9


def metric_histories(client, run_ids: list[str], keys: list[str]) -> dict[tuple[str, str], dict[int, float]]:
    """{(run_id, key): {step: value}} for every run and key that has points (the last value logged at a step
    wins, as in MLflow's history order)."""
    path = database(client.tracking_uri)
    if path is not None:
        try:
            return _read_sqlite(path, run_ids, keys)
        except sqlite3.Error:
            pass  # read through MLflow below
    bulk = _bulk_reader(client)
    if bulk is not None:
        try:
            out: dict[tuple[str, str], dict[int, float]] = {}
            for key in keys:
                for start in range(0, len(run_ids), CHUNK):
                    for point in bulk(run_ids[start : start + CHUNK], key, MAX_POINTS):
                        out.setdefault((point.run_id, key), {})[point.step] = point.value
            return out
        except Exception:  # noqa: BLE001 - an MLflow internal that moved: read the documented way
            pass
    out = {}
    for run_id in run_ids:
        for key in keys:
            history = client.get_metric_history(run_id, key)
            if history:
                out[(run_id, key)] = {
                    p.step: p.value for p in sorted(history, key=lambda p: (p.timestamp, p.step, p.value))
                }
    return out


def _read_sqlite(path, run_ids: list[str], keys: list[str]) -> dict[tuple[str, str], dict[int, float]]:
    """MLflow's rows as its bulk read orders them (run, timestamp, step, value); NaN is stored as
    `is_nan`, as MLflow's own entity conversion reads it."""
    out: dict[tuple[str, str], dict[int, float]] = {}
    if not run_ids or not keys:
        return out
    key_marks = ", ".join("?" * len(keys))
    with closing(connect(path, read_only=True)) as connection:
        for start in range(0, len(run_ids), CHUNK):
            chunk = run_ids[start : start + CHUNK]
            rows = connection.execute(
                f"SELECT run_uuid, key, step, value, is_nan FROM metrics WHERE run_uuid IN "
                f"({', '.join('?' * len(chunk))}) AND key IN ({key_marks}) "
                f"ORDER BY run_uuid, key, timestamp, step, value",
                [*chunk, *keys],
            )
            for run_id, key, step, value, is_nan in rows:
                out.setdefault((run_id, key), {})[step] = math.nan if is_nan else float(value)
    return out


def _bulk_reader(client):
    try:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        store = client._tracking_client.store
    except Exception:  # noqa: BLE001 - another MLflow layout, or no SQL store support installed
        return None
    return store.get_metric_history_bulk if isinstance(store, SqlAlchemyStore) else None
