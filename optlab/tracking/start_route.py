"""The optlab server app's route that starts a run with its params: `POST /api/2.0/optlab/runs/start`.

A sweep's point on a tracking server starts with `runs/create` and a `runs/log-batch` of its params: two
requests, about 25 ms of the server's CPU a run on cores it may share with training. This route takes
`runs/create`'s body with the params,

    {"experiment_id": "3", "user_id": "...", "start_time": 1733..., "run_name": "...",
     "tags": [{"key": "...", "value": "..."}], "params": [{"key": "...", "value": "..."}]}

checks the params as MLflow's log-batch checks them (each key and value, at most MOST_PARAMS, no key twice:
mlflow.utils.validation), then creates the run with the store's own `create_run` and logs the params with
its own `log_batch`, the writes MLflow's two handlers make, and answers what `runs/create` answers (the
run). Input MLflow would refuse is answered 400 with MLflow's error JSON naming the bad value before
anything is stored; when the params cannot be stored after the run was created (a database error), the run
is deleted before the error is answered, so a start through the route is all or nothing. Served and guarded
as every optlab route (route_kit.py); the recorder (rest_recorder.py) sends MLflow's two calls instead on a
server without it (404) and whenever the route refuses or fails, so a refusal reads as before, in MLflow's
words, on a run that exists.
"""

from __future__ import annotations

import json

from optlab.tracking.point_buffer import MLFLOW_PARAMS
from optlab.tracking.route_kit import add_rule, answer, invalid, mlflow_error, not_offered, oversized, server_store

PATH = "/api/2.0/optlab/runs/start"
ENDPOINT = "optlab_start_run"
MOST_PARAMS = MLFLOW_PARAMS  # what one log-batch takes; a run with more starts through MLflow's calls
MOST_TAGS = 1_000
MOST_BYTES = 9_000 * (MOST_PARAMS + MOST_TAGS)  # MLflow keeps up to 8,000 characters of a tag or param value
INT64 = 2**63
STORE_INTERNALS = ("create_run", "log_batch", "delete_run")


def add_route(app) -> None:
    add_rule(app, PATH, ENDPOINT, start_run)


def param_checks():
    """MLflow's checks of a log-batch's params (each one, the batch's size, no key twice), or None where they
    moved."""
    try:  # internal, guarded (see route_kit.py)
        from mlflow.utils.validation import (
            _validate_batch_log_limits,
            _validate_param,
            _validate_param_keys_unique,
        )
    except ImportError:
        return None

    def check(params: list) -> list:
        checked = [_validate_param(p.key, p.value, path=f"params[{i}]") for i, p in enumerate(params)]
        _validate_batch_log_limits([], checked, [])
        _validate_param_keys_unique(checked)
        return checked

    return check


def start_run():
    """The Flask view."""
    from flask import request
    from mlflow.exceptions import MlflowException

    store, check = server_store(STORE_INTERNALS), param_checks()
    if store is None or check is None:
        return not_offered("start a run with its params in one request")
    refused = oversized(request, MOST_BYTES)
    if refused is not None:
        return refused
    try:
        fields, params = read_start(request.get_json(force=True, silent=True), check)
        run = store.create_run(**fields)
    except MlflowException as exc:
        return mlflow_error(exc)
    except Exception as exc:  # noqa: BLE001 - answered as MLflow's handlers answer an unexpected error
        return answer(500, "INTERNAL_ERROR", f"{type(exc).__name__}: {exc}")
    try:
        if params:
            store.log_batch(run.info.run_id, metrics=[], params=params, tags=[])
    except Exception as exc:  # noqa: BLE001 - the run must not stay without its params
        try:
            store.delete_run(run.info.run_id)
        except Exception:  # noqa: BLE001, S110 - the store is failing: the error below says why
            pass
        if isinstance(exc, MlflowException):
            return mlflow_error(exc)
        return answer(500, "INTERNAL_ERROR", f"{type(exc).__name__}: {exc}")
    return answer(200, body=created(run))


def read_start(body, check) -> tuple[dict, list]:
    """(create_run's arguments, the params as MLflow stores them); MlflowException naming the first bad value."""
    from mlflow.entities import Param, RunTag
    from mlflow.exceptions import MlflowException

    refuse = MlflowException.invalid_parameter_value
    if not isinstance(body, dict):
        raise refuse("Malformed request: the body must be a JSON object")
    for name in ("experiment_id", "user_id", "run_name"):
        if type(body.get(name)) is not str:
            raise refuse(invalid(name, body.get(name), "must be a string"))
    start_time = body.get("start_time")
    if type(start_time) is not int or not 0 <= start_time < INT64:
        raise refuse(invalid("start_time", start_time, "a nonnegative long (64-bit integer)"))
    items = {}
    for name, most in (("tags", MOST_TAGS), ("params", MOST_PARAMS)):
        entries = body.get(name, [])
        if not isinstance(entries, list) or len(entries) > most:
            raise refuse(invalid(name, entries, f"a list of at most {most} {name}"))
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or type(entry.get("key")) is not str or type(entry.get("value")) is not str:
                raise refuse(invalid(f"{name}[{i}]", entry, "an object with a string key and a string value"))
        items[name] = [(entry["key"], entry["value"]) for entry in entries]
    params = check([Param(k, v) for k, v in items["params"]])
    fields = {
        "experiment_id": body["experiment_id"],
        "user_id": body["user_id"],
        "start_time": start_time,
        "tags": [RunTag(k, v) for k, v in items["tags"]],
        "run_name": body["run_name"],
    }
    return fields, params


def created(run) -> dict:
    """The body `runs/create` answers for `run` (MLflow's own message)."""
    from mlflow.protos.service_pb2 import CreateRun
    from mlflow.utils.proto_json_utils import message_to_json

    message = CreateRun.Response()
    message.run.MergeFrom(run.to_proto())
    return json.loads(message_to_json(message))
