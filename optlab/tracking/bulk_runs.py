"""Many finished runs, or many tags, written in one transaction.

Through MLflow's client a finished run costs about five round trips (create_run, params, metrics, tags,
set_terminated) and a tag one each. On a SQLite store with the layout sqlite_recorder.py was checked
against (`sqlite_recorder.database`), `write_runs` inserts the rows those calls write (runs, tags,
params, metrics, latest_metrics) for all the runs in one transaction, and `set_tags` all the tags in
one; on any other store, or on a run the direct writer must leave to MLflow (values beyond its
limits), they make MLflow's calls, several runs at once on a tracking server (server_calls.py), the metric
points through the server's bulk route where it offers one (points_route.py).
tests/test_bulk_store.py checks the rows are MLflow's own.
Used for the seed-group runs of a sweep and for synthetic stores (`make bench-store-scale`).
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from contextlib import closing
from dataclasses import dataclass, field

from optlab.tracking import points_route, tags_route
from optlab.tracking.point_buffer import MLFLOW_METRICS, MLFLOW_PARAMS, MLFLOW_TAGS
from optlab.tracking.preflight import local_folder
from optlab.tracking.rest_api import OPTIONAL_RETRIES, RestApi, RestError, Unreachable, usable
from optlab.tracking.server_calls import each_request
from optlab.tracking.sqlite_recorder import (
    MAX_KEY,
    MAX_PARAM_VALUE,
    MAX_RUN_NAME,
    MAX_TAG_VALUE,
    RUN_NAME_TAG,
    Transaction,
    connect,
    database,
    sanitized,
)


@dataclass
class RunRows:
    """One finished run: its name, tags, params and metric points (key, value, step)."""

    name: str
    tags: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)
    metrics: list[tuple[str, float, int]] = field(default_factory=list)
    status: str = "FINISHED"


def write_runs(client, experiment_id: str, runs: list[RunRows]) -> list[str]:
    """Record `runs` (ended with their status) in the experiment; returns their ids in order."""
    target = _direct_target(client.tracking_uri, experiment_id)
    if target is not None and all(_within_limits(r) for r in runs):
        return _insert_runs(target[0], experiment_id, target[1], runs)
    return each_request(client, lambda run: _through_mlflow(client, experiment_id, run), runs)


def set_tags(client, tags: list[tuple[str, str, str]]) -> None:
    """Set (run_id, key, value) tags, in one transaction where the store allows it (a SQLite store, or a
    tracking server running optlab's app: tags_route.py), else a log_batch call per run, up to MLflow's 100
    tags a call."""
    if not tags:
        return
    if usable(client.tracking_uri) and tags_route.send(client.tracking_uri, tags):
        return
    path = database(client.tracking_uri)
    if path is not None and all(len(k) <= MAX_KEY and len(v) <= MAX_TAG_VALUE for _, k, v in tags):
        with closing(connect(path)) as connection, Transaction(connection) as db:
            db.executemany(
                "INSERT OR REPLACE INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                [(k, v, run_id) for run_id, k, v in tags],
            )
        return
    from mlflow.entities import RunTag

    per_run: dict[str, list] = {}
    for run_id, key, value in tags:
        per_run.setdefault(run_id, []).append(RunTag(key, value))

    def write(item) -> None:
        run_id, run_tags = item
        for i in range(0, len(run_tags), MLFLOW_TAGS):
            client.log_batch(run_id, tags=run_tags[i : i + MLFLOW_TAGS])

    each_request(client, write, list(per_run.items()))


def _direct_target(uri: str, experiment_id: str) -> tuple | None:
    """(database path, artifact location) when the rows may be written directly."""
    path = database(uri)
    if path is None:
        return None
    try:
        with closing(connect(path, read_only=True)) as connection:
            found = connection.execute(
                "SELECT artifact_location, lifecycle_stage FROM experiments WHERE experiment_id = ?",
                (int(experiment_id),),
            ).fetchone()
    except (sqlite3.Error, ValueError):
        return None
    if found is None or found[1] != "active" or local_folder(found[0]) is None:
        return None
    return path, found[0]


def _within_limits(run: RunRows) -> bool:
    return len(run.name) <= MAX_RUN_NAME and all(
        len(k) <= MAX_KEY and len(v) <= limit
        for items, limit in ((run.tags, MAX_TAG_VALUE), (run.params, MAX_PARAM_VALUE))
        for k, v in items.items()
    )


def _insert_runs(path, experiment_id: str, location: str, runs: list[RunRows]) -> list[str]:
    ids, now = [], int(time.time() * 1000)
    run_rows, tag_rows, param_rows, metric_rows, latest_rows = [], [], [], [], []
    for run in runs:
        run_id = uuid.uuid4().hex
        ids.append(run_id)
        tags = {**run.tags, RUN_NAME_TAG: run.name}
        run_rows.append(
            (
                run_id,
                run.name,
                tags.get("mlflow.user", "unknown"),
                run.status,
                now,
                now,
                f"{location.rstrip('/')}/{run_id}/artifacts",
                int(experiment_id),
            )
        )
        tag_rows += [(k, v, run_id) for k, v in tags.items()]
        param_rows += [(k, v, run_id) for k, v in run.params.items()]
        latest: dict[str, tuple] = {}
        for key, raw, step in run.metrics:
            value, is_nan = sanitized(raw)
            metric_rows.append((key, value, now, run_id, step, is_nan))
            current = latest.get(key)
            if current is None or (step, value) >= (current[2], current[0]):
                latest[key] = (value, now, step, is_nan)
        latest_rows += [(k, v, t, s, n, run_id) for k, (v, t, s, n) in latest.items()]
    with closing(connect(path)) as connection, Transaction(connection) as db:
        db.executemany(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, "
            "status, start_time, end_time, deleted_time, source_version, lifecycle_stage, artifact_uri, "
            "experiment_id) VALUES (?, ?, 'UNKNOWN', '', '', ?, ?, ?, ?, NULL, '', 'active', ?, ?)",
            run_rows,
        )
        db.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", tag_rows)
        db.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)", param_rows)
        db.executemany(
            "INSERT OR IGNORE INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, ?)",
            metric_rows,
        )
        db.executemany(
            "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?, ?, ?, ?, ?, ?)",
            latest_rows,
        )
    return ids


def _through_mlflow(client, experiment_id: str, run: RunRows) -> str:
    from mlflow.entities import Metric, Param

    run_id = client.create_run(experiment_id, run_name=run.name, tags=run.tags).info.run_id
    params = [Param(k, v) for k, v in run.params.items()]
    for i in range(0, len(params), MLFLOW_PARAMS):
        client.log_batch(run_id, params=params[i : i + MLFLOW_PARAMS])
    now = int(time.time() * 1000)
    sent = _through_points_route(client.tracking_uri, run_id, run.metrics, now)
    metrics = [Metric(k, v, now, s) for k, v, s in run.metrics[sent:]]
    for i in range(0, len(metrics), MLFLOW_METRICS):
        client.log_batch(run_id, metrics=metrics[i : i + MLFLOW_METRICS])
    client.set_terminated(run_id, run.status)
    return run_id


def _through_points_route(uri: str, run_id: str, metrics: list[tuple[str, float, int]], now: int) -> int:
    """How many of the run's metric points, from the first, the server's bulk route stored (points_route.py:
    about a tenth of log-batch's cost a point); 0 on any other store. A failure leaves the rest to log_batch,
    which stores what is missing."""
    if not metrics or not usable(uri):
        return 0
    api = RestApi(uri, retries=OPTIONAL_RETRIES)
    try:
        keys, values, steps = (list(column) for column in zip(*metrics))
        return points_route.send(api, run_id, keys, values, [now] * len(keys), steps)
    except (RestError, Unreachable):
        return 0
    finally:
        api.close()
