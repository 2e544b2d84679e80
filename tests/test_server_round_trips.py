"""Round trips to a tracking server: a run is recorded in the fewest calls MLflow allows (metric points
1,000 to a log_batch, the last of them with the end tags; no read-back), FINISHED still means every
call was acknowledged, and seed groups read curves 100 runs to a request. Counted against a real
`mlflow server` on a SQLite file in tmp_path: every request the client sends is recorded with its body."""

from __future__ import annotations

import math

import pytest
import requests
from test_faults_server import Server, free_port

pytestmark = pytest.mark.slow  # a real tracking server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("server")
    running = Server(folder, free_port())
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def requests_sent(monkeypatch):
    """(method, path, JSON body) of every HTTP request made in this process."""
    sent: list[tuple[str, str, dict]] = []
    original = requests.sessions.Session.request

    def record(self, method, url, *args, **kwargs):
        sent.append((method.upper(), url.split("://", 1)[-1].partition("/")[2], kwargs.get("json") or {}))
        return original(self, method, url, *args, **kwargs)

    monkeypatch.setattr(requests.sessions.Session, "request", record)
    return sent


def record_one_run(server, tmp_path, monkeypatch, experiment: str, epochs: int = 10):
    from optlab.config import RunConfig
    from optlab.engine import run
    from optlab.tracking.recorder import RunRecorder

    monkeypatch.setenv("OPTLAB_HOME", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    config = RunConfig.from_dict(
        dict(dataset="digits", hidden=[8], epochs=epochs, eval_every=5, strategy="adam", lr=0.01, experiment=experiment)
    )
    recorder = RunRecorder(experiment=experiment, tracking_uri=server.uri)
    return run(config, recorder=recorder), recorder


def calls_for(sent, run_id: str) -> list[tuple[str, str, dict]]:
    """The requests about run `run_id`, its creation included (the experiment's are not)."""
    return [
        (m, path, body)
        for m, path, body in sent
        if run_id in path or run_id in (body.get("run_id"), body.get("run_uuid")) or path.endswith("runs/create")
    ]


def stored_points(client, run_id: str) -> int:
    return sum(len(client.get_metric_history(run_id, key)) for key in client.get_run(run_id).data.metrics)


def test_a_run_on_a_server_makes_one_log_batch_per_1000_points_and_no_read_back(
    server, tmp_path, monkeypatch, requests_sent
):
    from mlflow.tracking import MlflowClient

    result, recorder = record_one_run(server, tmp_path, monkeypatch, "round_trips")
    assert result.status == "FINISHED", result.reason
    sent = calls_for(requests_sent, recorder.run_id)
    batches = [body for _, path, body in sent if path.endswith("runs/log-batch")]
    with_metrics = [b for b in batches if b.get("metrics")]
    client = MlflowClient(server.uri)
    points = stored_points(client, result.run_id)
    assert points > 2000  # per-step series and evaluations: several full calls
    # every point sent is stored, 1,000 to a call (MLflow's limit): one call per point would be thousands
    assert sum(len(b["metrics"]) for b in with_metrics) == points
    assert len(with_metrics) == math.ceil(points / 1000)
    assert all(len(b["metrics"]) == 1000 for b in with_metrics[:-1])
    # the last points travel with the end tags; the params in their own call at the start
    assert any(t["key"] == "optlab.status" and t["value"] == "FINISHED" for t in with_metrics[-1].get("tags", []))
    assert len(batches) == len(with_metrics) + 1 and batches[0].get("params") and not batches[0].get("metrics")
    # nothing read back: no get_run, no artifact listing; the two files uploaded once each
    assert [m for m, _, _ in sent].count("GET") == 0, sent
    uploads = sorted(p.rsplit("/", 1)[-1] for m, p, _ in sent if m == "PUT")
    assert uploads == ["config.json", "params.safetensors"]
    assert len(sent) == 1 + len(batches) + 2 + 1  # create_run, log_batch calls, two files, set_terminated
    stored = client.get_run(result.run_id)
    assert stored.info.status == "FINISHED" and stored.data.tags["optlab.status"] == "FINISHED"
    assert {a.path for a in client.list_artifacts(result.run_id)} == {"config.json", "params.safetensors"}


def test_a_run_whose_last_call_is_refused_ends_failed_without_weights(server, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    original = requests.sessions.Session.request

    def refuse_the_end(self, method, url, *args, **kwargs):
        tags = (kwargs.get("json") or {}).get("tags") or []
        if any(t["key"] == "optlab.status" and t["value"] == "FINISHED" for t in tags):
            raise requests.ConnectionError("the server went away")
        return original(self, method, url, *args, **kwargs)

    monkeypatch.setattr(requests.sessions.Session, "request", refuse_the_end)
    result, recorder = record_one_run(server, tmp_path, monkeypatch, "refused_end", epochs=1)
    monkeypatch.setattr(requests.sessions.Session, "request", original)
    stored = MlflowClient(server.uri).get_run(recorder.run_id)
    assert recorder.status == "FAILED" and recorder.reason.startswith("storage: status tag:"), recorder.reason
    assert stored.info.status == "FAILED"
    assert "params.safetensors" not in {a.path for a in MlflowClient(server.uri).list_artifacts(recorder.run_id)}


def test_curves_of_many_runs_come_in_one_request_per_key_and_equal_the_per_run_reads(
    server, monkeypatch, requests_sent
):
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from optlab.tracking import bulk_reads

    client = MlflowClient(server.uri)
    experiment = client.create_experiment("bulk_curves")
    run_ids = []
    for r in range(3):
        run_id = client.create_run(experiment).info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric("loss", 1.0 / (s + r + 1), 1000 + s, s) for s in range(50)]
            + [Metric("acc", 0.1 * r, 1000, 0), Metric("acc", 0.2 * r, 1001, 0)],  # same step: the later wins
        )
        run_ids.append(run_id)
    requests_sent.clear()
    keys = ["loss", "acc", "absent"]
    histories = bulk_reads.metric_histories(client, run_ids, keys)
    paths = [p for _, p, _ in requests_sent]
    assert paths.count(bulk_reads.SERVER_ROUTE.lstrip("/")) == len(keys) and len(paths) == len(keys), paths
    per_run = {}
    for run_id in run_ids:
        for key in keys:
            for p in sorted(client.get_metric_history(run_id, key), key=lambda p: (p.timestamp, p.step, p.value)):
                per_run.setdefault((run_id, key), {})[p.step] = p.value
    assert histories == per_run and len(histories) == 6
    assert histories[(run_ids[2], "acc")] == {0: pytest.approx(0.4)}
    # a server without the route: the same points, run by run
    monkeypatch.setattr(bulk_reads, "SERVER_ROUTE", "/ajax-api/2.0/mlflow/metrics/no-such-route")
    requests_sent.clear()
    assert bulk_reads.metric_histories(client, run_ids, keys) == per_run
    assert sum(p.endswith("metrics/get-history") for _, p, _ in requests_sent) == len(keys) * len(run_ids)


def test_runs_and_tags_written_several_at_once_on_a_server_are_all_there(server):
    from mlflow.tracking import MlflowClient

    from optlab.tracking.bulk_runs import RunRows, set_tags, write_runs

    client = MlflowClient(server.uri)
    experiment = client.create_experiment("bulk_writes")
    runs = [
        RunRows(
            name=f"group {i}",
            tags={"optlab.role": "group"},
            params={"lr": str(i)},
            metrics=[("loss", 1.0 / (i + 1), 0)],
        )
        for i in range(9)
    ]
    ids = write_runs(client, experiment, runs)
    assert [client.get_run(run_id).info.run_name for run_id in ids] == [f"group {i}" for i in range(9)]
    set_tags(client, [(run_id, f"k{j}", f"{run_id}-{j}") for run_id in ids for j in range(120)])  # 2 calls a run
    for i, run_id in enumerate(ids):
        stored = client.get_run(run_id)
        assert stored.info.status == "FINISHED" and stored.data.params == {"lr": str(i)}
        assert stored.data.metrics == {"loss": pytest.approx(1.0 / (i + 1))}
        assert {k: v for k, v in stored.data.tags.items() if k.startswith("k")} == {
            f"k{j}": f"{run_id}-{j}" for j in range(120)
        }
