"""The Ray backend's own logic, without a cluster: a retried task after a lost node, the worker tags,
a --address that cannot be reached. (tests/cluster runs the real multi-node cluster.)"""

from __future__ import annotations

import os
import socket

import pytest
from sweep_helpers import children, write_spec

from optlab.errors import ConfigError, OptlabError
from optlab.sweeps import executor, load, resume, run_sweep


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTLAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def chunk_task(spec, parent_run_id: str, experiment_id: str) -> executor.Task:
    from optlab.tracking.store import tracking_uri

    points = tuple((p.config, {**p.tags(spec.name), resume.OWNER_TAG: resume.owner_id()}) for p in spec.points)
    return executor.Task(points, tracking_uri(), experiment_id, parent_run_id, True, 1)


def test_a_retried_ray_task_skips_points_its_lost_attempt_finished_and_kills_the_runs_it_left(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'optlab[ray]')")
    from optlab.tracking.store import client, ensure_experiment

    spec = load(write_spec(tmp_path, "[grid]\nseed = [0, 1, 2]\n", name="retried", steps=10))
    c = client()
    experiment_id = ensure_experiment(c, "retried")
    parent = c.create_run(experiment_id, tags={"optlab.sweep": "retried", "optlab.role": "parent"}).info.run_id
    task = chunk_task(spec, parent, experiment_id)
    done, lost, fresh = spec.points
    # what the first attempt of task T left behind when its node died: one point FINISHED, one RUNNING
    attempt = {executor.RAY_TASK_TAG: "T", "optlab.node": "node-that-died"}
    for point, status in ((done, "FINISHED"), (lost, "RUNNING")):
        run = c.create_run(experiment_id, tags={**point.tags("retried"), **attempt}).info.run_id
        if status == "FINISHED":
            c.set_terminated(run, "FINISHED")

    class Context:
        def get_task_id(self):
            return "T"

    monkeypatch.setattr(ray, "get_runtime_context", lambda: Context())
    outcomes = executor.run_ray_task(task).outcomes

    assert sorted(o.status for o in outcomes) == ["FINISHED"] * 3
    runs = children("retried")
    by_point: dict[str, list] = {}
    for run in runs:
        by_point.setdefault(run.data.tags["optlab.point_hash"], []).append(run)
    assert len(by_point[done.point_hash]) == 1, "a point the lost attempt finished is not trained again"
    assert sorted(r.info.status for r in by_point[lost.point_hash]) == ["FINISHED", "KILLED"]
    killed = next(r for r in by_point[lost.point_hash] if r.info.status == "KILLED")
    assert killed.data.tags["optlab.failure_reason"] == (
        "interrupted: its Ray worker on node node-that-died was lost; the task was retried"
    )
    assert [r.info.status for r in by_point[fresh.point_hash]] == ["FINISHED"]
    new = [r for r in runs if r.info.status == "FINISHED" and r.data.tags.get("optlab.node") != "node-that-died"]
    assert len(new) == 2
    for run in new:  # retried runs carry the task id too, and where they were trained
        assert run.data.tags[executor.RAY_TASK_TAG] == "T"
        assert run.data.tags["optlab.node"] == socket.gethostname()
        assert run.data.tags["optlab.worker"] == f"{socket.gethostname()}:{os.getpid()}"


def test_worker_tags_name_the_host_outside_ray():
    tags = executor.worker_tags()
    host, pid = tags["optlab.worker"].rsplit(":", 1)
    assert tags["optlab.node"] == host == socket.gethostname() and pid.isdigit()


def test_an_unreachable_or_malformed_ray_address_is_refused_before_anything_is_recorded(tmp_path):
    spec = load(write_spec(tmp_path, "[grid]\nseed = [0]\n", name="nowhere", steps=5))
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(OptlabError, match=f"cannot reach the Ray head at 127.0.0.1:{port}"):
        run_sweep(spec, backend="ray", address=f"127.0.0.1:{port}", progress=False)
    with pytest.raises(ConfigError, match="'head-node' is not HOST:PORT"):
        run_sweep(spec, backend="ray", address="head-node", progress=False)
    from optlab.tracking.store import client

    assert client().get_experiment_by_name("nowhere") is None
