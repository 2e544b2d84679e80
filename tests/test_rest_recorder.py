"""A sweep's points on a tracking server, recorded with MLflow's REST calls sent directly
(tracking/rest_recorder.py, tracking/rest_api.py): the rows and files are those MLflow's client stores for
the same run (a real `mlflow server`), the workers of a sweep on a server never import MLflow, the writer
steps aside for MLflow's client wherever the server needs more than its URI, and a server that fails is
retried as MLflow's client retries it, then named in one line."""

from __future__ import annotations

import json
import math
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

from optlab.config import RunConfig
from optlab.tracking import rest_api
from optlab.tracking.background import PlanFacts, ProblemFacts
from optlab.tracking.failures import describe
from optlab.tracking.rest_api import RestApi, RestError, Unreachable, usable
from optlab.tracking.rest_recorder import RestRunRecorder

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
    """Answers MLflow's REST routes like a server would (`answer` may be replaced), recording each request."""

    def __init__(self, artifact_location: str = "mlflow-artifacts:/", keep_alive_then_close: bool = False):
        self.requests: list[tuple[str, str, bytes]] = []
        self.location = artifact_location
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
        return 200, {}

    def posted(self, endpoint: str) -> list[dict]:
        return [json.loads(body) for method, path, body in self.requests if path == f"/api/2.0/mlflow/{endpoint}"]

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


def test_a_run_sends_mlflows_calls_in_order_with_non_finite_values_as_mlflow_writes_them(fake):
    recorder = RestRunRecorder.open(fake.uri, "1", "f" * 32)
    assert recorder is not None
    _record(recorder)
    calls = [
        (m, p.split("/artifacts/")[-1] if "mlflow-artifacts" in p else p.rsplit("/", 1)[-1])
        for m, p, _ in fake.requests
    ]
    calls = [c for c in calls if not c[1].startswith("get?")]
    assert calls == [
        ("POST", "create"),
        ("POST", "log-batch"),  # params
        ("PUT", "config.json"),
        ("PUT", "params.safetensors"),
        ("POST", "log-batch"),  # the metric points with the end tags
        ("POST", "update"),
    ]
    create, (params, end) = fake.posted("runs/create")[0], fake.posted("runs/log-batch")
    tags = {t["key"]: t["value"] for t in create["tags"]}
    assert tags["mlflow.parentRunId"] == "f" * 32 and tags["optlab.point_hash"] == "abc123"
    assert create["user_id"] == "unknown" and create["run_name"] == _config().label()
    assert {p["key"] for p in params["params"]} >= {"lr", "strategy", "n_params", "planned_steps"}
    values = {(m["key"], m["step"]): m["value"] for m in end["metrics"]}
    assert values[("batch_loss", 2)] == "NaN" and values[("batch_loss", 3)] == "Infinity"
    assert values[("train_loss", 3)] == "-Infinity" and values[("val_accuracy", 3)] == 0.75
    assert {t["key"]: t["value"] for t in end["tags"]}["optlab.status"] == "FINISHED"
    assert fake.posted("runs/update") == [
        {
            "run_id": recorder.run_id,
            "run_uuid": recorder.run_id,
            "status": "FINISHED",
            "end_time": fake.posted("runs/update")[0]["end_time"],
        }
    ]
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


def test_points_the_server_cannot_store_end_the_run_failed_and_keep_no_weights(fake):
    def no_metrics(method, path, body):
        if path.endswith("runs/log-batch") and b'"metrics"' in body and b'"tags"' not in body:
            return 500, {"error_code": "INTERNAL_ERROR", "message": "disk full"}
        return fake.like_mlflow(method, path, body)

    fake.answer = no_metrics
    recorder = RestRunRecorder.open(fake.uri, "1", "f" * 32)
    recorder.start(_config(), FACTS, PLAN, extra_tags=dict(SWEEP_TAGS))
    recorder.log_series(list(range(1500)), {"batch_loss": [1.0] * 1500})  # more than one call's 1,000 points
    recorder.finish("FINISHED", None, {"steps": 3}, WEIGHTS)
    assert recorder.status == "FAILED" and recorder.reason.startswith("storage: metrics: ")
    assert fake.posted("runs/update")[-1]["status"] == "FAILED"
    deleted = [p for m, p, _ in fake.requests if m == "DELETE"]
    assert len(deleted) == 1 and deleted[0].endswith("/artifacts/params.safetensors")


# ---- a real `mlflow server` ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from test_faults_server import Server, free_port

    running = Server(tmp_path_factory.mktemp("server"), free_port())
    running.start()
    try:
        yield running
    finally:
        running.stop()


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
def test_a_point_sent_over_rest_holds_the_rows_and_files_mlflows_client_stores(server, status, monkeypatch):
    from mlflow.tracking import MlflowClient

    from optlab.tracking.point_recorder import PointRecorder
    from optlab.tracking.recorder import RunRecorder
    from optlab.tracking.store import ensure_experiment

    client = MlflowClient(server.uri)
    experiment_id = ensure_experiment(client, f"rest_{status}")
    parent = client.create_run(experiment_id, tags={"optlab.role": "parent"}).info.run_id
    through_mlflow = _record(
        RunRecorder(experiment_id=experiment_id, parent_run_id=parent, tracking_uri=server.uri), status
    )
    point = PointRecorder(server.uri, experiment_id, parent)
    sent_directly = _record(point, status)
    assert isinstance(point.writer, RestRunRecorder) and point.status == status
    expected, got = _server_rows(server, through_mlflow), _server_rows(server, sent_directly)
    assert got == expected
    assert ("mlflow.parentRunId", parent) in got["tags"] and ("optlab.status", status) in got["tags"]
    assert (got["weights"] is not None) == (status == "FINISHED")
    assert client.get_run(sent_directly).info.status == status


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
def test_a_sweeps_workers_on_a_server_never_import_mlflow(server, tmp_path):
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
        **{k: v for k, v in __import__("os").environ.items() if not k.startswith("MLFLOW_TRACKING")},
        "MLFLOW_TRACKING_URI": server.uri,
        "MLFLOW_IMPORT_SPY": str(spy / "seen"),
        "PYTHONPATH": str(spy),
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
