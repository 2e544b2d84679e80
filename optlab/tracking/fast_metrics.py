"""Bulk insert of metric points into MLflow's SQL store, for long per-step series.

`MlflowClient.log_batch` builds one ORM object per point (~0.1-0.2 ms each here), which costs more
than a training step of the reference net. With a SQL store this inserts the same rows into MLflow's
own `metrics` table (its SqlMetric model) with one executemany (on PostgreSQL one statement taking
the rows as one JSON document), and updates `latest_metrics` through MLflow's own routine with each key's
most recent point, in one transaction: the same rows `log_batch` would write, at ~5 us a point. Any
other store, or any surprise (a duplicate point, an MLflow internal that moved), falls back to
`log_batch`.

`insert_points` is that insert for any SqlAlchemyStore: the recorders reach it through their client
(`log_columns_fast`), the optlab server app's bulk route (tracking/points_route.py) through the server's
own store. It uses MLflow internals of the store (`ManagedSessionMaker`, `_get_run`, `_check_run_is_active`,
`_update_latest_metrics_if_necessary`); where they moved it raises and each caller falls back.
"""

from __future__ import annotations

import json

from optlab.tracking.store import sql_store

# PostgreSQL: the rows as one JSON document, one statement (psycopg's executemany sends one INSERT per row,
# and its arrays are built an element at a time in Python; json.dumps and PostgreSQL's parser are C)
POSTGRES_INSERT = (
    'INSERT INTO metrics (run_uuid, key, value, "timestamp", step, is_nan) '
    'SELECT run_uuid, key, value, "timestamp", step, is_nan FROM json_to_recordset(CAST(:rows AS JSON)) AS r('
    'run_uuid VARCHAR, key VARCHAR, value DOUBLE PRECISION, "timestamp" BIGINT, step BIGINT, is_nan BOOLEAN)'
)


def log_metrics_fast(client, run_id: str, metrics: list) -> bool:
    """Insert `metrics` (mlflow.entities.Metric) for run_id; False when the caller should use log_batch."""
    return log_columns_fast(
        client,
        run_id,
        [m.key for m in metrics],
        [m.value for m in metrics],
        [m.timestamp for m in metrics],
        [m.step for m in metrics],
    )


def log_columns_fast(
    client, run_id: str, keys: list[str], values: list[float], stamps: list[int], steps: list[int]
) -> bool:
    """The same from parallel lists (what RunRecorder buffers), without building Metric objects."""
    store = sql_store(client)
    if store is None:
        return False
    try:
        insert_points(store, run_id, keys, values, stamps, steps)
        return True
    except Exception:  # noqa: BLE001 - any failure: the caller logs the same points the documented way
        return False


def insert_points(
    store, run_id: str, keys: list[str], values: list[float], stamps: list[int], steps: list[int]
) -> None:
    """Insert the points into `store` (an SqlAlchemyStore) in one transaction, committed on return. Raises
    MlflowException for a run that is missing or not active, and for a database error (its cause is
    SQLAlchemy's IntegrityError for a point the run already holds), AttributeError where MLflow's internals
    moved; nothing is stored then."""
    import sqlalchemy
    from mlflow.store.tracking.dbmodels.models import SqlMetric

    rows: list[dict] = []
    latest: dict[str, dict] = {}
    for key, raw, stamp, step in zip(keys, values, stamps, steps):
        is_nan, value = store.sanitize_metric_value(raw)
        row = {"run_uuid": run_id, "key": key, "value": value, "timestamp": stamp, "step": step, "is_nan": is_nan}
        rows.append(row)
        current = latest.get(key)
        if current is None or (step, stamp, value) > (current["step"], current["timestamp"], current["value"]):
            latest[key] = row
    with store.ManagedSessionMaker(read_only=False) as session:
        run = store._get_run(run_uuid=run_id, session=session)
        store._check_run_is_active(run)
        if not rows:
            return
        dialect = session.bind.dialect.name
        if dialect == "sqlite":  # plain executemany: no per-row SQLAlchemy processing
            session.connection().exec_driver_sql(
                "INSERT INTO metrics (run_uuid, key, value, timestamp, step, is_nan) VALUES (?, ?, ?, ?, ?, ?)",
                [(run_id, r["key"], r["value"], r["timestamp"], r["step"], int(r["is_nan"])) for r in rows],
            )
        elif dialect == "postgresql":  # values are finite once sanitized: plain JSON numbers
            session.execute(sqlalchemy.text(POSTGRES_INSERT), {"rows": json.dumps(rows)})
        else:
            session.execute(sqlalchemy.insert(SqlMetric.__table__), rows)
        store._update_latest_metrics_if_necessary([SqlMetric(**row) for row in latest.values()], session)
        session.commit()
