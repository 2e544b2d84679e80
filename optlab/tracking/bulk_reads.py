"""Metric histories of many runs at once, and the runs of an experiment that carry given tags.

`MlflowClient.get_metric_history` reads one metric of one run per call: a sweep's seed groups read ten
or so curves of every reported run, thousands of calls on the default suite. On a SQL store MLflow's own
`SqlAlchemyStore.get_metric_history_bulk` reads one metric of many runs in one query; this uses it per
metric key (chunks of CHUNK runs). A tracking server answers the same question for up to 100 runs a
request on the route its own UI reads curves from (`/ajax-api/2.0/mlflow/metrics/get-history-bulk`, up to
25,000 points a request): one request per key and 100 runs instead of one per key and run. Any other
store, or any surprise (a server without that route, a chunk that may have been cut at the server's
limit), falls back to the per-run calls. A server running optlab's app answers every key of 200 runs in
one request instead (histories_route.py). All give the same points.

On a SQLite store with the layout the direct writer was checked against (`sqlite_recorder.database`),
the points are read with one plain SQL query per CHUNK runs instead: MLflow's bulk read builds an ORM
object per point, about 20 s for the convergence sweep's 560,000 points against well under a second.
"""

from __future__ import annotations

import math
import sqlite3
from contextlib import closing

from optlab.tracking import histories_route, runs_route, sqlite_search
from optlab.tracking.rest_api import usable
from optlab.tracking.server_calls import each_request
from optlab.tracking.sqlite_recorder import connect, database
from optlab.tracking.store import sql_store

CHUNK = 500  # run ids per query (SQLite's bound-parameter limit is far above)
MAX_POINTS = 10**9
SERVER_CHUNK, SERVER_MAX_POINTS = 100, 25_000  # a tracking server's limits per bulk-history request
SERVER_ROUTE = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"


def runs_with_tags(uri: str, experiment_id: str, tags: dict[str, str]) -> list | None:
    """The experiment's active runs whose tags equal `tags`, as `MlflowClient.search_runs` returns them, read
    with plain queries: from a SQLite store of the checked layout directly (sqlite_search.py), from a
    tracking server running optlab's app through its route (runs_route.py). None when they must be searched
    through MLflow."""
    found = sqlite_search.runs_with_tags(uri, experiment_id, tags)
    if found is None and usable(uri):
        found = runs_route.read(uri, experiment_id, tags)
    return found


def metric_histories(client, run_ids: list[str], keys: list[str]) -> dict[tuple[str, str], dict[int, float]]:
    """{(run_id, key): {step: value}} for every run and key that has points (the last value logged at a step
    wins, as in MLflow's history order)."""
    path = database(client.tracking_uri)
    if path is not None:
        try:
            return _read_sqlite(path, run_ids, keys)
        except sqlite3.Error:
            pass  # read through MLflow below
    if usable(client.tracking_uri):
        found = histories_route.read(client.tracking_uri, run_ids, keys)
        if found is not None:
            return found
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
    server = _server_reader(client)

    def read(task: tuple[str, list[str]]) -> list:
        key, chunk = task
        points = server(chunk, key) if server is not None else None
        if points is None:
            points = [(run_id, p) for run_id in chunk for p in client.get_metric_history(run_id, key)]
        return sorted(points, key=lambda rp: (rp[0], rp[1].timestamp, rp[1].step, rp[1].value))

    tasks = [
        (key, run_ids[start : start + SERVER_CHUNK]) for key in keys for start in range(0, len(run_ids), SERVER_CHUNK)
    ]
    histories: dict[tuple[str, str], dict[int, float]] = {}
    for (key, _), points in zip(tasks, each_request(client, read, tasks)):
        for run_id, p in points:
            histories.setdefault((run_id, key), {})[p.step] = p.value
    return histories


def _server_reader(client):
    """`read(run_ids, key)` -> [(run_id, Metric)] through a tracking server's bulk route, None for another
    store; `read` itself returns None when the caller should read run by run."""
    try:
        from mlflow.entities import Metric
        from mlflow.store.tracking.rest_store import RestStore
        from mlflow.utils.rest_utils import http_request

        store = client._tracking_client.store
    except Exception:  # noqa: BLE001 - another MLflow layout
        return None
    if not isinstance(store, RestStore):
        return None

    def read(run_ids: list[str], key: str):
        try:
            response = http_request(
                store.get_host_creds(),
                SERVER_ROUTE,
                "GET",
                params={"run_id": run_ids, "metric_key": key, "max_results": SERVER_MAX_POINTS},
            )
            if response.status_code != 200:
                return None
            found = response.json().get("metrics", [])
        except Exception:  # noqa: BLE001 - no such route, or an answer in another shape
            return None
        if len(found) >= SERVER_MAX_POINTS:  # possibly cut at the server's limit
            return None
        return [(m["run_id"], Metric(m["key"], float(m["value"]), int(m["timestamp"]), int(m["step"]))) for m in found]

    return read


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
    store = sql_store(client)
    return getattr(store, "get_metric_history_bulk", None) if store is not None else None
