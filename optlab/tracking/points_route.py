"""The optlab server app's bulk route for a run's metric points: `POST /api/2.0/optlab/runs/log-points`.

MLflow's `runs/log-batch` takes 1,000 points a request, and the server spends about 0.14 ms of CPU on
each (JSON and protobuf parsing, per-metric validation, one ORM object per point) on cores it shares
with training. This route takes a run's points as parallel lists, one entry a point,

    {"run_id": "...", "keys": [...], "values": [...], "timestamps": [...], "steps": [...]}

(values as MLflow's client writes them: numbers, or "NaN", "Infinity", "-Infinity"), up to MOST_POINTS
a request, and inserts them in one bulk statement (an executemany; one JSON statement on PostgreSQL)
into the server's own store (fast_metrics.insert_points: the metrics and latest_metrics rows log-batch
writes). It answers 200 with `{}` only once the transaction
is committed.

Input MLflow would refuse (a metric name with other characters than MLflow allows or longer than its
column, a value that is not a double, a step or timestamp that is not a 64-bit integer, lists of unequal
length, a run that is missing or not active) is answered 400 with MLflow's error JSON
(`{"error_code": "INVALID_PARAMETER_VALUE", "message": ...}`, naming the bad value), and nothing of that
request is stored. A point the run already holds (a retried request whose answer was lost) sends the
request's points through MLflow's `store.log_batch`, which stores what is missing, as log-batch does.

The path and the guarded MLflow internals are as for every optlab route (route_kit.py): besides the
server's store, metric names are checked by `mlflow.utils.validation._validate_metric_name` (MLflow's
rule and words), and insert_points uses the store's internals. When one is missing the route answers 501
and the client (`send`: a sweep's workers, rest_recorder.py, and its seed-group runs, bulk_runs.py) uses
log-batch, as it does on a server without the route (404).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from optlab.tracking.fast_metrics import insert_points
from optlab.tracking.point_buffer import MLFLOW_METRICS
from optlab.tracking.rest_api import number
from optlab.tracking.route_kit import add_rule, answer, invalid, mlflow_error, not_offered, oversized, server_store

PATH = "/api/2.0/optlab/runs/log-points"
ENDPOINT = "optlab_log_points"  # the Flask endpoint name
# per request: bounds a request's memory on both sides, and keeps a flush's body (~60 bytes a point) near
# the 1 MB MLflow's own log-batch requests stay under, which proxies in front of servers are sized for
MOST_POINTS = 10_000
KEY_LENGTH = 250  # MLflow's metrics.key column (VARCHAR(250)); SQLite would store more, PostgreSQL refuses
MOST_BYTES = 400 * MOST_POINTS  # a point with the longest key and its three numbers is about 300 bytes of JSON
INT64 = 2**63
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}  # MLflow's client's spelling
COLUMNS = ("keys", "values", "timestamps", "steps")
# MLflow's words for a bad value, timestamp and step (mlflow.utils.validation._validate_metric)
BAD_VALUE = "Please specify value as a valid double (64-bit floating point)"
BAD_TIMESTAMP = "Timestamp must be a nonnegative long (64-bit integer)"
BAD_STEP = "Step must be a valid long (64-bit integer)."
STORE_INTERNALS = (
    "ManagedSessionMaker",
    "sanitize_metric_value",
    "_get_run",
    "_check_run_is_active",
    "_update_latest_metrics_if_necessary",
)


@dataclass
class Points:
    run_id: str
    keys: list[str]
    values: list[float]
    stamps: list[int]
    steps: list[int]


class Refused(ValueError):
    """Input MLflow would refuse; the message in MLflow's words."""


def add_route(app) -> None:
    add_rule(app, PATH, ENDPOINT, log_points)


def log_points():
    """The Flask view."""
    from flask import request

    store, check_name = server_store(STORE_INTERNALS), name_check()
    if store is None or check_name is None:
        return not_offered("bulk-insert metric points")
    refused = oversized(request, MOST_BYTES)
    if refused is not None:
        return refused
    try:
        points = read_points(request.get_json(force=True, silent=True), check_name)
    except Refused as exc:
        return answer(400, "INVALID_PARAMETER_VALUE", str(exc))
    return store_points(store, points)


def name_check():
    """MLflow's check of a metric name (raises MlflowException in its words), or None where it moved."""
    try:
        from mlflow.utils.validation import _validate_metric_name  # internal, guarded (see the module)
    except ImportError:
        return None
    return _validate_metric_name


