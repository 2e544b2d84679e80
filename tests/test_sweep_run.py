"""Running sweeps: tuning selection, 2 workers against one store, failure isolation, Ray."""

import math

import pytest

from optlab.sweeps import load, run_sweep
from optlab.sweeps.tuning import Trial, select
from sweep_helpers import children, write_spec


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTLAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def test_select_prefers_best_mean_objective_and_handles_misses():
    def t(run_id, group, trial, status="FINISHED", **metrics):
        return Trial(run_id, group, trial, status, metrics)

    trials = [
        t("a0", "B=8", "lr=0.1", steps_to_target=40, train_loss=0.5),
        t("a1", "B=8", "lr=0.1", steps_to_target=60, train_loss=0.5),    # mean 50
        t("b0", "B=8", "lr=0.3", steps_to_target=30, train_loss=0.4),
        t("b1", "B=8", "lr=0.3", train_loss=0.4),                        # one seed missed: inf
        t("c0", "B=8", "lr=1", "FAILED", steps_to_target=10),            # diverged
        t("d0", "B=64", "lr=0.1", train_loss=0.9),                       # nobody reached the target:
        t("e0", "B=64", "lr=0.3", train_loss=0.7),                       # tie-break on train loss
    ]
    chosen = select(trials, "steps_to_target")
    assert chosen["B=8"].trial == "lr=0.1" and chosen["B=8"].score == 50 and chosen["B=8"].run_ids == ("a0", "a1")
    assert chosen["B=64"].trial == "lr=0.3" and math.isinf(chosen["B=64"].score)
    assert select(trials, "test_accuracy") == select(trials, "test_accuracy")  # deterministic
    maxed = select([t("x", "g", "lr=1", test_accuracy=0.8), t("y", "g", "lr=2", test_accuracy=0.9)], "test_accuracy")
    assert maxed["g"].trial == "lr=2" and maxed["g"].score == 0.9


def test_tuning_tags_the_trial_with_the_best_final_loss(tmp_path):
    spec = load(write_spec(tmp_path, """
        [grid]
        strategy = ["minibatch"]
        seed = [0]
        [tune]
        lr = [0.001, 0.05, 0.5]
        objective = "train_loss"
    """, steps=30))
    report = run_sweep(spec, progress=False)
    assert report.counts["finished"] == 3
    runs = children("tiny")
    assert {r.data.tags["optlab.role"] for r in runs} == {"tuning"}
    losses = {r.info.run_id: r.data.metrics["train_loss"] for r in runs}
    selected = [r.info.run_id for r in runs if r.data.tags.get("optlab.selected") == "true"]
    assert selected == [min(losses, key=losses.get)]
    assert sum(r.data.tags.get("optlab.selected") == "false" for r in runs) == 2
    assert report.selections["strategy=minibatch"].trial == "lr=0.5"


def test_two_workers_one_store_and_a_failing_point_does_not_stop_the_others(tmp_path):
    spec = load(write_spec(tmp_path, """
        [grid]
        strategy = ["minibatch"]
        seed = [0, 1, 2]
        lr = [0.1, 1e30]
    """, name="pool", steps=20))
    report = run_sweep(spec, workers=2, progress=False)
    runs = children("pool")
    by_status = {}
    for r in runs:
        by_status.setdefault(r.info.status, []).append(r)
    assert len(runs) == 6 and len(by_status["FINISHED"]) == 3 and len(by_status["FAILED"]) == 3
    assert all(r.data.params["lr"] == "0.1" for r in by_status["FINISHED"])
    assert all("diverged" in r.data.tags["optlab.failure_reason"] for r in by_status["FAILED"])
    assert len({r.data.tags["optlab.point_hash"] for r in runs}) == 6
    parent = report.parent_run_id
    assert all(r.data.tags["mlflow.parentRunId"] == parent for r in runs)
    assert report.counts == {"points": 6, "finished": 3, "failed": 3, "skipped": 0, "missing": 0, "selected": 0}
    # a rerun retries the failed points only
    again = run_sweep(spec, workers=1, progress=False)
    assert again.resumed and again.counts["skipped"] == 3 and again.counts["failed"] == 3
    assert sum(r.info.status == "FINISHED" for r in children("pool")) == 3


def test_ray_backend_runs_every_point(tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'optlab[ray]')")
    spec = load(write_spec(tmp_path, """
        [grid]
        strategy = ["minibatch", "adam"]
        seed = [0, 1]
    """, name="onray", steps=10))
    report = run_sweep(spec, workers=1, backend="ray", progress=False)  # one Ray worker: a smoke test
    runs = children("onray")
    assert report.counts["finished"] == 4
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 4
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {report.parent_run_id}


def test_running_runs_of_a_live_owner_block_a_second_sweep_and_dead_ones_are_killed(tmp_path):
    import subprocess

    from optlab.errors import OptlabError
    from optlab.sweeps import resume
    from optlab.tracking.store import client, ensure_experiment

    spec = load(write_spec(tmp_path, "[grid]\nseed = [0]\n", name="owned", steps=5))
    c = client()
    experiment_id = ensure_experiment(c, "owned")
    other = subprocess.Popen(["sleep", "60"])
    try:
        stale = c.create_run(experiment_id, tags={"optlab.sweep": "owned", "optlab.role": "point",
                                                  "optlab.point_hash": "x", resume.OWNER_TAG:
                                                  f"{resume.owner_id().rpartition(':')[0]}:{other.pid}"})
        with pytest.raises(OptlabError, match="already running"):
            run_sweep(spec, progress=False)
    finally:
        other.kill()
        other.wait()
    report = run_sweep(spec, progress=False)
    assert report.counts["finished"] == 1
    assert c.get_run(stale.info.run_id).info.status == "KILLED"
