"""A sweep's points on a tracking server, recorded with MLflow's REST calls sent directly
(tracking/rest_recorder.py, tracking/rest_api.py): the rows and files are those MLflow's client stores for
the same run (a real `mlflow server`), the workers of a sweep on a server never import MLflow, the writer
steps aside for MLflow's client wherever the server needs more than its URI, and a server that fails is
retried as MLflow's client retries it, then named in one line. On a server running optlab's app the points
go to its bulk route (tracking/points_route.py) and the rows are the same; a server without the route is
asked once and then sent MLflow's log-batch."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file
from store_rows import run_rows
from test_faults_server import running_server

from optlab.config import RunConfig
from optlab.tracking import points_route, rest_api
from optlab.tracking.background import PlanFacts, ProblemFacts
from optlab.tracking.end_route import PATH as END_ROUTE
from optlab.tracking.failures import describe
from optlab.tracking.points_route import MOST_POINTS
from optlab.tracking.points_route import PATH as POINTS_ROUTE
from optlab.tracking.rest_api import RestApi, RestError, Unreachable, usable
from optlab.tracking.rest_recorder import RestRunRecorder
from optlab.tracking.start_route import PATH as START_ROUTE

FACTS = ProblemFacts(n_params=4, data_fingerprint="f1ngerprint", data_split="1257/180/360")
PLAN = PlanFacts(batch_size=32, steps_per_epoch=39.28125, max_steps=3)
WEIGHTS = np.array([0.5, -1.25, 3.0, 7.75], dtype=np.float32)
SWEEP_TAGS = {"optlab.sweep": "e", "optlab.role": "rerun", "optlab.point_hash": "abc123", "optlab.timing": "alone"}


@pytest.fixture(autouse=True)
def plain_client(monkeypatch, tmp_path):
    """No MLflow credentials or plugins here, and retries without waiting."""
    for name in rest_api.MLFLOW_ONLY_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OPTLAB_STORE_WRITER", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")


def _config() -> RunConfig:
    return RunConfig.from_dict({"strategy": "adam", "lr": 0.01, "dataset": "digits", "steps": 3, "experiment": "e"})


def _record(recorder, status: str = "FINISHED") -> str:
    recorder.start(_config(), FACTS, PLAN, extra_tags={"optlab.family": "first-order", **SWEEP_TAGS})
    recorder.log(0, {"val_accuracy": 0.1, "train_loss": 2.5, "epoch": 0.0})
    recorder.log_series([1, 2, 3], {"batch_loss": [2.0, math.nan, math.inf], "lr": [0.01, 0.01, 0.005]})
    recorder.log(3, {"val_accuracy": 0.75, "train_loss": -math.inf, "epoch": 3 / 39.28125})
    recorder.finish(status, None if status == "FINISHED" else "diverged: test", {"steps": 3, "wall_time": 0.5}, WEIGHTS)
    return recorder.run_id


# ---- a fake server: what is sent, and answers the test chooses ----------------------------------------
class FakeServer:
    """Answers MLflow's REST routes like a server would (`answer` may be replaced), recording each request;
    optlab's points and end routes like a plain `mlflow server` (404), or with `offers_points` like optlab's
    app; its start route always like a plain server (a real optlab server starts runs in the slow tests)."""

    def __init__(
        self,
        artifact_location: str = "mlflow-artifacts:/",
        keep_alive_then_close: bool = False,
        offers_points: bool = False,
    ):
        self.requests: list[tuple[str, str, bytes]] = []
        self.location = artifact_location
        self.offers_points = offers_points
        self.answer = self.like_mlflow
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive_then_close else "HTTP/1.0"

            def handle_one(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.requests.append((self.command, self.path, body))
                status, payload = fake.answer(self.command, self.path, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                self.close_connection = keep_alive_then_close or self.close_connection

            do_GET = do_POST = do_PUT = do_DELETE = handle_one

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def like_mlflow(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        if path.startswith("/api/2.0/mlflow/experiments/get"):
            return 200, {"experiment": {"experiment_id": "1", "artifact_location": self.location}}
        if path == "/api/2.0/mlflow/runs/create":
            run_id = f"{len([r for r in self.requests if r[1] == path]):032x}"
            return 200, {"run": {"info": {"run_id": run_id, "artifact_uri": f"{self.location}1/{run_id}/artifacts"}}}
        if path in (POINTS_ROUTE, END_ROUTE) and not self.offers_points or path == START_ROUTE:
            return 404, {}
        return 200, {}

    def posted(self, endpoint: str) -> list[dict]:
        return [json.loads(body) for method, path, body in self.requests if path == f"/api/2.0/mlflow/{endpoint}"]

    def posted_points(self) -> list[dict]:
        return [json.loads(body) for method, path, body in self.requests if path == POINTS_ROUTE]

    def ended(self) -> list[str]:
        """The statuses the run was ended with, through the end route or runs/update."""
        return [
            json.loads(body)["status"]
            for _, path, body in self.requests
            if path in (END_ROUTE, "/api/2.0/mlflow/runs/update")
        ]

    def metrics_in_log_batch(self) -> list[dict]:
        return [m for body in self.posted("runs/log-batch") for m in body.get("metrics", [])]

    def close(self):
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def fake():
    server = FakeServer()
    yield server
    server.close()


def test_only_a_server_reached_by_its_uri_alone_is_written_without_mlflow(monkeypatch, tmp_path):
    assert usable("http://127.0.0.1:5000") and usable("https://tracking.example.org/mlflow")
    assert not usable("http://user:secret@127.0.0.1:5000")
    assert not usable("postgresql://mlflow@127.0.0.1/mlflow") and not usable("sqlite:///mlruns/mlflow.db")
    for name in rest_api.MLFLOW_ONLY_ENV:
        monkeypatch.setenv(name, "x")
        assert not usable("http://127.0.0.1:5000"), name
        monkeypatch.delenv(name)
    credentials = Path(tmp_path / "home" / ".mlflow" / "credentials")
    credentials.parent.mkdir(parents=True)
    credentials.write_text("[mlflow]\nmlflow_tracking_username = me\n")
    assert not usable("http://127.0.0.1:5000")


@pytest.mark.parametrize("case", ["artifacts in a bucket", "artifacts in a shared folder", "switched off", "no parent"])
def test_the_rest_writer_steps_aside_where_mlflows_client_must_record(case, monkeypatch):
    server = FakeServer(
        {"artifacts in a bucket": "s3://bucket/runs", "artifacts in a shared folder": "/srv/mlflow"}.get(
            case, "mlflow-artifacts:/"
        )
    )
    try:
        if case == "switched off":
            monkeypatch.setenv("OPTLAB_STORE_WRITER", "mlflow")
        parent = None if case == "no parent" else "f" * 32
        assert RestRunRecorder.open(server.uri, "1", parent) is None
        assert not server.posted("runs/create")  # nothing was written before stepping aside
    finally:
        server.close()


@pytest.mark.parametrize("server", ["mlflow server", "optlab app"])
def test_a_run_sends_mlflows_calls_in_order_with_non_finite_values_as_mlflow_writes_them(server):
    fake = FakeServer(offers_points=server == "optlab app")
    try:
        recorder = RestRunRecorder.open(fake.uri, "1", "f" * 32)
        assert recorder is not None
        _record(recorder)
    finally:
        fake.close()
    calls = [
        (m, p.split("/artifacts/")[-1] if "mlflow-artifacts" in p else p.rsplit("/", 1)[-1])
        for m, p, _ in fake.requests
    ]
    calls = [c for c in calls if not c[1].startswith("get?")]
    ending = [("POST", "end")] if server == "optlab app" else [("POST", "log-batch"), ("POST", "update")]
    assert calls == [
        ("POST", "start"),  # asked first; a server without optlab's start route answers 404
        ("POST", "create"),
        ("POST", "log-batch"),  # params
        ("PUT", "config.json"),
        ("POST", "log-points"),  # the metric points (without the route: a 404, and they wait for the end tags)
        ("PUT", "params.safetensors"),
        *ending,  # end tags and status in one request, else the end tags (with the points) and the status
    ]
    create, (params, *rest) = fake.posted("runs/create")[0], fake.posted("runs/log-batch")
    tags = {t["key"]: t["value"] for t in create["tags"]}
    assert tags["mlflow.parentRunId"] == "f" * 32 and tags["optlab.point_hash"] == "abc123"
    assert create["user_id"] == "unknown" and create["run_name"] == _config().label()
    assert {p["key"] for p in params["params"]} >= {"lr", "strategy", "n_params", "planned_steps"}
    if server == "optlab app":
        assert rest == []
        (end,) = [json.loads(body) for _, path, body in fake.requests if path == END_ROUTE]
        assert end["run_id"] == recorder.run_id and end["status"] == "FINISHED" and isinstance(end["end_time"], int)
        (bulk,) = fake.posted_points()
        assert bulk["run_id"] == recorder.run_id
        points = list(zip(bulk["keys"], bulk["steps"], bulk["values"], bulk["timestamps"]))
        assert len(points) == 12 and all(isinstance(t, int) for *_, t in points)
        values = {(k, s): v for k, s, v, _ in points}
    else:
        (end,) = rest
        values = {(m["key"], m["step"]): m["value"] for m in end["metrics"]}
        assert fake.posted("runs/update") == [
            {
                "run_id": recorder.run_id,
                "run_uuid": recorder.run_id,
                "status": "FINISHED",
                "end_time": fake.posted("runs/update")[0]["end_time"],
            }
        ]
    assert values[("batch_loss", 2)] == "NaN" and values[("batch_loss", 3)] == "Infinity"
    assert values[("train_loss", 3)] == "-Infinity" and values[("val_accuracy", 3)] == 0.75
    assert {t["key"]: t["value"] for t in end["tags"]}["optlab.status"] == "FINISHED"
    assert recorder.status == "FINISHED"


@pytest.mark.parametrize("answer", [404, 413, 501], ids=["no route", "body too large for a proxy", "not SQL"])
def test_a_server_without_the_points_route_is_asked_once_then_sent_log_batch(answer):
    fake = FakeServer()
    fake.answer = lambda method, path, body: (
        (answer, {}) if path == POINTS_ROUTE else fake.like_mlflow(method, path, body)
    )
    try:
        for _ in range(2):  # two runs of one process on one server
            recorder = RestRunRecorder.open(fake.uri, "1", "f" * 32)
            _record(recorder)
            assert recorder.status == "FINISHED"
    finally:
        fake.close()
    assert len(fake.posted_points()) == 1  # the first flush asked; the answer (404) is remembered
    assert len(fake.metrics_in_log_batch()) == 2 * 12  # every point of both runs, through log-batch


def test_the_points_route_carries_a_flush_in_requests_of_at_most_its_limit(monkeypatch):
    monkeypatch.setattr(points_route, "MOST_POINTS", 1000)
    fake = FakeServer(offers_points=True)
    try:
        recorder = RestRunRecorder.open(fake.uri, "1", "f" * 32)
        recorder.start(_config(), FACTS, PLAN, extra_tags=dict(SWEEP_TAGS))
        recorder.log_series(list(range(2500)), {"batch_loss": [1.0] * 2500})
        recorder.finish("FINISHED", None, {"steps": 3}, WEIGHTS)
    finally:
        fake.close()
    assert [len(body["keys"]) for body in fake.posted_points()] == [1000, 1000, 500]
    assert [s for body in fake.posted_points() for s in body["steps"]] == list(range(2500))
    assert fake.metrics_in_log_batch() == [] and recorder.status == "FINISHED"


def test_a_server_error_on_the_points_route_is_retried_like_any_call():
    fake = FakeServer(offers_points=True)
    failures = iter([503, 500])

    def flaky(method, path, body):
        if path == POINTS_ROUTE and (status := next(failures, None)):
            return status, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "busy"}
        return fake.like_mlflow(method, path, body)

    fake.answer = flaky
    try:
        recorder = RestRunRecorder.open(fake.uri, "1", "f" * 32)
        _record(recorder)
    finally:
        fake.close()
    assert len(fake.posted_points()) == 3 and fake.posted_points()[0] == fake.posted_points()[2]
    assert fake.metrics_in_log_batch() == []  # still the route's, not a fallback
    assert recorder.status == "FINISHED"


def test_a_server_error_is_retried_as_mlflows_client_retries_it(fake):
    failures = iter([503, 502])

    def flaky(method, path, body):
        status = next(failures, 200)
        return (status, {}) if status != 200 else fake.like_mlflow(method, path, body)

    fake.answer = flaky
    answer = RestApi(fake.uri).get("experiments/get", {"experiment_id": "1"})
    assert answer["experiment"]["artifact_location"] == "mlflow-artifacts:/"
    assert len(fake.requests) == 3


def test_a_kept_alive_connection_the_server_closed_is_reopened_without_spending_a_retry(monkeypatch):
    """Like uvicorn after its keep-alive timeout: the server answers in HTTP/1.1 (so the client keeps the
    connection) and then closes it. The next request goes on a new connection, even with no retries."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    server = FakeServer(keep_alive_then_close=True)
    try:
        api = RestApi(server.uri)
        for _ in range(3):
            assert api.get("experiments/get", {"experiment_id": "1"})["experiment"]["experiment_id"] == "1"
        assert len(server.requests) == 3
    finally:
        server.close()


