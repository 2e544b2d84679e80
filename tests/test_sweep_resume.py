"""Resume: a sweep killed with SIGKILL mid-run loses no finished run, leaves nothing RUNNING, and a
rerun ends with exactly one FINISHED run per point."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sweep_helpers import children, write_spec

from optlab.sweeps import load

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTLAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return {**os.environ, "PYTHONPATH": str(ROOT), "OPTLAB_HOME": str(tmp_path / "home")}


def sweep(path, env, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "optlab", "sweep", str(path), "-q"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.mark.slow
def test_sigkill_mid_sweep_then_rerun(tmp_path, env):
    # every point trains for 0.8 s of wall time (the minibatch trials first), so the kill lands inside
    # a momentum trial, and the rerun phase has not started
    path = write_spec(
        tmp_path,
        """
        [workloads.timed]
        steps = 1000000
        seconds = 0.8
        eval_every = 500
        log_every = 100
        [grid]
        strategy = ["minibatch", "momentum"]
        [tune]
        lr = [0.05, 0.2]
        objective = "val_loss"
        seeds = [0, 1]
        [rerun]
        seeds = [7]
    """,
        name="resumable",
        steps=100,
    )
    points = load(path).points
    proc = sweep(path, env)
    deadline = time.time() + 120
    finished_before, running = [], []
    try:
        while time.time() < deadline:
            runs = children("resumable")
            finished_before = [r for r in runs if r.info.status == "FINISHED"]
            running = [r for r in runs if r.info.status == "RUNNING"]
            if len(finished_before) >= 2 and any(r.data.tags["optlab.strategy"] == "momentum" for r in running):
                break
            assert proc.poll() is None, f"sweep ended before it could be killed: {proc.stderr.read()}"
            time.sleep(0.05)
        else:
            pytest.fail("the sweep never had two finished points and one running")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    after_kill = children("resumable")
    killed_ids = {r.info.run_id for r in after_kill if r.info.status == "RUNNING"}
    finished_ids = {r.info.run_id for r in after_kill if r.info.status == "FINISHED"}
    assert killed_ids and len(finished_ids) < len(points)

    rerun = sweep(path, env)
    _, err = rerun.communicate(timeout=180)
    assert rerun.returncode == 0, err

    runs = children("resumable")
    finished = [r for r in runs if r.info.status == "FINISHED"]
    spec = load(path)
    reruns = [r for r in finished if r.data.tags["optlab.role"] == "rerun"]
    assert len(reruns) == 2 and {r.data.params["seed"] for r in reruns} == {"7"}
    assert sorted(r.data.tags["optlab.point_hash"] for r in finished) == sorted(
        [p.point_hash for p in points] + [r.data.tags["optlab.point_hash"] for r in reruns]
    )
    assert len(finished) == len(points) + 2
    assert finished_ids <= {r.info.run_id for r in finished}  # nothing finished was lost or redone
    assert not [r for r in runs if r.info.status == "RUNNING"]
    killed = [r for r in runs if r.info.run_id in killed_ids]
    assert all(r.info.status == "KILLED" and "interrupted" in r.data.tags["optlab.failure_reason"] for r in killed)
    # per strategy, the best lr's two tuning seeds are selected, and its rerun is tagged selected
    assert sum(r.data.tags.get("optlab.selected") == "true" for r in finished) == 4 + 2
    assert {(r.data.tags["optlab.strategy"], r.data.tags["optlab.trial"]) for r in reruns} == {
        (r.data.tags["optlab.strategy"], r.data.tags["optlab.trial"])
        for r in finished
        if r.data.tags["optlab.role"] == "tuning" and r.data.tags.get("optlab.selected") == "true"
    }
    assert spec.rerun_seeds == (7,)
