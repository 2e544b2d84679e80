"""The optlab server app's route for the tags of many runs: `POST /api/2.0/optlab/runs/set-tags`.

After its runs end, a sweep tags each of them (its group, its view), one `runs/log-batch` request a run
through MLflow's API: on a tracking server that shares its cores with training, about 50 ms a request, a
few seconds for a hundred runs, spent while nothing trains. This route takes them all in one request,

    {"tags": [{"run_id": "...", "key": "...", "value": "..."}, ...]}

up to MOST_TAGS a request, and writes them in one transaction of the server's own store, as
`SqlAlchemyStore` writes a run's tags (a tag already set is overwritten, the last of two with one key
wins, `mlflow.runName` also renames the run). It answers 200 with `{}` only once the transaction is
committed.

Every tag is checked first as MLflow checks it (`mlflow.utils.validation._validate_tag`: the key's
characters and length; a value longer than MLflow keeps is cut as MLflow cuts it), and every run must
exist and be active: otherwise 400 with MLflow's error JSON naming the bad value, and nothing of that
request is stored. Two writers inserting one new tag at once (an IntegrityError) send the request's tags
through MLflow's `store.log_batch`, run by run, which retries. Served and guarded as every optlab route
(route_kit.py). The client (`send`) tells its caller to use log-batch when the server does not offer the
route (404) or anything goes wrong: tags are idempotent, so MLflow's own calls then write them all again,
and any error is MLflow's, in its words.
"""

from __future__ import annotations

from optlab.tracking.rest_api import OPTIONAL_RETRIES, RestApi, RestError, Unreachable
from optlab.tracking.route_kit import add_rule, answer, invalid, mlflow_error, not_offered, oversized, server_store

PATH = "/api/2.0/optlab/runs/set-tags"
ENDPOINT = "optlab_set_tags"
MOST_TAGS = 10_000  # per request: a tag's JSON is ~100 bytes, a request stays near 1 MB
MOST_BYTES = 9_000 * MOST_TAGS  # MLflow keeps up to 8,000 characters of a value
RUN_NAME = "mlflow.runName"
QUERY_CHUNK = 500  # run ids per IN (...) query
STORE_INTERNALS = ("ManagedSessionMaker", "_get_query", "_check_run_is_active")


def add_route(app) -> None:
    add_rule(app, PATH, ENDPOINT, set_tags)


def set_tags():
    """The Flask view."""
    from flask import request

    store, validate = server_store(STORE_INTERNALS), tag_check()
    if store is None or validate is None:
        return not_offered("set the tags of many runs at once")
    refused = oversized(request, MOST_BYTES)
    if refused is not None:
        return refused
    from mlflow.exceptions import MlflowException

    try:
        tags = read_tags(request.get_json(force=True, silent=True), validate)
        store_tags(store, tags)
    except MlflowException as exc:
        return mlflow_error(exc)
    except Exception as exc:  # noqa: BLE001 - answered as MLflow's handlers answer an unexpected error
        return answer(500, "INTERNAL_ERROR", f"{type(exc).__name__}: {exc}")
    return answer(200)


def tag_check():
    """MLflow's check of a tag (returns the RunTag it stores, raises MlflowException in its words), or None
    where it moved."""
    try:
        from mlflow.utils.validation import _validate_tag  # internal, guarded (see the module)
    except ImportError:
        return None
    return _validate_tag


def read_tags(body, validate) -> list[tuple[str, str, str]]:
    """The request's (run_id, key, value) tags as MLflow would store them; MlflowException naming the first
    value it would refuse."""
    from mlflow.exceptions import MlflowException

    refuse = MlflowException.invalid_parameter_value

    if not isinstance(body, dict) or not isinstance(body.get("tags"), list):
        raise refuse("Malformed request: the body must be a JSON object with a list 'tags'")
    if len(body["tags"]) > MOST_TAGS:
        raise refuse(f"A request can contain at most {MOST_TAGS} tags. Got {len(body['tags'])} tags.")
    tags = []
    for i, entry in enumerate(body["tags"]):
        if not isinstance(entry, dict):
            raise refuse(invalid(f"tags[{i}]", entry, "a tag is an object with run_id, key and value"))
        for name in ("run_id", "key", "value"):
            if type(entry.get(name)) is not str or (name == "run_id" and not entry[name]):
                raise refuse(invalid(f"tags[{i}].{name}", entry.get(name), "must be a string"))
        tag = validate(entry["key"], entry["value"], path=f"tags[{i}]")
        tags.append((entry["run_id"], tag.key, tag.value))
    return tags