def test_a_refusal_is_not_retried_and_reads_as_mlflows_error(fake):
    fake.answer = lambda *_: (400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid value 'x' for 'step'"})
    with pytest.raises(RestError, match=r"^INVALID_PARAMETER_VALUE: Invalid value 'x' for 'step'$"):
        RestApi(fake.uri).post("runs/log-batch", {"run_id": "r"})
    assert len(fake.requests) == 1


def test_a_server_that_is_gone_is_named_in_one_line():
    server = FakeServer()
    uri = server.uri
    server.close()
    with pytest.raises(Unreachable) as raised:
        RestApi(uri).post("runs/create", {})
    line = describe(raised.value)
    assert (
        line.startswith(f"tracking server {uri} unreachable: connection refused (after 2 retries") and "\n" not in line
    )


@pytest.mark.parametrize(
    "route", ["log-batch", "points route", "points route refusing"], ids=["log-batch", "bulk", "bulk-400"]
)
def test_points_the_server_cannot_store_end_the_run_failed_and_keep_no_weights(route):
    fake = FakeServer(offers_points=route != "log-batch")

    def no_metrics(method, path, body):
        if route == "points route refusing" and path == POINTS_ROUTE:
            return 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid value \"x\" for 'keys[0]'"}
        if (
            path == POINTS_ROUTE
            and route == "points route"
            or (path.endswith("runs/log-batch") and b'"metrics"' in body and b'"tags"' not in body)
        ):
            return 500, {"error_code": "INTERNAL_ERROR", "message": "disk full"}
        return fake.like_mlflow(method, path, body)

    fake.answer = no_metrics
    try:
        recorder = RestRunRecorder.open(fake.uri, "1", "f" * 32)
        recorder.start(_config(), FACTS, PLAN, extra_tags=dict(SWEEP_TAGS))
        recorder.log_series(list(range(1500)), {"batch_loss": [1.0] * 1500})  # more than one log-batch's 1,000
        recorder.finish("FINISHED", None, {"steps": 3}, WEIGHTS)
    finally:
        fake.close()
    assert recorder.status == "FAILED" and recorder.reason.startswith("storage: metrics: ")
    if route == "points route refusing":  # a refusal is not retried, and its reason is kept
        assert len(fake.posted_points()) == 1 and "INVALID_PARAMETER_VALUE" in recorder.reason
    elif route == "points route":
        assert len(fake.posted_points()) == 3  # the first try and two retries
    assert fake.ended()[-1] == "FAILED"
    deleted = [p for m, p, _ in fake.requests if m == "DELETE"]
    assert len(deleted) == 1 and deleted[0].endswith("/artifacts/params.safetensors")


