"""Running sweeps: tuning selection, 2 workers against one store, failure isolation, Ray."""

import math

import pytest
from sweep_helpers import children, groups, write_spec

from optlab.sweeps import load, run_sweep
from optlab.sweeps.tuning import Trial, select


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTLAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def t(run_id, group, trial, status="FINISHED", **metrics):
    return Trial(run_id, group, trial, status, metrics)


def test_select_prefers_trials_that_reach_the_target_then_the_fastest_and_handles_misses():
    trials = [
        t("a0", "B=8", "lr=0.1", steps_to_target=40, val_loss=0.5),
        t("a1", "B=8", "lr=0.1", steps_to_target=60, val_loss=0.5),  # both seeds reached: mean 50
        t("b0", "B=8", "lr=0.3", steps_to_target=30, val_loss=0.4),
        t("b1", "B=8", "lr=0.3", val_loss=0.4),  # one seed missed: ranked after
        t("c0", "B=8", "lr=1", "FAILED", steps_to_target=10),  # diverged: never selected
        t("d0", "B=64", "lr=0.1", val_loss=0.9),  # nobody reached the target:
        t("e0", "B=64", "lr=0.3", val_loss=0.7),  # tie-break on validation loss
        t("f0", "B=128", "lr=0.1", "FAILED"),  # every trial failed: no selection
    ]
    chosen = select(trials, "steps_to_target")
    assert chosen["B=8"].trial == "lr=0.1" and chosen["B=8"].score == 50 and chosen["B=8"].run_ids == ("a0", "a1")
    assert chosen["B=8"].reached == (2, 2) and chosen["B=8"].n_trials == 3
    assert chosen["B=64"].trial == "lr=0.3" and math.isinf(chosen["B=64"].score)
    assert "B=128" not in chosen
    maxed = select([t("x", "g", "lr=1", val_accuracy=0.8), t("y", "g", "lr=2", val_accuracy=0.9)], "val_accuracy")
    assert maxed["g"].trial == "lr=2" and maxed["g"].score == 0.9


class NoTestMetrics(dict):
    """Metrics that fail the test if tuning reads a test-set value."""

    def get(self, key, default=None):
        assert not key.startswith("test"), f"tuning read {key}"
        return super().get(key, default)

    def __getitem__(self, key):
        assert not key.startswith("test"), f"tuning read {key}"
        return super().__getitem__(key)


def test_selection_follows_validation_where_test_disagrees():
    # lr=0.1 is better on validation, lr=0.3 on test: validation decides, and test is never read
    metrics = {
        "lr=0.1": dict(val_loss=0.30, val_accuracy=0.91, test_loss=0.50, test_accuracy=0.80, steps_to_target=90.0),
        "lr=0.3": dict(val_loss=0.40, val_accuracy=0.88, test_loss=0.20, test_accuracy=0.95, steps_to_target=90.0),
    }
    trials = [
        Trial(f"{label}-{seed}", "g", label, "FINISHED", NoTestMetrics(m))
        for label, m in metrics.items()
        for seed in (0, 1)
    ]
    for objective in ("val_loss", "val_accuracy", "steps_to_target"):  # steps tie: broken by val_loss
        assert select(trials, objective)["g"].trial == "lr=0.1", objective


TUNED = """
    [grid]
    strategy = ["minibatch"]
    [tune]
    lr = [0.003, 0.05, 0.5]
    objective = "val_loss"
    seeds = [0, 1]
    [rerun]
    seeds = [10, 11, 12]
"""


def test_tune_on_validation_then_rerun_the_selection_alone_on_fresh_seeds(tmp_path):
    spec = load(write_spec(tmp_path, TUNED, steps=30))
    report = run_sweep(spec, progress=False)
    assert report.counts["finished"] == 3 * 2 + 3 and report.counts["reruns"] == 3
    runs = children("tiny")
    trials = [r for r in runs if r.data.tags["optlab.role"] == "tuning"]
    reruns = [r for r in runs if r.data.tags["optlab.role"] == "rerun"]
    # the selected trial is the one with the best mean validation loss over the tuning seeds
    mean_val = {}
    for r in trials:
        mean_val.setdefault(r.data.tags["optlab.trial"], []).append(r.data.metrics["val_loss"])
    best = min(mean_val, key=lambda k: sum(mean_val[k]) / len(mean_val[k]))
    assert {r.data.tags["optlab.trial"] for r in trials if r.data.tags["optlab.selected"] == "true"} == {best}
    assert report.selections["tiny: strategy=minibatch"].trial == best
    # reruns: the selected configuration on the rerun seeds, none of them a tuning seed
    tuning_seeds = {int(r.data.params["seed"]) for r in trials}
    rerun_seeds = sorted(int(r.data.params["seed"]) for r in reruns)
    assert tuning_seeds == {0, 1} and rerun_seeds == [10, 11, 12] and not tuning_seeds & set(rerun_seeds)
    assert {r.data.tags["optlab.trial"] for r in reruns} == {best}
    assert {r.data.params["lr"] for r in reruns} == {best.split("=")[1]}
    assert all(r.data.tags["optlab.selected"] == "true" and r.data.tags["optlab.trials"] == "3" for r in reruns)
    assert all(r.data.tags["optlab.workload"] == "tiny" for r in runs)
    # tuning trials may train together; every rerun was trained alone
    assert any(
        "optlab.batched" in r.data.tags or r.data.tags.get("optlab.timing", "").startswith("batched") for r in trials
    )
    assert not any(
        "optlab.batched" in r.data.tags or r.data.tags.get("optlab.timing", "alone") != "alone" for r in reruns
    )


