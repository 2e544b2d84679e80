"""optlab's server routes for a sweep process's bookkeeping (tracking/tags_route.py, histories_route.py,
runs_route.py): the tags of many runs, the curves of many runs and the runs of an experiment with given tags,
each in one request, leave and read exactly what MLflow's own calls do, refuse what MLflow refuses naming it
(storing nothing), and a server without them (a plain `mlflow server`) is asked once and then served through
MLflow's routes."""

from __future__ import annotations

import json
import math

import pytest
from store_rows import run_rows
from test_faults_server import running_server

from optlab.tracking import bulk_reads, bulk_runs, histories_route, runs_route, start_route, tags_route
from optlab.tracking.rest_api import RestApi, RestError

# ---- reading a request, on its own ------------------------------------------------------------------------
TAG_REFUSALS = {
    "a key MLflow refuses": (
        {"run_id": "r", "key": "group?", "value": "v"},
        r"Invalid value \"group\?\" for .*tags\[1\]",
    ),
    "a key too long": (
        {"run_id": "r", "key": "k" * 251, "value": "v"},
        r"'tags\[1\]\.key'.*exceeds the maximum length",
    ),
    "a value that is a number": (
        {"run_id": "r", "key": "k", "value": 3},
        r"Invalid value 3 for parameter 'tags\[1\]\.value'",
    ),
    "no run id": ({"key": "k", "value": "v"}, r"Invalid value null for parameter 'tags\[1\]\.run_id'"),
    "a tag that is not an object": ("k=v", r"Invalid value \"k=v\" for parameter 'tags\[1\]'"),
}


@pytest.mark.parametrize("case", TAG_REFUSALS)
def test_the_tags_route_reads_a_request_as_mlflow_would_refuse_it(case):
    from mlflow.exceptions import MlflowException

    entry, message = TAG_REFUSALS[case]
    good = {"run_id": "r", "key": "optlab.group", "value": "lr=0.1"}
    with pytest.raises(MlflowException, match=message) as refused:
        tags_route.read_tags({"tags": [good, entry]}, tags_route.tag_check())
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"


def test_the_tags_route_keeps_of_a_long_value_what_mlflow_keeps():
    from mlflow.utils.validation import MAX_TAG_VAL_LENGTH, _validate_tag

    long = "x" * (MAX_TAG_VAL_LENGTH + 10)
    (tag,) = tags_route.read_tags({"tags": [{"run_id": "r", "key": "k", "value": long}]}, tags_route.tag_check())
    assert tag == ("r", "k", _validate_tag("k", long).value) and len(tag[2]) == MAX_TAG_VAL_LENGTH


@pytest.mark.parametrize(
    "body, message",
    [
        ([], "must be a JSON object"),
        ({"run_ids": "abc", "keys": ["loss"]}, r"Invalid value \"abc\" for parameter 'run_ids'"),
        ({"run_ids": ["a", 7], "keys": ["loss"]}, r"Invalid value 7 for parameter 'run_ids\[1\]'"),
        ({"run_ids": ["a"] * 1001, "keys": ["loss"]}, r"at most 1000 run_ids\. Got 1001"),
    ],
)
def test_the_histories_route_names_what_it_cannot_read(body, message):
    with pytest.raises(ValueError, match=message):
        histories_route.read_request(body)


def test_the_histories_route_groups_rows_into_curves_with_mlflows_spelling_of_nan():
    rows = [
        ("a", "loss", 0, 1.5, False),
        ("a", "loss", 1, 0.0, True),
        ("a", "lr", 0, 0.1, False),
        ("b", "loss", 0, 2.0, 0),
    ]
    assert histories_route.grouped(rows) == [
        {"run_id": "a", "key": "loss", "steps": [0, 1], "values": [1.5, "NaN"]},
        {"run_id": "a", "key": "lr", "steps": [0], "values": [0.1]},
        {"run_id": "b", "key": "loss", "steps": [0], "values": [2.0]},
    ]