# ---- a real `mlflow server` ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A plain `mlflow server`."""
    yield from running_server(tmp_path_factory, None)


@pytest.fixture(scope="module")
def optlab_server(tmp_path_factory):
    """`mlflow server --app-name optlab`: MLflow's server with optlab's routes."""
    yield from running_server(tmp_path_factory, "optlab")


def _server_rows(server, run_id: str) -> dict:
    """What the server stores of a run (its database and its artifact folder), without ids and clock times."""
    out = run_rows(server.folder / "server.db", run_id)
    (folder,) = (server.folder / "artifacts").glob(f"*/{run_id}/artifacts")
    out["artifacts"] = sorted(p.name for p in folder.iterdir())
    out["config.json"] = (folder / "config.json").read_text()
    weights = folder / "params.safetensors"
    out["weights"] = load_file(weights)["params"].tolist() if weights.exists() else None
    return out


@pytest.mark.slow
@pytest.mark.parametrize("status", ["FINISHED", "FAILED"])
@pytest.mark.parametrize("app", ["mlflow server", "optlab app"])
def test_a_point_sent_over_rest_holds_the_rows_and_files_mlflows_client_stores(app, status, request):
    from mlflow.tracking import MlflowClient

    from optlab.tracking.point_recorder import PointRecorder
    from optlab.tracking.recorder import RunRecorder
    from optlab.tracking.store import ensure_experiment

    server = request.getfixturevalue("optlab_server" if app == "optlab app" else "server")
    client = MlflowClient(server.uri)
    experiment_id = ensure_experiment(client, f"rest_{status}")
    parent = client.create_run(experiment_id, tags={"optlab.role": "parent"}).info.run_id
    through_mlflow = _record(
        RunRecorder(experiment_id=experiment_id, parent_run_id=parent, tracking_uri=server.uri), status
    )
    asked, asked_end = len(server.requests("POST", POINTS_ROUTE)), len(server.requests("POST", END_ROUTE))
    asked_start = len(server.requests("POST", START_ROUTE))
    point = PointRecorder(server.uri, experiment_id, parent)
    sent_directly = _record(point, status)
    assert isinstance(point.writer, RestRunRecorder) and point.status == status
    expected, got = _server_rows(server, through_mlflow), _server_rows(server, sent_directly)
    assert got == expected
    assert ("mlflow.parentRunId", parent) in got["tags"] and ("optlab.status", status) in got["tags"]
    assert (got["weights"] is not None) == (status == "FINISHED")
    assert client.get_run(sent_directly).info.status == status
    answers, ends = server.requests("POST", POINTS_ROUTE), server.requests("POST", END_ROUTE)
    starts = server.requests("POST", START_ROUTE)
    if app == "optlab app":  # created with its params, its points and its end each in one request
        assert starts[asked_start:] == [200] and answers[asked:] == [200] and ends[asked_end:] == [200]
    else:  # asked once per process and server; runs/create and log-batch stored them, with the end tags
        assert starts == [404] and answers == [404] and ends == []


