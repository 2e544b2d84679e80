"""The optlab server app's route that ends a run: `POST /api/2.0/optlab/runs/end`.

A sweep's point on a tracking server ends with its end tags (`runs/log-batch`) and its status
(`runs/update`): two requests and, in MLflow's store, four transactions, about 20 ms of the server's CPU a
run on cores it shares with training. This route takes both,

    {"run_id": "...", "tags": [{"key": "...", "value": "..."}], "status": "FINISHED", "end_time": 1733...}

and writes them in one transaction of the server's own store (tags_route.store_tags: the tags as MLflow
writes them, then the run's status and end time as `runs/update` sets them). It answers 200 with `{}` only
once that transaction is committed, so the run is FINISHED in the store exactly when its end tags are.

The tags are checked as tags_route checks them, the status must be one a run ends with (FINISHED, FAILED,
KILLED) and the end time a nonnegative 64-bit integer; the run must exist and be active. Otherwise 400 with
MLflow's error JSON naming the bad value, and nothing is stored. Served and guarded as every optlab route
(route_kit.py); the recorder (rest_recorder.py) sends MLflow's two calls instead on a server without it.
"""

from __future__ import annotations

from optlab.tracking.route_kit import add_rule, answer, invalid, mlflow_error, not_offered, oversized, server_store
from optlab.tracking.tags_route import MOST_BYTES, MOST_TAGS, read_tags, store_tags, tag_check
from optlab.tracking.tags_route import STORE_INTERNALS as TAG_INTERNALS

PATH = "/api/2.0/optlab/runs/end"
ENDPOINT = "optlab_end_run"
END_STATUSES = ("FINISHED", "FAILED", "KILLED")
INT64 = 2**63


def add_route(app) -> None:
    add_rule(app, PATH, ENDPOINT, end_run)


def end_run():
    """The Flask view."""
    from flask import request
    from mlflow.exceptions import MlflowException

    store, validate = server_store((*TAG_INTERNALS, "update_run_info")), tag_check()
    if store is None or validate is None:
        return not_offered("end a run in one request")
    refused = oversized(request, MOST_BYTES)
    if refused is not None:
        return refused
    try:
        run_id, tags, status, end_time = read_end(request.get_json(force=True, silent=True), validate)
        store_tags(store, tags, {run_id: (status, end_time)})
    except MlflowException as exc:
        return mlflow_error(exc)
    except Exception as exc:  # noqa: BLE001 - answered as MLflow's handlers answer an unexpected error
        return answer(500, "INTERNAL_ERROR", f"{type(exc).__name__}: {exc}")
    return answer(200)


def read_end(body, validate) -> tuple[str, list[tuple[str, str, str]], str, int]:
    """(run_id, tags, status, end_time) as they will be stored; MlflowException naming the first bad value."""
    from mlflow.exceptions import MlflowException

    refuse = MlflowException.invalid_parameter_value
    if not isinstance(body, dict):
        raise refuse("Malformed request: the body must be a JSON object")
    run_id, entries, status, end_time = (body.get(k) for k in ("run_id", "tags", "status", "end_time"))
    if type(run_id) is not str or not run_id:
        raise refuse(invalid("run_id", run_id, "the run's id, a string"))
    if not isinstance(entries, list) or len(entries) > MOST_TAGS:
        raise refuse(invalid("tags", entries, f"a list of at most {MOST_TAGS} tags"))
    if status not in END_STATUSES:
        raise refuse(invalid("status", status, f"one of {', '.join(END_STATUSES)}"))
    if type(end_time) is not int or not 0 <= end_time < INT64:
        raise refuse(invalid("end_time", end_time, "a nonnegative long (64-bit integer)"))
    tagged = [{**e, "run_id": run_id} if isinstance(e, dict) else e for e in entries]
    return run_id, read_tags({"tags": tagged}, validate), status, end_time