def test_an_answer_beyond_the_histories_limit_is_refused_and_read_through_mlflow(monkeypatch):
    """In-process Flask app: more points than the limit is a 400 the client answers by stepping aside."""
    import flask

    app = flask.Flask("routes")
    histories_route.add_route(app)
    monkeypatch.setattr(histories_route, "MOST_POINTS", 2)
    monkeypatch.setattr(histories_route, "server_store", lambda internals: object())
    monkeypatch.setattr(
        histories_route, "query", lambda store, run_ids, keys: [("a", "loss", s, 1.0, False) for s in range(3)]
    )
    answer = app.test_client().post(histories_route.PATH, json={"run_ids": ["a"], "keys": ["loss"]})
    assert answer.status_code == 400 and answer.json["error_code"] == "RESOURCE_LIMIT_EXCEEDED"
    monkeypatch.setattr(histories_route, "query", lambda store, run_ids, keys: [("a", "loss", 0, 1.0, False)])
    answer = app.test_client().post(histories_route.PATH, json={"run_ids": ["a"], "keys": ["loss"]})
    assert answer.status_code == 200 and answer.json == {
        "histories": [{"run_id": "a", "key": "loss", "steps": [0], "values": [1.0]}]
    }


# ---- on real servers ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def optlab_server(tmp_path_factory):
    yield from running_server(tmp_path_factory, "optlab")


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory):
    yield from running_server(tmp_path_factory, None)


def _client_and_runs(server, n: int):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(server.uri)
    experiment_id = client.get_experiment_by_name("Default").experiment_id
    return client, [client.create_run(experiment_id, tags={"optlab.role": "point"}).info.run_id for _ in range(n)]


def _tags_for(run_id: str) -> list[tuple[str, str, str]]:
    return [
        (run_id, "optlab.role", "rerun"),  # overwrites the tag the run was created with
        (run_id, "optlab.group", "lr=0.1"),
        (run_id, "optlab.view", "first"),
        (run_id, "optlab.view", "second"),  # two with one key: the last wins
        (run_id, "mlflow.runName", f"renamed-{run_id[:4]}"),  # renames the run, as MLflow's set_tag does
        (run_id, "note", "ünïcode, 'quotes' and \"more\""),
    ]


def _rows(server, run_id: str) -> dict:
    rows = run_rows(server.folder / "server.db", run_id)
    return {"run": rows["run"], "tags": [t for t in rows["tags"]]}


@pytest.mark.slow
def test_tags_set_through_the_route_are_the_rows_mlflows_log_batch_writes(optlab_server, plain_server):
    client, (a, b) = _client_and_runs(optlab_server, 2)
    asked = len(optlab_server.requests("POST", tags_route.PATH))
    bulk_runs.set_tags(client, _tags_for(a) + _tags_for(b))  # one request for both runs
    assert optlab_server.requests("POST", tags_route.PATH)[asked:] == [200]
    plain, (c,) = _client_and_runs(plain_server, 1)
    bulk_runs.set_tags(plain, _tags_for(c))  # a plain server: MLflow's log-batch, after one 404
    bulk_runs.set_tags(plain, _tags_for(c))
    assert plain_server.requests("POST", tags_route.PATH) == [404]
    expected = _rows(plain_server, c)
    for run_id in (a, b):
        got = _rows(optlab_server, run_id)
        assert got["tags"] == [(k, v.replace(c[:4], run_id[:4])) for k, v in expected["tags"]]
        assert got["run"][0] == f"renamed-{run_id[:4]}" and expected["run"][0] == f"renamed-{c[:4]}"
        assert client.get_run(run_id).info.run_name == f"renamed-{run_id[:4]}"


REFUSED = {
    "a key MLflow refuses": lambda run_id: [(run_id, "bad?key", "v")],
    "a run that does not exist": lambda run_id: [("0" * 32, "k", "v")],
    "a deleted run": None,
}