def _post_points(server, body: dict) -> None:
    RestApi(server.uri).call("POST", POINTS_ROUTE, json.dumps(body).encode(), "application/json")


def _stored_metrics(server, run_id: str) -> list:
    return run_rows(server.folder / "server.db", run_id)["metrics"]


GOOD = {"keys": ["loss", "loss", "lr"], "values": [1.5, "NaN", 0.1], "timestamps": [1, 2, 3], "steps": [0, 1, 1]}
BAD_INPUTS = {
    "a name MLflow refuses": ({"keys": ["loss", "loss?", "lr"]}, r"Invalid value \"loss\?\" for parameter 'keys\[1\]'"),
    "a name resolving to another": ({"keys": ["loss", "a/../lr", "lr"]}, r"'keys\[1\]'.*would resolve to 'lr'"),
    "a name too long": ({"keys": ["loss", "k" * 251, "lr"]}, r"'keys\[1\]' supplied: Metric name is longer than 250"),
    "a value that is text": ({"values": [1.5, "abc", 0.1]}, r"Invalid value \"abc\" for parameter 'values\[1\]'"),
    "a value that is a bool": ({"values": [1.5, True, 0.1]}, r"Invalid value true for parameter 'values\[1\]'"),
    "a missing value": ({"values": [1.5, None, 0.1]}, r"Invalid value null for parameter 'values\[1\]'"),
    "a fractional step": ({"steps": [0, 1.5, 1]}, r"Invalid value 1.5 for parameter 'steps\[1\]'.*64-bit integer"),
    "a negative timestamp": ({"timestamps": [1, -2, 3]}, r"Invalid value -2 for parameter 'timestamps\[1\]'"),
    "a step beyond 64 bits": ({"steps": [0, 2**63, 1]}, r"for parameter 'steps\[1\]'"),
    "lists of unequal length": ({"steps": [0, 1]}, r"one entry per point: got .*'steps': 2"),
    "no run id": ({"run_id": None}, r"Invalid value null for parameter 'run_id'"),
    "a run that does not exist": ({"run_id": "0" * 32}, r"Run with id=0{32} not found"),
}


