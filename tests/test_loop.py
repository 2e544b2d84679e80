"""The one training loop: divergence, probes, timing tags, errors, and what it costs when nothing is asked."""

import dataclasses
import math
import subprocess
import sys

import pytest
import torch

from optlab.config import RunConfig
from optlab.engine import Probe, RunResult, prepare, run, run_many
from optlab.engine.loop import DIVERGENCE_FACTOR
from optlab.engine.runner import train_together
from optlab.engine.stacked_trainer import StackedTrainer
from optlab.strategies.schedules import Schedule, make_scheduler


def test_a_finite_loss_far_above_its_start_is_a_divergence_in_both_trainers():
    # sgd at lr 1e30 reaches a finite training loss of ~1e30: recorded FINISHED before, now FAILED
    config = RunConfig(strategy="sgd", lr=1e30, dataset="digits", steps=40, eval_every=10)
    reference, stacked = run(config, trainer="reference"), run(config, trainer="stacked")
    for result in (reference, stacked):
        assert result.status == "FAILED"
        assert result.reason.startswith("diverged: train loss ")
        assert f"exceeds {DIVERGENCE_FACTOR:g} x its initial value" in result.reason
        loss = result.history[-1]["train_loss"]
        assert math.isfinite(loss) and loss > DIVERGENCE_FACTOR * result.history[0]["train_loss"]
    assert reference.reason == stacked.reason and reference.steps == stacked.steps == 10
    # in a group only that row leaves, with the same reason as alone
    healthy = config.with_updates(lr=0.1, seed=1)
    together = train_together([prepare(config), prepare(healthy)])
    assert [r.status for r in together] == ["FAILED", "FINISHED"]
    assert together[0].reason == stacked.reason and together[1].steps == 40


def test_a_loss_that_only_wobbles_is_not_a_divergence():
    result = run(RunConfig(strategy="gd", dataset="rosenbrock", lr=0.001, steps=200, dtype="float64"))
    assert result.status == "FINISHED", result.reason


class StepRecorder(Probe):
    """A probe that keeps what it was shown, asks for the last two updates, and reports a metric."""

    name = "spy"
    updates = 2

    def __init__(self):
        self.seen = []

    def measure(self, run):
        self.seen.append((run.step, run.params.clone(), [u.clone() for u in run.updates]))
        return {"spy_norm": float(run.params.norm())}


def test_probes_see_each_runs_parameters_and_last_updates_at_every_evaluation(monkeypatch):
    made = []

    def probes_for(config):
        made.append(StepRecorder())
        return [made[-1]]

    monkeypatch.setattr("optlab.engine.loop.probes_for", probes_for)
    configs = [
        RunConfig(strategy="momentum", dataset="digits", steps=6, eval_every=1, seed=0, lr=lr) for lr in (0.1, 0.3)
    ]
    results = train_together([prepare(c) for c in configs])
    assert len(made) == 2
    for probe, result in zip(made, results):
        assert [step for step, _, _ in probe.seen] == list(range(7))
        assert probe.seen[0][2] == []  # no update before the first step
        for (_, before, _), (step, after, updates) in zip(probe.seen, probe.seen[1:]):
            torch.testing.assert_close(updates[-1], after - before)  # w after the step minus w before
            assert len(updates) == min(step, 2)
        torch.testing.assert_close(probe.seen[-1][1], result.params)
        assert [p["spy_norm"] for p in result.history] == [float(w.norm()) for _, w, _ in probe.seen]
        assert result.probes["spy_norm"] == result.history[-1]["spy_norm"]
    assert not torch.equal(made[0].seen[-1][1], made[1].seen[-1][1])  # each row its own parameters


def test_without_probes_the_loop_never_copies_parameters(monkeypatch):
    def refuse(self):
        raise AssertionError("snapshot taken although no probe asked for updates")

    monkeypatch.setattr(StackedTrainer, "snapshot", refuse)
    result = run(RunConfig(strategy="adam", dataset="digits", steps=20, eval_every=5, probe_curvature=True))
    assert result.status == "FINISHED" and result.curvature  # the curvature probe needs no updates