@pytest.mark.slow
@pytest.mark.parametrize("case", REFUSED)
def test_the_tags_route_refuses_what_mlflow_refuses_naming_it_and_stores_nothing(optlab_server, case):
    client, (run_id,) = _client_and_runs(optlab_server, 1)
    before = _rows(optlab_server, run_id)
    good = [(run_id, "optlab.group", "lr=0.1")]
    if case == "a deleted run":
        client.delete_run(run_id)
        bad, message = [], rf"The run {run_id} must be in the 'active' state"
    else:
        bad = REFUSED[case](run_id)
        message = {
            "a key MLflow refuses": r"Invalid value \"bad\?key\"",
            "a run that does not exist": "0{32} not found",
        }[case]
    body = {"tags": [{"run_id": r, "key": k, "value": v} for r, k, v in good + bad]}
    with pytest.raises(RestError, match=message) as refused:
        RestApi(optlab_server.uri).answer_if_offered(tags_route.PATH, body)
    assert refused.value.status == 400
    assert _rows(optlab_server, run_id)["tags"] == before["tags"]
    assert tags_route.send(optlab_server.uri, good + bad) is False  # the caller then goes through MLflow


def _log_curves(client, run_ids: list[str]) -> None:
    from mlflow.entities import Metric

    for i, run_id in enumerate(run_ids):
        metrics = [Metric("loss", 1.0 / (s + 1 + i), 1000 + s, s) for s in range(30)]
        metrics += [
            Metric("loss", math.nan, 2000, 30),
            Metric("acc", math.inf, 2001, 3),
            Metric("acc", -math.inf, 2002, 4),
        ]
        metrics += [Metric("acc", 0.5, 3000, 5), Metric("acc", 0.25, 2999, 5)]  # one step twice: the newer wins
        client.log_batch(run_id, metrics=metrics)


def _per_run(client, run_ids, keys) -> dict:
    out: dict = {}
    for run_id in run_ids:
        for key in keys:
            history = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.timestamp, m.step, m.value))
            for m in history:
                out.setdefault((run_id, key), {})[m.step] = m.value
    return out


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k].keys() == b[k].keys()
        and all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a[k].values(), b[k].values()))
        for k in a
    )


@pytest.mark.slow
def test_curves_read_through_the_route_are_mlflows_histories(optlab_server, plain_server, monkeypatch):
    monkeypatch.setattr(histories_route, "CLIENT_RUNS", 2)  # five runs: three requests
    keys = ["loss", "acc", "never_logged"]
    client, ids = _client_and_runs(optlab_server, 5)
    _log_curves(client, ids)
    asked = len(optlab_server.requests("POST", histories_route.PATH))
    got = bulk_reads.metric_histories(client, ids, keys)
    assert optlab_server.requests("POST", histories_route.PATH)[asked:] == [200, 200, 200]
    expected = _per_run(client, ids, keys)
    assert _same(got, expected) and got[ids[0], "acc"][5] == 0.5 and math.isnan(got[ids[0], "loss"][30])
    assert got[ids[0], "acc"][3] == 1.7976931348623157e308  # how MLflow stores and reads +inf
    plain, plain_ids = _client_and_runs(plain_server, 5)
    _log_curves(plain, plain_ids)
    for _ in range(2):
        through_mlflow = bulk_reads.metric_histories(plain, plain_ids, keys)
    assert plain_server.requests("POST", histories_route.PATH) == [404]  # asked once, then MLflow's routes
    renamed = {(ids[plain_ids.index(r)], k): v for (r, k), v in through_mlflow.items()}
    assert _same(renamed, expected)