def read_points(body, check_name) -> Points:
    """The request's points, or Refused naming the first value MLflow would refuse."""
    from mlflow.exceptions import MlflowException

    if not isinstance(body, dict):
        raise Refused("Malformed request: the body must be a JSON object")
    run_id = body.get("run_id")
    if not isinstance(run_id, str) or not run_id:
        raise Refused(invalid("run_id", run_id, "the run's id, a string"))
    for name in COLUMNS:
        if not isinstance(body.get(name), list):
            raise Refused(invalid(name, body.get(name), "a list with one entry per point"))
    keys, raw_values, raw_stamps, raw_steps = (body[name] for name in COLUMNS)
    lengths = {name: len(body[name]) for name in COLUMNS}
    if len(set(lengths.values())) > 1:
        raise Refused(f"'keys', 'values', 'timestamps' and 'steps' must hold one entry per point: got {lengths}")
    if len(keys) > MOST_POINTS:
        raise Refused(f"A request can contain at most {MOST_POINTS} points. Got {len(keys)} points.")
    seen: set[str] = set()
    for i, key in enumerate(keys):
        if type(key) is not str:
            raise Refused(invalid(f"keys[{i}]", key, "Metric name must be a string."))
        if key in seen:
            continue
        seen.add(key)
        try:
            check_name(key, f"keys[{i}]")
        except MlflowException as exc:
            raise Refused(exc.message) from None
        if len(key) > KEY_LENGTH:
            raise Refused(invalid(f"keys[{i}]", key, f"Metric name is longer than {KEY_LENGTH} characters."))
    values = [_value(v, i, keys[i]) for i, v in enumerate(raw_values)]
    for i, stamp in enumerate(raw_stamps):
        if type(stamp) is not int or not 0 <= stamp < INT64:
            raise Refused(invalid(f"timestamps[{i}]", stamp, f"metric '{keys[i]}'. {BAD_TIMESTAMP}"))
    for i, step in enumerate(raw_steps):
        if type(step) is not int or not -INT64 <= step < INT64:
            raise Refused(invalid(f"steps[{i}]", step, f"metric '{keys[i]}'. {BAD_STEP}"))
    return Points(run_id, keys, values, raw_stamps, raw_steps)


def _value(value, index: int, key: str) -> float:
    kind = type(value)
    if kind is float:
        return value
    if kind is str and value in NON_FINITE:
        return NON_FINITE[value]
    if kind is int:  # a JSON integer (a bool's type is bool: refused, as MLflow refuses it)
        try:
            return float(value)
        except OverflowError:
            pass
    raise Refused(invalid(f"values[{index}]", value, f"metric '{key}'. {BAD_VALUE}"))


def store_points(store, points: Points):
    """Insert the points; the answer MLflow's handlers would give for what went wrong."""
    import sqlalchemy
    from mlflow.exceptions import MlflowException

    columns = (points.keys, points.values, points.stamps, points.steps)
    try:
        try:
            insert_points(store, points.run_id, *columns)
        except MlflowException as exc:
            if not isinstance(exc.__cause__, sqlalchemy.exc.IntegrityError):
                raise
            # a point the run already holds: MLflow's log_batch stores what is missing, as log-batch does
            from mlflow.entities import Metric

            metrics = [Metric(k, v, t, s) for k, v, t, s in zip(*columns)]
            for i in range(0, len(metrics), MLFLOW_METRICS):
                store.log_batch(points.run_id, metrics=metrics[i : i + MLFLOW_METRICS], params=[], tags=[])
    except MlflowException as exc:
        return mlflow_error(exc)
    except Exception as exc:  # noqa: BLE001 - answered as MLflow's handlers answer an unexpected error
        return answer(500, "INTERNAL_ERROR", f"{type(exc).__name__}: {exc}")
    return answer(200)


# ---- the client side -----------------------------------------------------------------------------------
def send(api, run_id: str, keys: list, values: list, stamps: list, steps: list) -> int:
    """How many of the points, from the first, the route of `api`'s server (a RestApi) stored: all, or those
    before it answered that it does not offer the route (none on a server without it). Any other answer
    raises as any call's."""
    for i in range(0, len(keys), MOST_POINTS):
        end = i + MOST_POINTS
        body = {
            "run_id": run_id,
            "keys": keys[i:end],
            "values": [number(v) for v in values[i:end]],
            "timestamps": stamps[i:end],
            "steps": steps[i:end],
        }
        if not api.post_if_offered(PATH, body):
            return i
    return len(keys)
