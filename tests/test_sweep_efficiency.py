"""A sweep's efficiency (Σ recorded training time over wall time x workers) and where the rest went:
computed here from the sweep's own records and checked against what its summary says."""

import pytest
from sweep_helpers import TUNED_PAIR, children, sweep_runs, write_spec

from optlab.sweeps import load, run_sweep
from optlab.sweeps.efficiency import IDLE, UNTIMED, WAITING, Efficiency
from optlab.tracking import accounting


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTLAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def recorded_training(runs) -> float:
    """Σ wall_time, or wall_time_share for the runs trained stacked, as each run recorded it."""
    total = 0.0
    for run in runs:
        tags = run.data.tags
        timing = tags["optlab.timing"]
        key = "optlab.summary.wall_time" if timing == "alone" else "optlab.summary.wall_time_share"
        total += float(tags[key])
    return total


@pytest.mark.parametrize("workers", [1, 2])
def test_the_summary_states_the_efficiency_its_runs_recorded(tmp_path, workers):
    spec = load(write_spec(tmp_path, TUNED_PAIR, name=f"eff{workers}", steps=30))
    report = run_sweep(spec, workers=workers, progress=False)
    runs = children(spec.name)
    assert len(runs) == 8
    if workers == 1:  # one chunk per strategy: its tuning trials trained stacked, their time shared
        assert any(r.data.tags["optlab.timing"].startswith("batched") for r in runs)
    training = recorded_training(runs)
    eff = report.efficiency
    assert eff.runs == 8 and eff.workers == workers
    assert eff.training == pytest.approx(training, rel=1e-6)
    assert eff.wall == report.seconds
    assert eff.ratio == pytest.approx(training / (report.seconds * workers), rel=1e-6)
    # the parts (training, each category, idle) add up to the worker slots' time
    parts = dict(eff.breakdown())
    assert sum(parts.values()) == pytest.approx(report.seconds * workers, rel=1e-6)
    for category in (
        "run creation",
        "metric writes",
        "artifacts",
        "run end",
        "evaluation",
        "planning",
        "store reads",
        "selection",
        "seed groups",
        "sweep start",
    ):
        assert parts[category] > 0, category
    if workers == 2:  # the workers' own timers and chunk times came back with their results
        assert eff.worker["worker start-up"] > 0 and eff.worker["run creation"] > 0
        assert eff.peak_rss_mb["worker (max)"] > 50
        inside = eff.training + sum(s for c, s in eff.worker.items() if c != "worker start-up")
        assert eff.in_tasks >= inside  # every timer and every recorded training second is inside a chunk
        assert parts[UNTIMED] == pytest.approx(eff.in_tasks - inside) and parts[WAITING] > 0 and IDLE not in parts
    else:  # one process: no chunk times to tell waiting from untimed work apart
        assert eff.in_tasks == 0 and UNTIMED not in parts and IDLE in parts
    rest = IDLE if workers == 1 else WAITING
    assert eff.peak_rss_mb["sweep process"] > 50
    # the parent run keeps the same numbers
    parent = next(r for r in sweep_runs(spec.name) if r.data.tags.get("optlab.role") == "parent")
    tags = parent.data.tags
    assert float(tags["optlab.summary.efficiency"]) == pytest.approx(eff.ratio, abs=1e-4)
    assert float(tags["optlab.summary.training_seconds"]) == pytest.approx(training, abs=0.01)
    assert float(tags[f"optlab.summary.slot_seconds.{rest.replace(' ', '_')}"]) == pytest.approx(parts[rest], abs=0.01)
    assert f"efficiency {100 * eff.ratio:.0f} %" in eff.text()


def test_a_resumed_sweep_counts_only_the_runs_it_trained(tmp_path):
    path = write_spec(tmp_path, TUNED_PAIR, name="again", steps=20)
    run_sweep(load(path), workers=1, progress=False)
    again = run_sweep(load(path), workers=1, progress=False)
    assert again.counts["skipped"] == 8
    assert again.efficiency.runs == 0 and again.efficiency.training == 0.0


def test_nested_timers_count_each_second_once():
    accounting.take()
    with accounting.timed("outer"):
        with accounting.timed("inner"):
            sum(range(200_000))
        sum(range(200_000))
    accounting.add("measured elsewhere", 2.0)
    taken = accounting.take()
    assert set(taken) == {"outer", "inner", "measured elsewhere"}
    assert taken["inner"][0] > 0 and taken["outer"][0] > 0 and taken["measured elsewhere"] == (2.0, 1)
    assert accounting.take() == {}


def test_the_sweep_process_time_counts_once_per_waiting_worker_slot():
    eff = Efficiency(workers=2, wall=10.0, training=8.0, runs=4)
    eff.add({"run creation": (2.0, 4)}, in_workers=True)
    eff.add({"seed groups": (1.5, 1)}, in_workers=False)
    parts = dict(eff.breakdown())
    assert parts == {"training": 8.0, "run creation": 2.0, "seed groups": 3.0, IDLE: 7.0}
    assert eff.ratio == 0.4 and eff.calls == {"run creation": 4, "seed groups": 1}


def test_what_workers_did_inside_their_chunks_untimed_is_told_apart_from_waiting_for_one():
    eff = Efficiency(workers=2, wall=10.0, training=8.0, runs=4, in_tasks=11.0)
    eff.add({"run creation": (2.0, 4), "worker start-up": (0.5, 2)}, in_workers=True)
    eff.add({"seed groups": (1.5, 1)}, in_workers=False)
    parts = dict(eff.breakdown())
    # 11 s inside chunks: 8 training + 2 run creation + 1 in no timer; 20 slot-seconds in all
    assert parts == {
        "training": 8.0,
        "run creation": 2.0,
        "worker start-up": 0.5,
        "seed groups": 3.0,
        UNTIMED: pytest.approx(1.0),
        WAITING: pytest.approx(5.5),
    }
    assert sum(parts.values()) == pytest.approx(20.0)


def test_evaluation_is_the_runs_work_but_not_their_training_time():
    eff = Efficiency(workers=2, wall=10.0, training=6.0, runs=4)
    eff.add({"evaluation": (9.0, 40), "run creation": (1.0, 4)}, in_workers=True)
    assert eff.ratio == 0.3 and eff.work_ratio == 0.75
    assert eff.summary()["efficiency_with_evaluation"] == "0.7500"
    assert "with the runs' evaluations (untimed) 75 %" in eff.text()


def test_with_one_worker_the_sweep_process_evaluations_count_as_the_runs_work():
    eff = Efficiency(workers=1, wall=10.0, training=5.0, runs=2)
    eff.add({"evaluation": (2.0, 8), "run creation": (1.0, 2)}, in_workers=False)
    assert eff.ratio == 0.5 and eff.work_ratio == 0.7


def test_the_end_of_run_curvature_probe_is_timed_as_evaluation_not_left_idle():
    from optlab.config import RunConfig
    from optlab.engine import run

    def evaluation_calls(probe: bool) -> int:
        accounting.take()
        run(RunConfig(strategy="gd", dataset="digits", hidden=(8,), steps=4, eval_every=2, probe_curvature=probe))
        return accounting.take()["evaluation"][1]

    assert evaluation_calls(True) == evaluation_calls(False) + 1