def test_a_failing_probe_fails_its_run_with_the_reason(monkeypatch):
    class Broken(Probe):
        name = "broken"

        def measure(self, run):
            raise ValueError("no such thing")

    monkeypatch.setattr("optlab.engine.loop.probes_for", lambda config: [Broken()])
    result = run(RunConfig(strategy="adam", dataset="digits", steps=5))
    assert result.status == "FAILED" and result.reason == "probe broken: ValueError: no such thing"


def test_the_curvature_probe_is_recorded_for_batched_runs(store):
    from optlab.tracking import RunRecorder
    from optlab.tracking.store import client

    configs = [
        RunConfig(
            strategy=s, dataset="digits", hidden=(8,), steps=30, seed=seed, probe_curvature=True, experiment="probe"
        )
        for s in ("gd", "adam")
        for seed in (0, 1)
    ]
    results = run_many(configs, make_recorder=lambda c: RunRecorder(experiment=c.experiment))
    mlflow_client = client()
    for config, result in zip(configs, results):
        assert result.timing == "batched:2"
        recorded = mlflow_client.get_run(result.run_id).data
        assert recorded.metrics["hessian_top_eigenvalue"] == pytest.approx(result.curvature["hessian_top_eigenvalue"])
        alone = run(config, trainer="reference")
        assert result.curvature["hessian_top_eigenvalue"] == pytest.approx(
            alone.curvature["hessian_top_eigenvalue"], rel=1e-3
        )
        assert float(recorded.tags["optlab.summary.hessian_trace"]) == pytest.approx(
            result.curvature["hessian_trace"], rel=1e-5
        )


def test_every_run_is_tagged_alone_or_batched_with_its_share_of_the_time(store):
    from optlab.tracking import RunRecorder
    from optlab.tracking.store import client

    group = [
        RunConfig(strategy="minibatch", dataset="digits", steps=20, eval_every=10, seed=s, experiment="timing")
        for s in (0, 1, 2)
    ]
    single = RunConfig(strategy="lbfgs", dataset="digits", hidden=(4,), steps=3, experiment="timing")
    results = run_many([*group, single], make_recorder=lambda c: RunRecorder(experiment=c.experiment))
    mlflow_client = client()
    for result in results[:3]:
        run_data = mlflow_client.get_run(result.run_id).data
        assert run_data.tags["optlab.timing"] == "batched:3"
        walls = {m.step: m.value for m in mlflow_client.get_metric_history(result.run_id, "wall_time")}
        shares = {m.step: m.value for m in mlflow_client.get_metric_history(result.run_id, "wall_time_share")}
        assert sorted(shares) == [0, 10, 20]
        assert all(shares[s] == pytest.approx(walls[s] / 3) for s in shares)
    alone = mlflow_client.get_run(results[3].run_id).data
    assert alone.tags["optlab.timing"] == "alone" and "wall_time_share" not in alone.metrics


def test_the_shares_of_a_stack_whose_rows_leave_early_add_up_to_its_training_time(store):
    """A row that leaves (here: diverges at step 5) took part only in the steps before it left: each step's
    time is split between the rows live at that step, so the loop's time is neither lost nor counted twice
    (a sweep's efficiency sums these shares)."""
    from optlab.tracking import RunRecorder
    from optlab.tracking.store import client

    group = [
        RunConfig(strategy="minibatch", dataset="digits", steps=200, eval_every=5, seed=0, lr=lr, experiment="shares")
        for lr in (0.1, 1e4, 0.1)
    ]
    results = run_many(group, make_recorder=lambda c: RunRecorder(experiment=c.experiment))
    assert [r.status for r in results] == ["FINISHED", "FAILED", "FINISHED"]
    left, loop = results[1], results[0]
    assert left.steps == 5 and loop.steps == 200 and results[2].wall_time == loop.wall_time
    tags = [client().get_run(r.run_id).data.tags for r in results]
    shares = [float(t["optlab.summary.wall_time_share"]) for t in tags]
    assert shares[1] == pytest.approx(left.wall_time / 3, abs=1e-4)  # all three trained until it left
    assert shares[0] == shares[2] > shares[1]
    assert sum(shares) == pytest.approx(loop.wall_time, abs=3e-4)  # rounded to 4 decimals each