@pytest.mark.parametrize("case", [c for c in BAD_INPUTS if "run" not in c])
def test_the_points_route_reads_a_request_as_mlflow_would_refuse_it(case):
    """The route's reading of a request on its own (the slow test below sends each to a real server)."""
    from optlab.tracking.points_route import Refused, name_check, read_points

    change, message = BAD_INPUTS[case]
    with pytest.raises(Refused, match=message):
        read_points({"run_id": "r", **GOOD, **change}, name_check())
    points = read_points({"run_id": "r", **GOOD, "values": [1, "Infinity", "-Infinity"]}, name_check())
    assert points.values == [1.0, math.inf, -math.inf] and type(points.values[0]) is float


@pytest.mark.slow
@pytest.mark.parametrize("case", [*BAD_INPUTS, "a deleted run", "too many points"])
def test_the_points_route_refuses_what_mlflow_refuses_naming_it_and_stores_nothing(optlab_server, case):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(optlab_server.uri)
    run_id = client.create_run(client.get_experiment_by_name("Default").experiment_id).info.run_id
    body = {"run_id": run_id, **GOOD}
    if case == "a deleted run":
        client.delete_run(run_id)
        change, message = {}, rf"The run {run_id} must be in the 'active' state"
    elif case == "too many points":
        n = MOST_POINTS + 1
        change = {"keys": ["loss"] * n, "values": [1.0] * n, "timestamps": [1] * n, "steps": list(range(n))}
        message = rf"at most {MOST_POINTS} points\. Got {n}"
    else:
        change, message = BAD_INPUTS[case]
    with pytest.raises(RestError) as refused:
        _post_points(optlab_server, {**body, **change})
    assert refused.value.status == 400 and refused.value.code == "INVALID_PARAMETER_VALUE"
    assert re.search(message, str(refused.value)), str(refused.value)
    assert _stored_metrics(optlab_server, run_id) == []