END_REFUSALS = {
    "a status a run does not end with": ({"status": "RUNNING"}, r"Invalid value \"RUNNING\" for parameter 'status'"),
    "a negative end time": ({"end_time": -1}, r"Invalid value -1 for parameter 'end_time'"),
    "a key MLflow refuses": ({"tags": [{"key": "bad?key", "value": "v"}]}, r"Invalid value \"bad\?key\""),
    "a run that does not exist": ({"run_id": "0" * 32}, r"Run with id=0{32} not found"),
    "a deleted run": ({}, r"must be in the 'active' state"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", END_REFUSALS)
def test_the_end_route_refuses_what_mlflow_refuses_and_leaves_the_run_as_it_was(optlab_server, case):
    from optlab.tracking.end_route import PATH as END_ROUTE

    client, (run_id,) = _client_and_runs(optlab_server, 1)
    if case == "a deleted run":
        client.delete_run(run_id)
    change, message = END_REFUSALS[case]
    body = {"run_id": run_id, "tags": [{"key": "optlab.status", "value": "FINISHED"}], "status": "FINISHED"}
    before = _rows(optlab_server, run_id)
    with pytest.raises(RestError, match=message) as refused:
        RestApi(optlab_server.uri).answer_if_offered(END_ROUTE, {**body, "end_time": 1_700_000_000_000, **change})
    assert refused.value.status == 400 and _rows(optlab_server, run_id) == before  # still RUNNING, no tag


@pytest.mark.slow
def test_the_end_route_ends_a_run_as_log_batch_and_update_do(optlab_server):
    from optlab.tracking.end_route import PATH as END_ROUTE

    client, (a, b) = _client_and_runs(optlab_server, 2)
    tags = [{"key": "optlab.status", "value": "FAILED"}, {"key": "optlab.failure_reason", "value": "diverged: nan"}]
    RestApi(optlab_server.uri).answer_if_offered(
        END_ROUTE, {"run_id": a, "tags": tags, "status": "FAILED", "end_time": 1_800_000_000_123}
    )
    RestApi(optlab_server.uri).post("runs/log-batch", {"run_id": b, "tags": tags})
    RestApi(optlab_server.uri).post("runs/update", {"run_id": b, "status": "FAILED", "end_time": 1_800_000_000_123})
    named = {run_id: client.get_run(run_id).info.run_name for run_id in (a, b)}
    assert str(_rows(optlab_server, a)).replace(named[a], "<name>") == str(_rows(optlab_server, b)).replace(
        named[b], "<name>"
    )
    assert client.get_run(a).info.status == "FAILED" and client.get_run(a).info.end_time == 1_800_000_000_123


# ---- the runs of an experiment with given tags ---------------------------------------------------------
RUNS_REFUSALS = {
    "an experiment id that is a number": ({"experiment_id": 3}, r"Invalid value 3 for parameter 'experiment_id'"),
    "tags that are a list": ({"experiment_id": "3", "tags": ["a"]}, r'Invalid value \["a"\] for parameter .tags.'),
    "a tag value that is a number": (
        {"experiment_id": "3", "tags": {"k": 1}},
        r"Invalid value 1 for parameter 'tags\.k'",
    ),
    "a page token it never gave": (
        {"experiment_id": "3", "page_token": "next"},
        r"Invalid value \"next\" for parameter 'page_token'",
    ),
}


@pytest.mark.parametrize("case", RUNS_REFUSALS)
def test_the_runs_route_names_what_it_cannot_read(case):
    body, message = RUNS_REFUSALS[case]
    with pytest.raises(ValueError, match=message):
        runs_route.read_request(body)


def _as_read(runs) -> list[str]:
    """Runs as a caller reads them (info, params, tags, latest metrics), NaN included, in their order."""
    return [json.dumps(run.to_dictionary(), sort_keys=True) for run in runs]


def _experiment_of_runs(client, name: str) -> tuple[str, list[str]]:
    """Five runs of a new experiment: four of sweep 's' (one deleted), one of sweep 't'; params, tags and
    metrics with NaN, an infinity, a step logged twice."""
    from mlflow.entities import Metric, Param, RunTag

    experiment_id = client.create_experiment(name)
    ids = []
    for i, sweep in enumerate(["s", "s", "t", "s", "s"]):
        run = client.create_run(experiment_id, run_name=f"point {i}", tags={"optlab.sweep": sweep, "n": str(i)})
        metrics = [Metric("loss", 1.0 / (s + 1), 1000 + s, s) for s in range(3)] + [Metric("acc", math.nan, 5, 1)]
        metrics += [Metric("big", math.inf, 7, 0), Metric("twice", 0.5, 9, 2), Metric("twice", 0.25, 8, 2)]
        client.log_batch(
            run.info.run_id,
            metrics=metrics,
            params=[Param("lr", str(0.1 * i)), Param("seed", str(i))],
            tags=[RunTag("note", "ünïcode 'quotes'")],
        )
        if i != 1:
            client.set_terminated(run.info.run_id, "FINISHED" if i % 2 == 0 else "FAILED")
        ids.append(run.info.run_id)
    client.delete_run(ids[3])
    return experiment_id, ids


@pytest.mark.slow
def test_runs_read_through_the_route_are_mlflows_search(optlab_server, plain_server):
    from mlflow.tracking import MlflowClient

    from optlab.sweeps.resume import search_all

    client = MlflowClient(optlab_server.uri)
    experiment_id, ids = _experiment_of_runs(client, "runs-route")
    asked = len(optlab_server.requests("POST", runs_route.PATH))
    got = bulk_reads.runs_with_tags(optlab_server.uri, experiment_id, {"optlab.sweep": "s"})
    assert optlab_server.requests("POST", runs_route.PATH)[asked:] == [200]
    expected = search_all(client, experiment_id, "tags.`optlab.sweep` = 's'")
    assert [r.info.run_id for r in expected] == [ids[4], ids[1], ids[0]]  # active only, newest first
    assert _as_read(got) == _as_read(expected)
    everything = bulk_reads.runs_with_tags(optlab_server.uri, experiment_id, {})
    assert _as_read(everything) == _as_read(search_all(client, experiment_id, ""))
    both = {"optlab.sweep": "s", "n": "4"}
    assert [r.info.run_id for r in bulk_reads.runs_with_tags(optlab_server.uri, experiment_id, both)] == [ids[4]]
    assert bulk_reads.runs_with_tags(optlab_server.uri, experiment_id, {"optlab.sweep": "none"}) == []

    plain = MlflowClient(plain_server.uri)
    plain_experiment, _ = _experiment_of_runs(plain, "runs-route")
    for _ in range(2):
        assert bulk_reads.runs_with_tags(plain_server.uri, plain_experiment, {"optlab.sweep": "s"}) is None
    assert plain_server.requests("POST", runs_route.PATH) == [404]  # asked once, then MLflow's search


@pytest.mark.slow
def test_a_run_with_a_dataset_input_is_left_to_mlflows_search(optlab_server):
    import mlflow
    import numpy as np
    from mlflow.tracking import MlflowClient

    from optlab.sweeps import resume

    client = MlflowClient(optlab_server.uri)
    experiment_id, ids = _experiment_of_runs(client, "runs-route-inputs")
    mlflow.set_tracking_uri(optlab_server.uri)
    try:
        with mlflow.start_run(run_id=ids[1]):
            mlflow.log_input(mlflow.data.from_numpy(np.zeros(3), name="zeros"), context="training")
    finally:
        mlflow.set_tracking_uri(None)
    assert runs_route.read(optlab_server.uri, experiment_id, {"optlab.sweep": "s"}) is None
    found = resume.search_tags(client, experiment_id, {"optlab.sweep": "s"})  # MLflow's search then
    assert [r.info.run_id for r in found] == [ids[4], ids[1], ids[0]] and found[1].inputs.dataset_inputs


def test_the_runs_route_pages_a_store_in_mlflows_order(tmp_path, monkeypatch):
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.tracking import MlflowClient

    store_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    store = SqlAlchemyStore(store_uri, str(tmp_path / "artifacts"))
    client = MlflowClient(store_uri)
    experiment_id, ids = _experiment_of_runs(client, "paged")
    monkeypatch.setattr(runs_route, "MOST_RUNS", 2)
    first, more = runs_route.query(store, int(experiment_id), {}, 0)
    second, last = runs_route.query(store, int(experiment_id), {}, 2)
    assert more and not last and [r[0] for r in first + second] == [ids[4], ids[2], ids[1], ids[0]]
    nan = next(m for m in first[0][11] if m[0] == "acc")
    assert nan[1] == "NaN" and sorted(first[0][10]) == [["lr", "0.4"], ["seed", "4"]]


# ---- a run's start with its params ----------------------------------------------------------------------
START_REFUSALS = {
    "a param key MLflow refuses": ({"params": [{"key": "lr?", "value": "0.1"}]}, r"Invalid value \"lr\?\""),
    "a param key twice": (
        {"params": [{"key": "lr", "value": "0.1"}, {"key": "lr", "value": "0.2"}]},
        r"Duplicate parameter keys have been submitted",
    ),
    "more params than one log-batch takes": (
        {"params": [{"key": f"p{i}", "value": "1"} for i in range(101)]},
        r"Invalid value .* for parameter 'params' supplied: a list of at most 100 params",
    ),
    "a param value that is a number": (
        {"params": [{"key": "lr", "value": 0.1}]},
        r"Invalid value \{\"key\":\"lr\",\"value\":0.1\} for parameter 'params\[0\]'",
    ),
    "a start time that is text": ({"start_time": "now"}, r"Invalid value \"now\" for parameter 'start_time'"),
}


def _start_body(experiment_id: str, **changes) -> dict:
    body = {
        "experiment_id": experiment_id,
        "user_id": "me",
        "start_time": 1_700_000_000_000,
        "run_name": "point 0",
        "tags": [{"key": "optlab.role", "value": "point"}],
        "params": [{"key": "lr", "value": "0.1"}, {"key": "seed", "value": "3"}],
    }
    return {**body, **changes}


@pytest.mark.slow
def test_a_run_started_through_the_route_holds_what_create_and_log_batch_store(optlab_server):
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(optlab_server.uri)
    experiment_id = client.create_experiment("start-route")
    api = RestApi(optlab_server.uri)
    answer = api.answer_if_offered(start_route.PATH, _start_body(experiment_id))
    run = client.get_run(answer["run"]["info"]["run_id"])
    assert run.data.params == {"lr": "0.1", "seed": "3"} and run.info.run_name == "point 0"
    assert run.info.status == "RUNNING" and run.info.start_time == 1_700_000_000_000
    assert run.data.tags["optlab.role"] == "point" and run.info.artifact_uri == answer["run"]["info"]["artifact_uri"]
    mlflows = client.create_run(
        experiment_id, start_time=1_700_000_000_000, tags={"optlab.role": "point"}, run_name="point 0"
    )
    client.log_batch(mlflows.info.run_id, params=[Param("lr", "0.1"), Param("seed", "3")])
    ours, theirs = (run_rows(optlab_server.folder / "server.db", r) for r in (run.info.run_id, mlflows.info.run_id))
    user = 4  # the runs row's user_id: MLflow's client sends the OS user's, the test body "me"
    assert ours["run"][:user] + ours["run"][user + 1 :] == theirs["run"][:user] + theirs["run"][user + 1 :]
    assert {k: v for k, v in ours.items() if k != "run"} == {k: v for k, v in theirs.items() if k != "run"}


@pytest.mark.slow
@pytest.mark.parametrize("case", START_REFUSALS)
def test_the_start_route_refuses_what_mlflow_refuses_naming_it_and_creates_no_run(optlab_server, case):
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(optlab_server.uri)
    experiment_id = client.create_experiment(f"start-refused-{sorted(START_REFUSALS).index(case)}")
    changes, message = START_REFUSALS[case]
    with pytest.raises(RestError, match=message) as refused:
        RestApi(optlab_server.uri).call(
            "POST", start_route.PATH, json.dumps(_start_body(experiment_id, **changes)).encode(), "application/json"
        )
    assert refused.value.status == 400
    assert client.search_runs([experiment_id], run_view_type=ViewType.ALL) == []


def test_a_start_whose_params_cannot_be_stored_deletes_the_run_it_created(monkeypatch):
    """A database error after the run was created: the run is deleted and the error answered, so the
    recorder's fallback (MLflow's own calls) never leaves two runs for one point."""
    from flask import Flask
    from mlflow.entities import Run, RunData, RunInfo

    class FailingStore:
        deleted: list[str] = []

        def create_run(self, **fields):
            info = RunInfo("r" * 32, fields["experiment_id"], fields["user_id"], "RUNNING", 1, None, "active")
            return Run(info, RunData())

        def log_batch(self, run_id, metrics, params, tags):
            raise OSError("disk full")

        def delete_run(self, run_id):
            self.deleted.append(run_id)

    store = FailingStore()
    monkeypatch.setattr(start_route, "server_store", lambda internals: store)
    with Flask(__name__).test_request_context(json=_start_body("1")):
        response = start_route.start_run()
    assert response.status_code == 500 and "disk full" in response.get_json()["message"]
    assert store.deleted == ["r" * 32]
