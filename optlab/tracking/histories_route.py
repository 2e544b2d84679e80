"""The optlab server app's route for the metric histories of many runs: `POST /api/2.0/optlab/metrics/histories`.

A sweep's seed groups read ten or so curves of every run it reported; the reports read them all. MLflow's
own bulk route (`/ajax-api/2.0/mlflow/metrics/get-history-bulk`) takes one key and 100 runs a request and
builds an object a point on the server: about 0.45 s a request on a server that shares its cores with
training. This route answers every key of up to MOST_RUNS runs in one request, read with one query of the
server's own store (SQL rows, no object a point),

    {"run_ids": [...], "keys": [...]}  ->  {"histories": [{"run_id", "key", "steps": [...], "values": [...]}]}

each history's points in MLflow's history order (timestamp, step, value), values as MLflow's client reads
them (numbers, or "NaN" where MLflow stores NaN; MLflow stores ±inf as ±1.797e308 and reads that back).
A request whose answer would hold more than MOST_POINTS points is answered 400 RESOURCE_LIMIT_EXCEEDED;
malformed input 400 INVALID_PARAMETER_VALUE naming the bad value. Served and guarded as every optlab route
(route_kit.py). The client (`read`) returns None when the server does not offer the route (404) or
anything goes wrong, and its caller reads through MLflow's routes (tracking/bulk_reads.py).
"""

from __future__ import annotations

import math

from optlab.tracking.rest_api import OPTIONAL_RETRIES, RestApi, RestError, Unreachable, number
from optlab.tracking.route_kit import add_rule, answer, invalid, not_offered, server_store

PATH = "/api/2.0/optlab/metrics/histories"
ENDPOINT = "optlab_metric_histories"
MOST_RUNS, MOST_KEYS = 1_000, 1_000  # per request
MOST_POINTS = 2_000_000  # per answer: about 40 MB of JSON
CLIENT_RUNS = 200  # run ids a client asks for at once
STORE_INTERNALS = ("ManagedSessionMaker",)


def add_route(app) -> None:
    add_rule(app, PATH, ENDPOINT, histories)


def histories():
    """The Flask view."""
    from flask import request

    store = server_store(STORE_INTERNALS)
    if store is None:
        return not_offered("read the metric histories of many runs at once")
    try:
        run_ids, keys = read_request(request.get_json(force=True, silent=True))
    except ValueError as exc:
        return answer(400, "INVALID_PARAMETER_VALUE", str(exc))
    try:
        rows = query(store, run_ids, keys)
    except Exception as exc:  # noqa: BLE001 - answered as MLflow's handlers answer an unexpected error
        return answer(500, "INTERNAL_ERROR", f"{type(exc).__name__}: {exc}")
    if len(rows) > MOST_POINTS:
        return answer(
            400, "RESOURCE_LIMIT_EXCEEDED", f"more than {MOST_POINTS} points: ask for fewer runs or keys at once"
        )
    return answer(200, body={"histories": grouped(rows)})


def read_request(body) -> tuple[list[str], list[str]]:
    """The run ids and keys asked for, or ValueError naming the bad value."""
    if not isinstance(body, dict):
        raise ValueError("Malformed request: the body must be a JSON object")
    found = []
    for name, most in (("run_ids", MOST_RUNS), ("keys", MOST_KEYS)):
        items = body.get(name)
        if not isinstance(items, list):
            raise ValueError(invalid(name, items, "a list of strings"))
        if len(items) > most:
            raise ValueError(f"A request can name at most {most} {name}. Got {len(items)}.")
        for i, item in enumerate(items):
            if type(item) is not str:
                raise ValueError(invalid(f"{name}[{i}]", item, "must be a string"))
        found.append(list(dict.fromkeys(items)))
    return found[0], found[1]


def query(store, run_ids: list[str], keys: list[str]) -> list[tuple]:
    """(run_uuid, key, step, value, is_nan) rows in MLflow's history order, at most MOST_POINTS + 1."""
    import sqlalchemy
    from mlflow.store.tracking.dbmodels.models import SqlMetric  # internal, guarded by the caller's except

    if not run_ids or not keys:
        return []
    columns = (SqlMetric.run_uuid, SqlMetric.key, SqlMetric.step, SqlMetric.value, SqlMetric.is_nan)
    statement: sqlalchemy.Select = (
        sqlalchemy.select(*columns)
        .where(SqlMetric.run_uuid.in_(run_ids), SqlMetric.key.in_(keys))
        .order_by(SqlMetric.run_uuid, SqlMetric.key, SqlMetric.timestamp, SqlMetric.step, SqlMetric.value)
        .limit(MOST_POINTS + 1)
    )
    with store.ManagedSessionMaker() as session:
        return [tuple(row) for row in session.execute(statement)]


def grouped(rows: list[tuple]) -> list[dict]:
    out: list[dict] = []
    for run_id, key, step, value, is_nan in rows:
        if not out or out[-1]["run_id"] != run_id or out[-1]["key"] != key:
            out.append({"run_id": run_id, "key": key, "steps": [], "values": []})
        out[-1]["steps"].append(int(step))
        out[-1]["values"].append(number(math.nan if is_nan else float(value)))
    return out


# ---- the client side -----------------------------------------------------------------------------------
def read(uri: str, run_ids: list[str], keys: list[str]) -> dict[tuple[str, str], dict[int, float]] | None:
    """{(run_id, key): {step: value}} through the route of the server at `uri` (the last value logged at a step
    wins, as in MLflow's history order); None when the caller should read through MLflow's routes."""
    out: dict[tuple[str, str], dict[int, float]] = {}
    api = RestApi(uri, retries=OPTIONAL_RETRIES)
    try:
        for start in range(0, len(run_ids), CLIENT_RUNS):
            found = api.answer_if_offered(PATH, {"run_ids": run_ids[start : start + CLIENT_RUNS], "keys": keys})
            if found is None:
                return None
            for history in found.get("histories", []):
                curve = out.setdefault((history["run_id"], history["key"]), {})
                for step, value in zip(history["steps"], history["values"], strict=True):
                    curve[int(step)] = float(value)  # float("NaN") is NaN
    except (RestError, Unreachable, KeyError, TypeError, ValueError):
        return None
    finally:
        api.close()
    return out
