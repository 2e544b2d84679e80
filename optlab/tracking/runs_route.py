"""The optlab server app's route for the runs of an experiment carrying given tags:
`POST /api/2.0/optlab/runs/with-tags`.

A sweep reads its runs back several times (at its start for resume, after its phases for selection, for its
seed groups, its views and its summary). Through MLflow's `runs/search` the server builds an ORM object per
run, tag, param and latest metric: about 0.45 s for a hundred runs on a server that shares its cores with
training, ten seconds for two thousand, while every worker waits. This route reads the same rows with four
plain queries of the server's own store, as sqlite_search.py reads a local SQLite store,

    {"experiment_id": "3", "tags": {"optlab.sweep": "convergence"}, "page_token": "..."}
      ->  {"runs": [[run_uuid, name, experiment_id, user_id, status, start_time, end_time, lifecycle_stage,
                     artifact_uri, [[key, value], ...], [[key, value], ...], [[key, value, timestamp, step], ...]],
                    ...], "next_page_token": "..."}

the active runs of the experiment whose tags equal `tags` (every one of them), in MLflow's default order
(start time descending, then run id), MOST_RUNS a page; tags, params and latest metrics as MLflow's client
reads them (a metric value "NaN" where MLflow stores NaN). When a run of the page has dataset inputs or model
outputs (which this does not read) the answer is `{"through_mlflow": true}`. Malformed input gets 400
INVALID_PARAMETER_VALUE naming the bad value. Served and guarded as every optlab route (route_kit.py). The
client (`read`) returns None when the server does not offer the route (404) or anything goes wrong, and its
caller searches through MLflow (bulk_reads.runs_with_tags).
"""

from __future__ import annotations

import math

from optlab.tracking.rest_api import OPTIONAL_RETRIES, RestApi, RestError, Unreachable, number
from optlab.tracking.route_kit import add_rule, answer, invalid, not_offered, server_store

PATH = "/api/2.0/optlab/runs/with-tags"
ENDPOINT = "optlab_runs_with_tags"
MOST_RUNS = 1_000  # a page
MOST_TAGS = 100  # tags a request may match on
QUERY_CHUNK = 500  # run ids per IN (...) query
STORE_INTERNALS = ("ManagedSessionMaker",)


def add_route(app) -> None:
    add_rule(app, PATH, ENDPOINT, runs_with_tags)


def runs_with_tags():
    """The Flask view."""
    from flask import request

    store = server_store(STORE_INTERNALS)
    if store is None:
        return not_offered("read an experiment's runs with given tags")
    try:
        experiment_id, tags, offset = read_request(request.get_json(force=True, silent=True))
    except ValueError as exc:
        return answer(400, "INVALID_PARAMETER_VALUE", str(exc))
    try:
        page = query(store, experiment_id, tags, offset)
    except Exception as exc:  # noqa: BLE001 - answered as MLflow's handlers answer an unexpected error
        return answer(500, "INTERNAL_ERROR", f"{type(exc).__name__}: {exc}")
    if page is None:
        return answer(200, body={"through_mlflow": True})
    runs, more = page
    body: dict = {"runs": runs}
    if more:
        body["next_page_token"] = str(offset + MOST_RUNS)
    return answer(200, body=body)


def read_request(body) -> tuple[int, dict[str, str], int]:
    """(experiment id, tags, offset of the page), or ValueError naming the bad value."""
    if not isinstance(body, dict):
        raise ValueError("Malformed request: the body must be a JSON object")
    experiment_id, tags, token = body.get("experiment_id"), body.get("tags", {}), body.get("page_token")
    if type(experiment_id) is not str or not experiment_id.isdigit():
        raise ValueError(invalid("experiment_id", experiment_id, "an experiment's id, a string of digits"))
    if not isinstance(tags, dict) or len(tags) > MOST_TAGS:
        raise ValueError(invalid("tags", tags, f"an object of at most {MOST_TAGS} tag keys and their values"))
    for key, value in tags.items():
        if type(value) is not str:
            raise ValueError(invalid(f"tags.{key}", value, "must be a string"))
    if token is not None and (type(token) is not str or not token.isdigit()):
        raise ValueError(invalid("page_token", token, "a token this route returned"))
    return int(experiment_id), dict(tags), int(token or 0)