@pytest.mark.slow
def test_the_points_route_stores_a_retried_request_once(optlab_server):
    """A request whose answer was lost is sent again: the second finds its points stored and adds nothing."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(optlab_server.uri)
    run_id = client.create_run(client.get_experiment_by_name("Default").experiment_id).info.run_id
    for _ in range(2):
        _post_points(optlab_server, {"run_id": run_id, **GOOD})
    assert _stored_metrics(optlab_server, run_id) == [("loss", 0.0, 1, 1), ("loss", 1.5, 0, 0), ("lr", 0.1, 1, 0)]
    assert math.isnan(client.get_run(run_id).data.metrics["loss"])  # the newest step's value


SPY = """
import os, sys

class _Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "mlflow":
            with open(os.path.join(os.environ["MLFLOW_IMPORT_SPY"], str(os.getpid())), "w"):
                pass
        return None

sys.meta_path.insert(0, _Spy())
"""


@pytest.mark.slow
@pytest.mark.parametrize("app", ["mlflow server", "optlab app"])
def test_a_sweeps_workers_on_a_server_never_import_mlflow(app, tmp_path, request):
    server = request.getfixturevalue("optlab_server" if app == "optlab app" else "server")
    asked = len(server.requests("POST", POINTS_ROUTE))
    spy = tmp_path / "spy"
    (spy / "seen").mkdir(parents=True)
    (spy / "sitecustomize.py").write_text(SPY)
    spec = tmp_path / "rest_sweep.toml"
    spec.write_text(
        textwrap.dedent(
            """
            name = "rest_sweep"
            [base]
            dataset = "digits"
            hidden = [8]
            steps = 20
            eval_every = 10
            [grid]
            strategy = ["sgd", "adam"]
            lr = [0.01, 0.1]
            """
        )
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")},
        "MLFLOW_TRACKING_URI": server.uri,
        "MLFLOW_IMPORT_SPY": str(spy / "seen"),
        "PYTHONPATH": os.pathsep.join([str(spy), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "OPTLAB_HOME": str(tmp_path),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "optlab", "sweep", str(spec), "--workers", "2", "-q"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out + err
    importers = {int(p.name) for p in (spy / "seen").iterdir()}
    assert importers == {proc.pid}  # the sweep process (its store reads, seed groups), none of its workers
    from mlflow.tracking import MlflowClient

    client = MlflowClient(server.uri)
    experiment = client.get_experiment_by_name("rest_sweep")
    points = client.search_runs([experiment.experiment_id], "tags.`optlab.role` = 'point'")
    assert len(points) == 4 and {r.info.status for r in points} == {"FINISHED"}
    assert all(r.data.metrics.get("val_accuracy") is not None for r in points)
    answers = server.requests("POST", POINTS_ROUTE)[asked:]
    if app == "optlab app":  # every point's metrics went to the route
        assert len(answers) >= 4 and set(answers) == {200}
    else:  # each worker process asked once at most
        assert set(answers) <= {404} and len(answers) <= 2