def test_timed_alone_reruns_the_first_seeds_alone_and_batches_the_rest(tmp_path):
    spec = load(write_spec(tmp_path, TUNED + "    timed_alone = 1\n", steps=20))
    report = run_sweep(spec, progress=False)
    assert report.counts["reruns"] == 3
    reruns = {int(r.data.params["seed"]): r for r in children("tiny") if r.data.tags["optlab.role"] == "rerun"}
    assert reruns[10].data.tags["optlab.timing"] == "alone"
    assert {reruns[s].data.tags["optlab.timing"] for s in (11, 12)} == {"batched:2"}
    assert all(r.info.status == "FINISHED" for r in reruns.values())


def test_edge_of_grid_selection_is_flagged_in_the_summary(tmp_path, capsys):
    from optlab.cli import main

    path = write_spec(
        tmp_path,
        """
        [grid]
        strategy = ["minibatch"]
        [tune]
        lr = [0.0001, 0.0003]
        objective = "val_loss"
        [rerun]
        seeds = [3]
    """,
        name="edge",
        steps=10,
    )
    assert main(["sweep", str(path), "-q"]) == 0
    out = capsys.readouterr()
    # with such tiny learning rates the largest wins: the optimum may lie beyond the grid
    assert "lr=0.0003 is the highest value of its grid [0.0001, 0.0003]" in out.out
    assert "edge: strategy=minibatch: selected lr=0.0003 is the highest value" in out.err


def test_validation_metrics_decide_when_test_metrics_are_tampered_with(tmp_path):
    """A fixture store where the test metrics favour the other trial: the selection does not move;
    flip the validation metrics instead and it follows them."""
    from optlab.tracking.store import client

    spec = load(write_spec(tmp_path, TUNED.replace("[0.003, 0.05, 0.5]", "[0.05, 0.5]"), steps=30))
    first = run_sweep(spec, progress=False).selections["tiny: strategy=minibatch"].trial
    other = "lr=0.05" if first == "lr=0.5" else "lr=0.5"
    c = client()
    trials = [r for r in children("tiny") if r.data.tags["optlab.role"] == "tuning"]
    for r in trials:  # test metrics now say `other` is far better
        good = r.data.tags["optlab.trial"] == other
        c.log_metric(r.info.run_id, "test_loss", 0.0 if good else 9.0, step=10**6)
        c.log_metric(r.info.run_id, "test_accuracy", 1.0 if good else 0.0, step=10**6)
    assert run_sweep(spec, progress=False).selections["tiny: strategy=minibatch"].trial == first
    for r in trials:  # validation metrics now say `other` is better
        c.log_metric(r.info.run_id, "val_loss", 0.0 if r.data.tags["optlab.trial"] == other else 9.0, step=10**6)
    again = run_sweep(spec, progress=False)
    assert again.selections["tiny: strategy=minibatch"].trial == other
    reruns = [r for r in children("tiny") if r.data.tags["optlab.role"] == "rerun"]
    current = {r.data.tags["optlab.trial"] for r in reruns if r.data.tags["optlab.selected"] == "true"}
    assert current == {other}  # the earlier selection's reruns are no longer tagged selected
    assert {r.data.tags["optlab.trial"] for r in reruns if r.data.tags["optlab.selected"] == "false"} == {first}


def test_two_workers_one_store_and_a_failing_point_does_not_stop_the_others(tmp_path):
    spec = load(
        write_spec(
            tmp_path,
            """
        [grid]
        strategy = ["minibatch"]
        seed = [0, 1, 2]
        lr = [0.1, 1e30]
    """,
            name="pool",
            steps=20,
        )
    )
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
    # the finished configuration's seeds sit under its seed-group run; the failed ones under the sweep
    (group,) = groups("pool")
    assert group.data.tags["mlflow.parentRunId"] == parent and group.data.params["lr"] == "0.1"
    assert {r.data.tags["mlflow.parentRunId"] for r in by_status["FINISHED"]} == {group.info.run_id}
    assert {r.data.tags["mlflow.parentRunId"] for r in by_status["FAILED"]} == {parent}
    assert report.counts == {
        "points": 6,
        "finished": 3,
        "failed": 3,
        "skipped": 0,
        "missing": 0,
        "selected": 0,
        "reruns": 0,
    }
    # a rerun retries the failed points only
    again = run_sweep(spec, workers=1, progress=False)
    assert again.resumed and again.counts["skipped"] == 3 and again.counts["failed"] == 3
    assert sum(r.info.status == "FINISHED" for r in children("pool")) == 3


def test_ray_backend_runs_every_point(tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'optlab[ray]')")
    spec = load(
        write_spec(
            tmp_path,
            """
        [grid]
        strategy = ["minibatch", "adam"]
        seed = [0, 1]
    """,
            name="onray",
            steps=10,
        )
    )
    report = run_sweep(spec, workers=1, backend="ray", progress=False)  # one Ray worker: a smoke test
    runs = children("onray")
    assert report.counts["finished"] == 4
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 4
    assert {g.data.tags["mlflow.parentRunId"] for g in groups("onray")} == {report.parent_run_id}
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {g.info.run_id for g in groups("onray")}


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
        stale = c.create_run(
            experiment_id,
            tags={
                "optlab.sweep": "owned",
                "optlab.role": "point",
                "optlab.point_hash": "x",
                resume.OWNER_TAG: f"{resume.owner_id().rpartition(':')[0]}:{other.pid}",
            },
        )
        with pytest.raises(OptlabError, match="already running"):
            run_sweep(spec, progress=False)
    finally:
        other.kill()
        other.wait()
    report = run_sweep(spec, progress=False)
    assert report.counts["finished"] == 1
    assert c.get_run(stale.info.run_id).info.status == "KILLED"
