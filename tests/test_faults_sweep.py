"""Sweeps under faults: the parent SIGKILLed with live workers, a worker killed, two sweeps of one
file at once, SIGTERM, hostile sweep names. Each test checks the exact store state afterwards: one
FINISHED run per point, nothing RUNNING, no duplicate metric points, the right selected tags."""

import json
import os
import re
import signal
import time
from collections import Counter

import pytest
from fault_helpers import assert_one_finished_per_point, env_for, optlab, points_of, runs_of, wait_until
from sweep_helpers import TINY_BASE, write_spec

from optlab.sweeps import load, resume, run_sweep

# each point trains for about `seconds` of wall time, long enough to be caught RUNNING
TIMED = """
    [workloads.timed]
    steps = 1000000
    seconds = {seconds}
    eval_every = 200
    log_every = 50
    [grid]
    strategy = ["minibatch", "adam"]
    [tune]
    lr = [0.01, 0.1]
    objective = "train_loss"
    seeds = [0]
    [rerun]
    seeds = [1]
"""


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("OPTLAB_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return home


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) is not alive
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def running_points(name):
    try:
        return [r for r in points_of(name) if r.info.status == "RUNNING"]
    except Exception:  # the store is being created by the sweep
        return []


def worker_pid(run) -> int:
    return int(run.data.tags[resume.WORKER_TAG].rpartition(":")[2])


def selected_per_group(finished) -> Counter:
    """Selected tuning trials per group (without the sweep-name prefix of the group's workload)."""
    return Counter(
        r.data.tags["optlab.group"].split(": ", 1)[-1]
        for r in finished
        if r.data.tags.get("optlab.selected") == "true" and r.data.tags.get("optlab.role") == "tuning"
    )


@pytest.mark.slow
def test_sigkill_of_the_parent_kills_its_workers_and_an_immediate_rerun_runs_each_point_once(tmp_path, home):
    path = write_spec(tmp_path, TIMED.format(seconds=3), name="orphans")
    points = load(path)  # the spec: its tuning points, and the reruns of what the store selected
    proc = optlab(["sweep", str(path), "-j", "2", "-q"], env_for(home))
    try:
        running = wait_until(
            lambda: [r for r in running_points("orphans") if worker_pid(r) != proc.pid],
            180,
            proc,
            "a point training in a worker",
        )
    finally:
        proc.kill()
        proc.wait()
    workers = {worker_pid(r) for r in running}
    wait_until(lambda: not any(alive(pid) for pid in workers), 10, what="the workers to die with their parent")

    rerun = optlab(["sweep", str(path), "-j", "2", "-q"], env_for(home))
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    finished = assert_one_finished_per_point("orphans", points)
    killed = [r for r in points_of("orphans") if r.info.run_id in {x.info.run_id for x in running}]
    assert killed and all(
        r.info.status == "KILLED" and r.data.tags["optlab.failure_reason"].startswith("interrupted") for r in killed
    )
    assert selected_per_group(finished) == {"strategy=minibatch": 1, "strategy=adam": 1}  # best lr, both seeds
    parents = [r for r in runs_of("orphans") if r.data.tags.get("optlab.role") == "parent"]
    assert [p.info.status for p in parents] == ["FINISHED"]


