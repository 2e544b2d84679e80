"""Shared bits of the fault tests: sweeps in subprocesses, waiting on the store, store-state checks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def env_for(home: Path, **extra) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPTLAB_HOME": str(home), **extra}
    env.pop("MLFLOW_TRACKING_URI", None) if "MLFLOW_TRACKING_URI" not in extra else None
    return env


def optlab(args: list[str], env: dict, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "optlab", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def runs_of(name: str, uri: str | None = None) -> list:
    """Every run of experiment `name` (parent and children) in the store of the current environment."""
    from optlab.sweeps import resume
    from optlab.tracking.store import client

    c = client(uri)
    experiment = c.get_experiment_by_name(name)
    return [] if experiment is None else resume.search_all(c, experiment.experiment_id, "")


def points_of(name: str, uri: str | None = None) -> list:
    return [r for r in runs_of(name, uri) if r.data.tags.get("optlab.role") not in ("parent", "group")]


def wait_until(condition, timeout: float, proc: subprocess.Popen | None = None, what: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended (rc {proc.returncode}) before {what}: {proc.stderr.read()[-2000:]}")
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def assert_one_finished_per_point(name: str, spec_points, uri: str | None = None) -> list:
    """The store holds exactly one FINISHED run per point, nothing RUNNING, no duplicate metric points;
    returns the FINISHED runs."""
    from mlflow.tracking import MlflowClient

    from optlab.tracking.store import client

    if hasattr(spec_points, "points"):  # a SweepSpec: its points and the reruns of the store's selections
        spec_points = expected_points(name, spec_points, uri)
    runs = points_of(name, uri)
    finished = [r for r in runs if r.info.status == "FINISHED"]
    counts = Counter(r.data.tags["optlab.point_hash"] for r in finished)
    assert sorted(counts) == sorted(p.point_hash for p in spec_points), counts
    assert set(counts.values()) == {1}, f"a point has several FINISHED runs: {counts}"
    assert not [r for r in runs_of(name, uri) if r.info.status == "RUNNING"], "a run was left RUNNING"
    c: MlflowClient = client(uri)
    for run in finished:
        for key in ("train_loss", "batch_loss"):
            steps = [m.step for m in c.get_metric_history(run.info.run_id, key)]
            assert steps and len(steps) == len(set(steps)), f"duplicate {key} points in {run.info.run_id}"
        assert run.data.tags.get("optlab.status") == "FINISHED"
        assert run.data.params, "a FINISHED run without params"
        assert [a.path for a in c.list_artifacts(run.info.run_id) if a.path == "params.safetensors"]
    return finished


def pool_target(task):
    """A WorkerPool task for the pool tests: ("ok", n) -> 10 n; ("die", n) kills its worker; ("raise", n)
    raises; ("sleep", s) sleeps s seconds and returns the worker's pid."""
    import signal as signals

    kind, value = task
    if kind == "die":
        os.kill(os.getpid(), signals.SIGKILL)
    if kind == "raise":
        raise ValueError(f"bad task {value}")
    if kind == "sleep":
        time.sleep(value)
        return os.getpid()
    return 10 * value


def expected_points(name: str, spec, uri: str | None = None) -> list:
    """Every point a complete sweep holds: its tuning (or untuned) points and the reruns of the
    selections the store holds now."""
    from optlab.sweeps.executor import reported_points
    from optlab.tracking.store import client

    c = client(uri)
    experiment = c.get_experiment_by_name(name)
    return [p for p in spec.points if p.role != "rerun"] + reported_points(spec, c, experiment.experiment_id)
