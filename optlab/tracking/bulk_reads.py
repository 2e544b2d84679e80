"""Metric histories of many runs at once.

`MlflowClient.get_metric_history` reads one metric of one run per call: a sweep's seed groups read ten
or so curves of every reported run, thousands of calls on the default suite. On a SQL store MLflow's own
`SqlAlchemyStore.get_metric_history_bulk` reads one metric of many runs in one query; this uses it per
metric key (chunks of CHUNK runs), and any other store (a tracking server), or any surprise, falls back
to the per-run calls. Both give the same points.
"""

from __future__ import annotations

CHUNK = 500  # run ids per query (SQLite's bound-parameter limit is far above)
MAX_POINTS = 10**9


def metric_histories(client, run_ids: list[str], keys: list[str]) -> dict[tuple[str, str], dict[int, float]]:
    """{(run_id, key): {step: value}} for every run and key that has points (the last value logged at a step
    wins, as in MLflow's history order)."""
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


def _bulk_reader(client):
    try:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        store = client._tracking_client.store
    except Exception:  # noqa: BLE001 - another MLflow layout, or no SQL store support installed
        return None
    return store.get_metric_history_bulk if isinstance(store, SqlAlchemyStore) else None