@pytest.mark.slow
def test_a_killed_worker_costs_only_its_point_the_sweep_goes_on_and_a_rerun_completes(tmp_path, home):
    path = write_spec(tmp_path, TIMED.format(seconds=2), name="deadworker")
    points = load(path)  # the spec: its tuning points, and the reruns of what the store selected
    proc = optlab(["sweep", str(path), "-j", "2", "-q"], env_for(home))
    victim = wait_until(lambda: running_points("deadworker"), 180, proc, "a running point")[0]
    os.kill(worker_pid(victim), signal.SIGKILL)
    out, err = proc.communicate(timeout=300)

    assert proc.returncode == 1, err
    assert "Traceback" not in err and "BrokenProcessPool" not in err
    last = err.strip().splitlines()[-1]
    assert re.match(r"optlab: sweep deadworker: 1 of \d+ points have no outcome \(1 worker died\)", last), err
    runs = points_of("deadworker")
    dead = next(r for r in runs if r.info.run_id == victim.info.run_id)
    assert dead.info.status == "FAILED" and dead.data.tags["optlab.failure_reason"].startswith("worker died")
    assert "SIGKILL" in dead.data.tags["optlab.failure_reason"]
    # the other three trials ran, and the rerun of the one group whose trials are all done: a group with
    # a lost trial is not selected (nor rerun) until that trial has run
    assert sorted(r.info.status for r in runs) == ["FAILED"] + ["FINISHED"] * 4
    parent = next(r for r in runs_of("deadworker") if r.data.tags.get("optlab.role") == "parent")
    assert parent.info.status == "FAILED"
    assert "1 point without an outcome" in parent.data.tags["optlab.failure_reason"]

    rerun = optlab(["sweep", str(path), "-j", "2", "-q"], env_for(home))
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    finished = assert_one_finished_per_point("deadworker", points)
    assert selected_per_group(finished) == {"strategy=minibatch": 1, "strategy=adam": 1}
    parent = next(r for r in runs_of("deadworker") if r.data.tags.get("optlab.role") == "parent")
    assert parent.info.status == "FINISHED" and "optlab.failure_reason" not in parent.data.tags


@pytest.mark.slow
def test_two_sweeps_of_one_file_at_once_run_each_point_once(tmp_path, home):
    path = write_spec(tmp_path, TIMED.format(seconds=2), name="twice")
    points = load(path)  # the spec: its tuning points, and the reruns of what the store selected
    env = env_for(home)
    first, second = (optlab(["sweep", str(path), "-q"], env) for _ in range(2))
    outs = [p.communicate(timeout=300) for p in (first, second)]
    codes = sorted(p.returncode for p in (first, second))
    assert codes == [0, 2], outs
    refused = next(err for p, (_, err) in zip((first, second), outs) if p.returncode == 2)
    assert refused.count("\n") == 1 and refused.startswith("optlab: error: sweep 'twice' is already running"), refused
    finished = assert_one_finished_per_point("twice", points)
    assert selected_per_group(finished) == {"strategy=minibatch": 1, "strategy=adam": 1}
    assert len([r for r in runs_of("twice") if r.data.tags.get("optlab.role") == "parent"]) == 1

    # with --wait, a second sweep started at the same moment waits for the first, then finds nothing to do
    for run in points_of("twice"):
        from optlab.tracking.store import client

        client().delete_run(run.info.run_id)
    both = [optlab(["sweep", str(path), "-q", "--wait", "300"], env) for _ in range(2)]
    for p in both:
        _, err = p.communicate(timeout=400)
        assert p.returncode == 0, err
    finished = assert_one_finished_per_point("twice", points)
    assert selected_per_group(finished) == {"strategy=minibatch": 1, "strategy=adam": 1}


@pytest.mark.slow
def test_sigterm_stops_a_sweep_like_sigint_its_runs_killed_and_its_workers_gone(tmp_path, home):
    path = write_spec(tmp_path, TIMED.format(seconds=3), name="termed")
    points = load(path)  # the spec: its tuning points, and the reruns of what the store selected
    proc = optlab(["sweep", str(path), "-j", "2", "-q"], env_for(home))
    running = wait_until(lambda: running_points("termed"), 180, proc, "a running point")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1] == "optlab: interrupted (SIGTERM)"
    assert not any(alive(worker_pid(r)) for r in running)
    runs = runs_of("termed")
    assert not [r for r in runs if r.info.status == "RUNNING"]
    caught = [r for r in runs if r.info.run_id in {x.info.run_id for x in running}]
    assert all(r.info.status == "KILLED" and r.data.tags["optlab.failure_reason"] == "interrupted" for r in caught)
    parent = next(r for r in runs if r.data.tags.get("optlab.role") == "parent")
    assert parent.info.status == "KILLED"

    rerun = optlab(["sweep", str(path), "-j", "2", "-q"], env_for(home))
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert_one_finished_per_point("termed", points)


