"""Faults in the middle of a cluster sweep: the Ray worker node dies, the MLflow server goes away and
comes back, the sweep process itself is SIGKILLed. After each (and a rerun where the sweep stopped),
every point has exactly one FINISHED run, no run is left RUNNING, and every FINISHED run holds exactly
the metric points of a clean local run of the same point: none duplicated, none lost."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
from cluster_checks import (
    SWEEP_TIMEOUT,
    assert_sweep_complete,
    children,
    point_hashes,
    read_store,
    run_sweep,
    start_sweep,
    wait_until,
    write_spec,
)

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

SERVER_DOWN = 20  # seconds the tracking server stays away
ATTEMPTS = 6  # node kills tried until one interrupts a run


def statuses(cluster, name: str) -> list:
    return children(read_store(cluster.postgres.uri, name))


def mid_sweep(cluster, name: str, node: str | None = None):
    """Wait until at least one point is FINISHED and another is being trained; with `node`, until a run
    is being trained on that node (as soon as it starts: the widest window for a fault to land in it; a
    run on a tracking server lasts about a second here, so the store is asked every 0.05 s)."""
    if node is not None:
        import sqlalchemy as sa

        engine = sa.create_engine(cluster.postgres.uri)
        query = sa.text(
            "select count(*) from runs r join experiments e on e.experiment_id = r.experiment_id "
            "join tags t on t.run_uuid = r.run_uuid and t.key = 'optlab.node' and t.value = :node "
            "where e.name = :n and r.status = 'RUNNING'"
        )
        try:
            with engine.connect() as db:
                wait_until(
                    lambda: db.execute(query, {"n": name, "node": node}).scalar() > 0,
                    180,
                    f"sweep {name} to train a run on node {node}",
                    interval=0.05,
                )
        finally:
            engine.dispose()
        return

    def check():
        runs = statuses(cluster, name)
        finished = any(r.status == "FINISHED" for r in runs)
        return finished and any(r.status == "RUNNING" for r in runs)

    wait_until(check, 180, f"sweep {name} to be half-way", interval=0.5)


def mid_flush(cluster, name: str):
    """Wait until a run is writing its metric points: RUNNING with some of them stored (points are
    buffered in memory until the run ends), the moment an interruption can leave a run half-stored."""
    import sqlalchemy as sa

    engine = sa.create_engine(cluster.postgres.uri)
    query = sa.text(
        "select count(*) from runs r join experiments e on e.experiment_id = r.experiment_id "
        "where e.name = :n and r.status = 'RUNNING' "
        "and exists (select 1 from metrics m where m.run_uuid = r.run_uuid)"
    )
    try:
        with engine.connect() as db:
            wait_until(
                lambda: db.execute(query, {"n": name}).scalar() > 0,
                180,
                f"a run of {name} in the middle of storing its metrics",
                interval=0.05,
            )
    finally:
        engine.dispose()


def finish(cluster, spec, work, sweep, first_code, name):
    """The user's move after a fault: rerun the same command when the sweep did not complete."""
    assert first_code is not None, (
        f"sweep {name} still running {SWEEP_TIMEOUT} s after the fault (killed):\n" + sweep.output()[-3000:]
    )
    if first_code == 0:
        return None
    code, rerun = run_sweep(spec, cluster, work, "rerun")
    assert code == 0, rerun.output()[-3000:]
    return rerun


def test_ray_worker_node_killed_mid_sweep(live_cluster, reference, tmp_path):
    cluster = live_cluster
    # the kill must land while a run trains on that node; a run there lasts about a second, so a kill that
    # lands between runs (the node's runs all ended before its processes died) is tried again on a new node.
    # Measured: about one attempt in two misses, so six attempts all miss about once in 60 test runs
    for attempt in range(ATTEMPTS):
        cluster.replace_dead_workers()
        name = f"fault_node{attempt}"
        spec = write_spec(tmp_path, name)
        worker_id = cluster.node_ids()["worker1"]
        sweep = start_sweep(spec, cluster, tmp_path, f"sweep{attempt}")
        mid_sweep(cluster, name, node=worker_id)
        cluster.workers[0].kill()  # raylet, agents and its workers: SIGKILL
        code = sweep.wait()
        rerun = finish(cluster, spec, tmp_path, sweep, code, name)
        runs = read_store(cluster.postgres.uri, name)
        assert_sweep_complete(runs, point_hashes(spec), reference)
        lost = [r for r in children(runs) if r.status == "KILLED"]
        if lost:
            break
    assert lost, f"the kill landed between runs {ATTEMPTS} times: no run was interrupted"
    for run in lost:
        assert run.tags["optlab.node"] == worker_id
        assert "Ray worker on node" in run.tags["optlab.failure_reason"], run.tags["optlab.failure_reason"]
    # the sweep finished on the head alone: Ray retried the lost task there
    assert rerun is None, "the sweep stopped instead of retrying the lost task on the head:\n" + sweep.output()[-3000:]
    finished_on = {r.tags["optlab.node"] for r in children(runs) if r.status == "FINISHED"}
    assert cluster.node_ids()["head"] in finished_on


def test_tracking_server_stopped_and_restarted_mid_sweep(live_cluster, reference, tmp_path):
    cluster, name = live_cluster, "fault_server"
    spec = write_spec(tmp_path, name)
    sweep = start_sweep(spec, cluster, tmp_path, "sweep")
    mid_sweep(cluster, name)
    cluster.server.stop()
    try:
        sweep.proc.wait(timeout=SERVER_DOWN)  # a sweep may notice and stop while the server is away
    except subprocess.TimeoutExpired:
        pass
    cluster.server.start()
    code = sweep.wait()
    finish(cluster, spec, tmp_path, sweep, code, name)
    assert_sweep_complete(read_store(cluster.postgres.uri, name), point_hashes(spec), reference)


def test_sweep_process_sigkilled_and_rerun(live_cluster, reference, tmp_path):
    cluster, name = live_cluster, "fault_driver"
    spec = write_spec(tmp_path, name)
    sweep = start_sweep(spec, cluster, tmp_path, "sweep")
    mid_flush(cluster, name)  # the worst moment: a run half-way through storing its points
    os.kill(sweep.proc.pid, signal.SIGKILL)
    assert sweep.wait(30) == -signal.SIGKILL
    left_running = sum(r.status == "RUNNING" for r in statuses(cluster, name))
    code, rerun = run_sweep(spec, cluster, tmp_path, "rerun")
    assert code == 0, rerun.output()[-3000:]
    if left_running:
        assert "interrupted runs marked KILLED" in rerun.output(), rerun.output()[-3000:]
    assert_sweep_complete(read_store(cluster.postgres.uri, name), point_hashes(spec), reference)
    killed = [r for r in statuses(cluster, name) if r.status == "KILLED"]
    assert all("interrupted" in r.tags.get("optlab.failure_reason", "") for r in killed)