def test_an_error_inside_training_is_failed_with_its_traceback(monkeypatch):
    assert "traceback" in {f.name for f in dataclasses.fields(RunResult)}
    original = StackedTrainer.step

    def explode(self):
        if self.taken == 3:
            raise RuntimeError("boom")
        return original(self)

    monkeypatch.setattr(StackedTrainer, "step", explode)
    result = run(RunConfig(strategy="adam", dataset="digits", steps=10))
    assert result.status == "FAILED" and result.reason == "error: RuntimeError: boom" and result.steps == 3
    assert "Traceback" in result.traceback and "boom" in result.traceback
    assert run(RunConfig(strategy="adam", dataset="digits", steps=2)).traceback is None


def test_ctrl_c_records_every_live_run_killed_and_reraises(monkeypatch):
    captured = []

    class Capture:
        run_id = None

        def start(self, *args, **kwargs):
            pass

        def log(self, step, values):
            pass

        def log_series(self, steps, columns):
            pass

        def finish(self, status, reason, summary, params):
            captured.append((status, reason, params))

    def interrupt(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(StackedTrainer, "step", interrupt)
    configs = [RunConfig(strategy="adam", dataset="digits", steps=10, seed=s) for s in (0, 1)]
    with pytest.raises(KeyboardInterrupt):
        run_many(configs, make_recorder=lambda c: Capture())
    assert captured == [("KILLED", "interrupted", None)] * 2  # no weights stored for a killed run


@pytest.mark.parametrize("schedule", ["step", "exponential", "cosine"])
def test_closed_form_schedules_equal_torchs_schedulers(schedule):
    config = RunConfig(schedule=schedule, decay_rate=0.5, decay_every=0.3)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.7)
    scheduler = make_scheduler(optimizer, config, steps_per_epoch=40, max_steps=300)
    closed = Schedule.of(config, 0.7, steps_per_epoch=40, max_steps=300)
    for step in range(301):
        assert closed.lr(step) == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-9, abs=1e-15), step
        optimizer.step()
        scheduler.step()


def test_the_stacked_path_builds_no_torch_optim_object():
    # constructing a torch.optim optimizer imports torch._dynamo (seconds at start-up); optlab run avoids it
    code = (
        "import sys; from optlab.cli import main; "
        "code = main(['run', '-s', 'adam', '-d', 'digits', '--steps', '3', '--schedule', 'cosine', "
        "'--no-track', '-q']); "
        "assert code == 0; assert 'torch._dynamo' not in sys.modules, 'dynamo imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_chunk_that_fails_outside_its_runs_is_reported_not_swallowed(store, monkeypatch, capsys):
    from optlab.sweeps.executor import Task, run_task
    from optlab.tracking import tracking_uri

    def broken_store(*args, **kwargs):
        raise RuntimeError("store exploded")

    def still_broken(*args, **kwargs):
        raise RuntimeError("still down")

    monkeypatch.setattr("optlab.engine.run_many", broken_store)
    monkeypatch.setattr("optlab.engine.run", still_broken)
    config = RunConfig(strategy="adam", dataset="digits", steps=2)
    tags = {"optlab.sweep": "s", "optlab.point_hash": "p0"}
    outcomes = run_task(Task(((config, tags),), tracking_uri(), "0", "parent", True, 1))
    assert "store exploded" in capsys.readouterr().err
    assert outcomes[0].status == "ERROR" and "still down" in outcomes[0].reason
    assert "store exploded" in outcomes[0].reason
