"""The runs of an experiment carrying given tags, read from a SQLite store in one snapshot.

MLflow's `search_runs` builds an ORM object per run, tag, param and latest metric: about ten seconds for a
sweep of two thousand runs, read at its start (resume), after its phases (selection, the summary) and by
its seed groups. On a SQLite store with the layout the direct writer was checked against
(`sqlite_recorder.database`) this reads the same rows with four plain queries and builds MLflow's own
entities from them, as `SqlRun.to_mlflow_entity` does, in MLflow's default order (start time descending,
then run id). Runs with dataset inputs or model outputs, any other store, or any surprise: None, and the
caller searches through MLflow. tests/test_bulk_store.py compares the two.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing

from optlab.tracking.run_entities import Item, runs_from_rows
from optlab.tracking.sqlite_recorder import connect, database


def runs_with_tags(uri: str, experiment_id: str, tags: dict[str, str]) -> list | None:
    """The active runs of the experiment whose tags equal `tags`, as `MlflowClient.search_runs` returns
    them; None when they must be read through MLflow."""
    path = database(uri)
    if path is None:
        return None
    try:
        with closing(connect(path, read_only=True)) as connection:
            connection.execute("BEGIN")  # one snapshot for the four reads
            try:
                return _read(connection, int(experiment_id), tags)
            finally:
                connection.execute("COMMIT")
    except (sqlite3.Error, ValueError):
        return None


def _read(connection: sqlite3.Connection, experiment_id: int, tags: dict[str, str]) -> list | None:
    from mlflow.entities import Metric

    where = "r.experiment_id = ? AND r.lifecycle_stage = 'active'" + "".join(
        " AND r.run_uuid IN (SELECT run_uuid FROM tags WHERE key = ? AND value = ?)" for _ in tags
    )
    args = [experiment_id, *(part for item in tags.items() for part in item)]
    runs = connection.execute(
        "SELECT r.run_uuid, r.name, r.experiment_id, r.user_id, r.status, r.start_time, r.end_time, "
        f"r.lifecycle_stage, r.artifact_uri FROM runs r WHERE {where} ORDER BY r.start_time DESC, r.run_uuid",
        args,
    ).fetchall()
    linked = connection.execute(
        f"SELECT count(*) FROM inputs i JOIN runs r ON r.run_uuid = i.destination_id OR r.run_uuid = i.source_id "
        f"WHERE (i.destination_type = 'RUN' OR i.source_type = 'RUN_OUTPUT') AND {where}",
        args,
    ).fetchone()[0]
    if linked:
        return None
    rows: dict[str, dict[str, list]] = {run[0]: {"tags": [], "params": [], "metrics": []} for run in runs}
    for table, columns, make in (
        ("tags", "key, value", Item._make),  # RunData keeps only their key and value
        ("params", "key, value", Item._make),
        (
            "latest_metrics",
            "key, value, timestamp, step, is_nan",
            lambda r: Metric(r[0], float("nan") if r[4] else r[1], r[2], r[3]),
        ),
    ):
        field = "metrics" if table == "latest_metrics" else table
        for row in connection.execute(
            f"SELECT x.run_uuid, {', '.join('x.' + c.strip() for c in columns.split(','))} FROM {table} x "
            f"JOIN runs r ON r.run_uuid = x.run_uuid WHERE {where}",
            args,
        ):
            rows[row[0]][field].append(make(row[1:]))
    return runs_from_rows(runs, rows)