def store_tags(store, tags: list[tuple[str, str, str]], ends: dict[str, tuple[str, int]] | None = None) -> None:
    """Write the tags in one transaction (see the module), with `ends` {run_id: (status, end_time)} also ending
    those runs in it (end_route.py)."""
    import sqlalchemy
    from mlflow.entities import RunStatus, RunTag
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST
    from mlflow.store.tracking.dbmodels.models import SqlRun, SqlTag  # internal, guarded by the caller's except

    ends = ends or {}
    if not tags and not ends:
        return
    run_ids = list(dict.fromkeys([*(run_id for run_id, _, _ in tags), *ends]))
    keys = list(dict.fromkeys(key for _, key, _ in tags))
    try:
        with store.ManagedSessionMaker(read_only=False) as session:
            runs: dict = {}  # run id -> its SqlRun
            for start in range(0, len(run_ids), QUERY_CHUNK):
                chunk = run_ids[start : start + QUERY_CHUNK]
                found = store._get_query(session, SqlRun).filter(SqlRun.run_uuid.in_(chunk))
                runs.update((run.run_uuid, run) for run in found)
            for run_id in run_ids:
                if run_id not in runs:
                    raise MlflowException(f"Run with id={run_id} not found", RESOURCE_DOES_NOT_EXIST)
                store._check_run_is_active(runs[run_id])
            rows: dict = {}  # (run id, key) -> its SqlTag
            for start in range(0, len(run_ids), QUERY_CHUNK):
                chunk = run_ids[start : start + QUERY_CHUNK]
                found = session.query(SqlTag).filter(SqlTag.run_uuid.in_(chunk), SqlTag.key.in_(keys))
                rows.update(((t.run_uuid, t.key), t) for t in found)
            for run_id, key, value in tags:
                if key == RUN_NAME:
                    runs[run_id].name = value
                row = rows.get((run_id, key))
                if row is None:
                    rows[run_id, key] = row = SqlTag(run_uuid=run_id, key=key, value=value)
                    session.add(row)
                row.value = value  # type: ignore[assignment]  # an ORM attribute, a str on an instance
            for run_id, (status, end_time) in ends.items():
                runs[run_id].status, runs[run_id].end_time = status, end_time
    except MlflowException as exc:  # MLflow's session wraps a database error, the cause kept
        if not isinstance(exc.__cause__, sqlalchemy.exc.IntegrityError):
            raise
        per_run: dict[str, list] = {}
        for run_id, key, value in tags:
            per_run.setdefault(run_id, []).append(RunTag(key, value))
        for run_id, run_tags in per_run.items():
            store.log_batch(run_id, metrics=[], params=[], tags=run_tags)
        for run_id, (status, end_time) in ends.items():
            store.update_run_info(run_id, RunStatus.from_string(status), end_time, None)


# ---- the client side -----------------------------------------------------------------------------------
def send(uri: str, tags: list[tuple[str, str, str]]) -> bool:
    """Set (run_id, key, value) tags through the route of the server at `uri`, MOST_TAGS a request; False when
    the caller should write them through MLflow's client (see the module)."""
    api = RestApi(uri, retries=OPTIONAL_RETRIES)
    try:
        for start in range(0, len(tags), MOST_TAGS):
            chunk = [{"run_id": r, "key": k, "value": v} for r, k, v in tags[start : start + MOST_TAGS]]
            if not api.post_if_offered(PATH, {"tags": chunk}):
                return False
    except (RestError, Unreachable):
        return False
    finally:
        api.close()
    return True
