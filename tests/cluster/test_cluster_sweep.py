"""A sweep on a real two-node Ray cluster with an MLflow server on PostgreSQL, checked through the
REST API; the same sweep with workers writing to PostgreSQL directly stores the same metric rows."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from cluster_checks import children, point_hashes, read_store, run_sweep, timing_key, write_spec

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]


@pytest.fixture(scope="session")
def http_sweep(cluster, tmp_path_factory):
    """The test sweep through the MLflow server (HTTP, log_batch on the server), on both Ray nodes."""
    work = tmp_path_factory.mktemp("http_sweep")
    spec = write_spec(work, "on_cluster")
    code, sweep = run_sweep(spec, cluster, work, "sweep")
    assert code == 0, sweep.output()[-3000:]
    return spec, sweep


def test_sweep_on_two_ray_nodes_stores_every_point_through_the_server(live_cluster, http_sweep, reference):
    from mlflow.tracking import MlflowClient

    from optlab.tracking.recorder import load_params

    cluster, (spec, _) = live_cluster, http_sweep
    points = point_hashes(spec)
    assert len(points) >= 8
    client = MlflowClient(tracking_uri=cluster.tracking_uri)
    experiment = client.get_experiment_by_name("on_cluster")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parent = [r for r in runs if r.data.tags.get("optlab.role") == "parent"]
    kids = [r for r in runs if r.data.tags.get("optlab.role") not in ("parent", "group")]
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    groups = {
        r.info.run_id
        for r in runs
        if r.data.tags.get("optlab.role") == "group" and r.data.tags.get("mlflow.parentRunId") == parent[0].info.run_id
    }
    assert sorted(r.data.tags["optlab.point_hash"] for r in kids) == sorted(points), "one child per point"

    nodes = cluster.node_ids()
    assert set(nodes) == {"head", "worker1"}
    for run in kids:
        point = run.data.tags["optlab.point_hash"]
        want = reference[point]
        label = points[point]
        assert run.info.status == "FINISHED" and run.data.tags["optlab.status"] == "FINISHED", label
        # params: the whole resolved config, as a local run records it (the experiment name aside)
        assert {k: v for k, v in run.data.params.items() if k != "experiment"} == {
            k: v for k, v in want.params.items() if k != "experiment"
        }, label
        assert run.data.params["experiment"] == "on_cluster"
        tags = run.data.tags
        # a point run sits under its seed-group run, which sits under the sweep's parent
        assert tags["mlflow.parentRunId"] in groups, (label, tags["mlflow.parentRunId"])
        assert tags["optlab.sweep"] == "on_cluster" and tags["optlab.role"] == want.tags["optlab.role"]
        for key in (
            "optlab.strategy",
            "optlab.config_hash",
            "optlab.data_fingerprint",
            "optlab.split",
            "optlab.workload_hash",
            "optlab.point_hash",
        ):
            assert tags[key] == want.tags[key], (label, key)
        assert tags["optlab.node"] in nodes.values(), (label, tags["optlab.node"])
        assert tags["optlab.worker"].rsplit(":", 1)[1].isdigit()
        # metrics: every key of the reference, at the same steps, read back over REST
        want_steps: dict[str, list[int]] = {}
        for key, step, _, _ in want.metrics:
            want_steps.setdefault(key, []).append(step)
        assert set(run.data.metrics) == set(want_steps), label
        for key, steps in want_steps.items():
            history = client.get_metric_history(run.info.run_id, key)
            assert sorted(m.step for m in history) == sorted(steps), (label, key)
        final = {key: value for key, _, value, _ in want.latest}
        for key, value in run.data.metrics.items():
            if not timing_key(key):
                assert math.isclose(value, final[key], rel_tol=1e-3, abs_tol=1e-4), (label, key, value, final[key])
        # artifacts: uploaded through the server (proxied), downloadable and loadable
        assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"config.json", "params.safetensors"}
        assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
        params = load_params(run.info.run_id, tracking_uri=cluster.tracking_uri)
        assert params.numel() == int(run.data.params["n_params"])
        assert torch.isfinite(params).all()
    # the artifacts are in the server's destination folder, not on the workers
    stored = {p.name for p in cluster.server.artifacts.rglob("*") if p.is_file()}
    assert {"params.safetensors", "config.json"} <= stored
    # the tasks ran on both nodes
    used = {r.data.tags["optlab.node"] for r in kids}
    assert used == set(nodes.values()), f"runs per node: {used} vs nodes {nodes}"


def test_parameters_trained_on_the_cluster_equal_a_local_run(live_cluster, http_sweep, reference, tmp_path):
    from mlflow.tracking import MlflowClient

    from optlab.tracking.recorder import load_params

    client = MlflowClient(tracking_uri=live_cluster.tracking_uri)
    experiment = client.get_experiment_by_name("on_cluster")
    run = next(
        r
        for r in client.search_runs([experiment.experiment_id])
        if r.data.tags.get("optlab.role") not in ("parent", "group")
    )
    want = reference[run.data.tags["optlab.point_hash"]]
    ours = load_params(run.info.run_id, tracking_uri=live_cluster.tracking_uri)
    theirs = load_params(want.run_id, tracking_uri=want.uri)
    assert torch.allclose(ours, theirs, rtol=1e-3, atol=1e-4)


def test_workers_writing_to_postgresql_directly_store_the_rows_of_the_server_path(live_cluster, http_sweep, tmp_path):
    """The bulk metric writer's PostgreSQL branch (one executemany into MLflow's metrics table): the
    sweep run with MLFLOW_TRACKING_URI=postgresql://... stores the same metric rows as through the server."""
    cluster, (spec, _) = live_cluster, http_sweep
    direct = write_spec(tmp_path, "direct_postgres")
    code, sweep = run_sweep(direct, cluster, tmp_path, "sweep", tracking_uri=cluster.postgres.uri)
    assert code == 0, sweep.output()[-3000:]
    points = point_hashes(spec)
    via_server = {r.tags["optlab.point_hash"]: r for r in children(read_store(cluster.postgres.uri, "on_cluster"))}
    straight = {r.tags["optlab.point_hash"]: r for r in children(read_store(cluster.postgres.uri, "direct_postgres"))}
    assert set(via_server) == set(straight) == set(points)
    for point, label in points.items():
        a, b = via_server[point], straight[point]
        assert a.status == b.status == "FINISHED", label
        # same chunks on the same nodes' code: every (key, step, value, is_nan) row is the same,
        # wall-time values aside (they measure the machine)
        strip = lambda rows: [(k, s, None if timing_key(k) else v, n) for k, s, v, n in rows]  # noqa: E731
        assert strip(a.metrics) == strip(b.metrics), label
        assert strip(a.latest) == strip(b.latest), label