def query(store, experiment_id: int, tags: dict[str, str], offset: int) -> tuple[list[list], bool] | None:
    """One page of runs as the route answers them and whether more follow; None when a run of the page has
    dataset inputs or model outputs."""
    import sqlalchemy
    from mlflow.store.tracking.dbmodels.models import (  # internal, guarded by the caller's except
        SqlInput,
        SqlLatestMetric,
        SqlParam,
        SqlRun,
        SqlTag,
    )

    matched = sqlalchemy.and_(
        SqlRun.experiment_id == experiment_id,
        SqlRun.lifecycle_stage == "active",
        *(
            SqlRun.run_uuid.in_(sqlalchemy.select(SqlTag.run_uuid).where(SqlTag.key == key, SqlTag.value == value))
            for key, value in tags.items()
        ),
    )
    columns = (
        SqlRun.run_uuid,
        SqlRun.name,
        SqlRun.experiment_id,
        SqlRun.user_id,
        SqlRun.status,
        SqlRun.start_time,
        SqlRun.end_time,
        SqlRun.lifecycle_stage,
        SqlRun.artifact_uri,
    )
    latest = (
        SqlLatestMetric.run_uuid,
        SqlLatestMetric.key,
        SqlLatestMetric.value,
        SqlLatestMetric.timestamp,
        SqlLatestMetric.step,
        SqlLatestMetric.is_nan,
    )
    with store.ManagedSessionMaker() as session:
        statement: sqlalchemy.Select = (
            sqlalchemy.select(*columns)
            .where(matched)
            .order_by(SqlRun.start_time.desc(), SqlRun.run_uuid)
            .offset(offset)
            .limit(MOST_RUNS + 1)
        )
        runs = [list(row) for row in session.execute(statement)]
        more, runs = len(runs) > MOST_RUNS, runs[:MOST_RUNS]
        found: dict[str, dict[str, list]] = {run[0]: {"tags": [], "params": [], "metrics": []} for run in runs}
        ids = list(found)
        for start in range(0, len(ids), QUERY_CHUNK):
            chunk = ids[start : start + QUERY_CHUNK]
            linked = sqlalchemy.select(sqlalchemy.func.count()).where(
                sqlalchemy.or_(SqlInput.destination_id.in_(chunk), SqlInput.source_id.in_(chunk)),
                sqlalchemy.or_(SqlInput.destination_type == "RUN", SqlInput.source_type == "RUN_OUTPUT"),
            )
            if session.execute(linked).scalar():
                return None
            for run_id, key, value in session.execute(
                sqlalchemy.select(SqlTag.run_uuid, SqlTag.key, SqlTag.value).where(SqlTag.run_uuid.in_(chunk))
            ):
                found[run_id]["tags"].append([key, value])
            for run_id, key, value in session.execute(
                sqlalchemy.select(SqlParam.run_uuid, SqlParam.key, SqlParam.value).where(SqlParam.run_uuid.in_(chunk))
            ):
                found[run_id]["params"].append([key, value])
            for run_id, key, value, timestamp, step, is_nan in session.execute(
                sqlalchemy.select(*latest).where(SqlLatestMetric.run_uuid.in_(chunk))
            ):
                found[run_id]["metrics"].append(
                    [key, number(math.nan if is_nan else float(value)), int(timestamp), int(step)]
                )
    return [[*run, found[run[0]]["tags"], found[run[0]]["params"], found[run[0]]["metrics"]] for run in runs], more


# ---- the client side -----------------------------------------------------------------------------------
def read(uri: str, experiment_id: str, tags: dict[str, str]) -> list | None:
    """The experiment's active runs whose tags equal `tags`, as `MlflowClient.search_runs` returns them, through
    the route of the server at `uri`; None when the caller should search through MLflow."""
    from mlflow.entities import Metric

    from optlab.tracking.run_entities import Item, runs_from_rows

    runs: list = []
    rows: dict[str, dict[str, list]] = {}
    api = RestApi(uri, retries=OPTIONAL_RETRIES)
    body: dict = {"experiment_id": str(experiment_id), "tags": tags}
    try:
        while True:
            found = api.answer_if_offered(PATH, body)
            if found is None or found.get("through_mlflow"):
                return None
            for *info, run_tags, params, metrics in found["runs"]:
                if info[0] in rows:
                    continue  # a run created meanwhile moved the pages (MLflow's own pages move alike)
                runs.append(tuple(info))
                rows[info[0]] = {
                    "tags": [Item(k, v) for k, v in run_tags],
                    "params": [Item(k, v) for k, v in params],
                    "metrics": [Metric(k, float(v), int(t), int(s)) for k, v, t, s in metrics],
                }
            token = found.get("next_page_token")
            if not token:
                break
            body = {**body, "page_token": token}
    except (RestError, Unreachable, KeyError, TypeError, ValueError):
        return None
    finally:
        api.close()
    return runs_from_rows(runs, rows)