def test_sigterm_records_a_single_run_killed_not_running(tmp_path, home):
    proc = optlab(
        ["run", "-s", "adam", "-d", "digits", "--hidden", "8", "--steps", "100000000", "-q", "-e", "termed-run"],
        env_for(home),
    )
    run = wait_until(
        lambda: [r for r in runs_of_quiet("termed-run") if r.info.status == "RUNNING"], 120, proc, "the run to start"
    )[0]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM and err == "optlab: interrupted (SIGTERM)\n", err
    [after] = runs_of("termed-run")
    assert after.info.run_id == run.info.run_id and after.info.status == "KILLED"
    assert after.data.tags["optlab.status"] == "KILLED" and after.data.tags["optlab.failure_reason"] == "interrupted"


def runs_of_quiet(name):
    try:
        return runs_of(name)
    except Exception:
        return []


HOSTILE_NAMES = ["it's", 'say "hi"', "back\\slash", "ünï ☃ 漢", "both ' and \"", "trail\\"]


def test_hostile_sweep_names_resume_to_one_finished_run_per_point(tmp_path, home):
    for i, name in enumerate(HOSTILE_NAMES):
        path = tmp_path / f"hostile{i}.toml"  # json.dumps writes a valid TOML basic string for these names
        path.write_text(
            f"name = {json.dumps(name, ensure_ascii=False)}\n" + TINY_BASE.format(steps=5) + "[grid]\nseed = [0, 1]\n"
        )
        spec = load(path)
        assert spec.name == name
        first = run_sweep(spec, progress=False)
        assert first.counts["finished"] == 2 and not first.incomplete, name
        again = run_sweep(load(path), progress=False)
        assert again.resumed and again.counts["skipped"] == 2 and again.counts["finished"] == 0, name
        assert again.parent_run_id == first.parent_run_id and not again.incomplete
        finished = assert_one_finished_per_point(name, spec.points)
        assert {r.data.tags["optlab.sweep"] for r in finished} == {name}
        assert len([r for r in runs_of(name) if r.data.tags.get("optlab.role") == "parent"]) == 1


def test_filter_literals_round_trip_through_mlflows_parser():
    from mlflow.utils.search_utils import SearchUtils

    for value in ["plain", "it's", 'say "hi"', "a\\b", "a\\", "\\'", "ünï ☃", "%_*", "tab\there"]:
        literal = resume.quote(value)
        if literal is None:
            assert value.endswith("\\"), value  # a backslash before the closing quote would escape it
            continue
        parsed = SearchUtils.parse_search_filter(f"tags.`optlab.sweep` = {literal} and tags.`optlab.role` = 'p'")
        assert [p["value"] for p in parsed] == [value, "p"], (value, literal)
    assert resume.quote("both ' and \"") is None  # no literal: compared client-side (search_tags)


def test_a_sigkilled_single_run_is_marked_killed_by_the_next_run_in_its_experiment(tmp_path, home):
    from optlab.cli import main

    proc = optlab(
        ["run", "-s", "adam", "-d", "digits", "--hidden", "8", "--steps", "100000000", "-q", "-e", "abandoned"],
        env_for(home),
        start_new_session=True,
    )
    run = wait_until(
        lambda: [r for r in runs_of_quiet("abandoned") if r.info.status == "RUNNING"], 120, proc, "the run to start"
    )[0]
    # SIGKILL of the whole process group (the command and its tracking-store process, as a power loss
    # would): nothing can be recorded
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)
    assert [r.info.status for r in runs_of("abandoned")] == ["RUNNING"]
    assert main(["run", "-s", "adam", "-d", "digits", "--hidden", "8", "--steps", "3", "-q", "-e", "abandoned"]) == 0
    runs = {r.info.run_id: r for r in runs_of("abandoned")}
    assert sorted(r.info.status for r in runs.values()) == ["FINISHED", "KILLED"]
    assert (
        runs[run.info.run_id].data.tags["optlab.failure_reason"] == f"interrupted: its process ("
        f"{run.data.tags['optlab.owner']}) died"
    )