def test_bulk_insert_on_postgresql_writes_exactly_the_rows_of_log_batch(live_cluster):
    """Row for row, timestamps included: the same buffered points through log_columns_fast (the
    PostgreSQL branch of the bulk writer) and through MlflowClient.log_batch."""
    from mlflow.entities import Metric

    from optlab.tracking.fast_metrics import log_columns_fast
    from optlab.tracking.point_buffer import MLFLOW_METRICS as MLFLOW_BATCH
    from optlab.tracking.store import client as make_client
    from optlab.tracking.store import ensure_experiment

    uri = live_cluster.postgres.uri
    client = make_client(uri)
    experiment_id = ensure_experiment(client, "bulk_vs_log_batch")
    fast, slow = (client.create_run(experiment_id).info.run_id for _ in range(2))
    keys, values, stamps, steps = [], [], [], []
    for step in range(1500):
        for key, value in (("batch_loss", 2.0 / (step + 1)), ("grad_norm", float(step % 7)), ("lr", 0.1)):
            keys.append(key)
            values.append(value)
            stamps.append(1_700_000_000_000 + step // 10)  # several points share a millisecond
            steps.append(step)
    # the values a diverging run produces: NaN and infinities are stored as MLflow sanitizes them
    for key, value in (("batch_loss", math.nan), ("grad_norm", math.inf), ("lr", -math.inf)):
        keys.append(key)
        values.append(value)
        stamps.append(1_700_000_001_000)
        steps.append(1500)
    # a name MLflow allows beyond ASCII, and a value that needs all 17 digits
    keys.append("größe/λ")
    values.append(0.1 + 0.2)
    stamps.append(1_700_000_001_000)
    steps.append(1500)
    assert log_columns_fast(client, fast, keys, values, stamps, steps) is True  # the bulk path, no fallback
    metrics = [Metric(k, v, t, s) for k, v, t, s in zip(keys, values, stamps, steps)]
    for i in range(0, len(metrics), MLFLOW_BATCH):
        client.log_batch(slow, metrics=metrics[i : i + MLFLOW_BATCH])
    stored = {r.run_id: r for r in read_store(uri, "bulk_vs_log_batch", timestamps=True)}
    assert len(stored[fast].metrics) == len(keys)
    assert stored[fast].metrics == stored[slow].metrics
    assert stored[fast].latest == stored[slow].latest
    assert ("batch_loss", 1500, 0.0, True, 1_700_000_001_000) in stored[
        fast
    ].latest  # NaN as is_nan, the newest step wins


def test_the_cluster_server_runs_without_mlflow_job_queue_processes(live_cluster):
    """The loopback cluster's MLflow server starts none of MLflow's GenAI job-queue (huey) processes, which
    would compete with the nodes' training for the same cores."""
    import os

    group = os.getpgid(live_cluster.server.service.pid)
    members = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getpgid(int(pid)) == group:
                members.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except (OSError, ProcessLookupError):
            continue  # a process that ended meanwhile
    assert any("mlflow" in line for line in members), members  # the group really is the server's
    assert not [line for line in members if "huey" in line or "_job_runner" in line], members


def test_the_runs_route_reads_on_postgresql_what_mlflows_search_returns(live_cluster, http_sweep):
    """The sweep's runs read back through optlab's route on the server's PostgreSQL store (runs_route.py:
    plain queries, booleans and bigints as PostgreSQL returns them) equal MLflow's own search."""
    import json

    from mlflow.tracking import MlflowClient

    from optlab.sweeps.resume import search_all
    from optlab.tracking import runs_route

    client = MlflowClient(tracking_uri=live_cluster.tracking_uri)
    experiment_id = client.get_experiment_by_name("on_cluster").experiment_id
    for tags, search in (({"optlab.sweep": "on_cluster"}, "tags.`optlab.sweep` = 'on_cluster'"), ({}, "")):
        got = runs_route.read(live_cluster.tracking_uri, experiment_id, tags)
        expected = search_all(client, experiment_id, search)
        assert got is not None and len(got) == len(expected) >= 8
        as_read = [json.dumps(r.to_dictionary(), sort_keys=True) for r in expected]
        assert [json.dumps(r.to_dictionary(), sort_keys=True) for r in got] == as_read
