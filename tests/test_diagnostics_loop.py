"""Diagnostics in the training loop: MLflow metrics at every evaluation (alone and stacked), nothing
logged or paid when off, the true last updates with sparse evaluations, full-batch divergence per step."""

from __future__ import annotations

import pytest
import torch

from optlab.config import RunConfig
from optlab.engine import Probe, prepare, run, run_many
from optlab.engine.runner import train_together
from optlab.engine.stacked_trainer import StackedTrainer
from optlab.engine.trainers import StrategyTrainer

SMALL = dict(dataset="digits", hidden=(8,), steps=20, eval_every=5, diagnostics_samples=64)
CHEAP = {"grad_norm", "trace_sigma", "b_simple", "gsnr", "distance_from_init"}
AFTER_A_STEP = {"update_norm", "update_ratio_layer1", "update_ratio_layer2", "update_cosine"}
FULL = {"sharpness", "hessian_trace"}


def diag_keys(history_point: dict) -> set[str]:
    return {k[len("diag/") :] for k in history_point if k.startswith("diag/")}


def test_diagnostics_off_logs_none_and_pays_nothing(store, monkeypatch):
    from optlab.tracking import RunRecorder
    from optlab.tracking.store import client

    def refuse(*args, **kwargs):
        raise AssertionError("diagnostics work done although diagnostics are off")

    for target in (
        "optlab.diagnostics.tiers.Diagnostics.measure",
        "optlab.diagnostics.gradients.gradient_noise",
        "optlab.diagnostics.curvature.Sharpness.measure",
    ):
        monkeypatch.setattr(target, refuse)
    monkeypatch.setattr(StackedTrainer, "snapshot", refuse)  # no parameter copies either
    monkeypatch.setattr(StrategyTrainer, "snapshot", refuse)
    for trainer in ("stacked", "reference"):
        config = RunConfig(strategy="momentum", experiment="off", **SMALL)
        result = run(config, recorder=RunRecorder(experiment="off"), trainer=trainer)
        assert result.status == "FINISHED", result.reason
        assert not any(diag_keys(point) for point in result.history)
        assert not [k for k in client().get_run(result.run_id).data.metrics if k.startswith("diag/")]
    # the same run asking for them does the work (so the refusals above would have fired)
    failed = run(RunConfig(strategy="momentum", diagnostics="cheap", **SMALL))
    assert failed.status == "FAILED" and "diagnostics work done" in failed.reason


def test_diagnostics_are_mlflow_metrics_at_every_evaluation_alone_and_stacked(store):
    from optlab.tracking import RunRecorder
    from optlab.tracking.store import client

    configs = [
        RunConfig(strategy="adam", lr=0.01, seed=s, diagnostics="cheap", experiment="diag", **SMALL) for s in (0, 1)
    ]
    full = [
        RunConfig(strategy="minibatch", lr=0.3, seed=s, diagnostics="full", experiment="diag", **SMALL) for s in (0, 1)
    ]
    results = run_many([*configs, *full], make_recorder=lambda c: RunRecorder(experiment="diag"))
    # full diagnostics train alone: their Hessian products would run one row after another in a group
    assert [r.timing for r in results] == ["batched:2", "batched:2", "alone", "alone"]
    mlflow = client()
    for result, tier in zip(results, ("cheap", "cheap", "full", "full")):
        assert result.status == "FINISHED", result.reason
        expected = CHEAP | AFTER_A_STEP | (FULL if tier == "full" else set())
        recorded = {k[len("diag/") :] for k in mlflow.get_run(result.run_id).data.metrics if k.startswith("diag/")}
        assert expected <= recorded and (tier == "full" or not recorded & (FULL | {"alpha"}))
        for key in expected:
            steps = sorted(m.step for m in mlflow.get_metric_history(result.run_id, f"diag/{key}"))
            assert steps == ([5, 10, 15, 20] if key in AFTER_A_STEP else [0, 5, 10, 15, 20]), key
        assert float(mlflow.get_run(result.run_id).data.tags["optlab.summary.diag/grad_norm"]) == pytest.approx(
            result.history[-1]["diag/grad_norm"], rel=1e-5
        )
    # a stacked row measures what its run alone measures
    alone = run(configs[1], trainer="reference")
    for key in ("diag/grad_norm", "diag/b_simple", "diag/gsnr", "diag/update_ratio_layer1", "diag/update_cosine"):
        assert results[1].history[-1][key] == pytest.approx(alone.history[-1][key], rel=1e-3), key


class Spy(Probe):
    name = "spy"
    updates = 2

    def __init__(self):
        self.seen = {}

    def measure(self, run):
        self.seen[run.step] = [u.clone() for u in run.updates]
        return {}


def test_with_sparse_evaluations_the_probe_gets_the_true_last_two_updates_and_few_copies(monkeypatch):
    spy, copies = Spy(), []
    monkeypatch.setattr("optlab.engine.loop.probes_for", lambda config: [spy])
    original = StackedTrainer.snapshot

    def counted(self):
        copies.append(1)
        return original(self)

    monkeypatch.setattr(StackedTrainer, "snapshot", counted)
    config = RunConfig(strategy="momentum", dataset="digits", hidden=(8,), steps=12, eval_every=5, lr=0.1)
    run(config)
    assert sorted(spy.seen) == [0, 5, 10, 12] and spy.seen[0] == []
    monkeypatch.setattr("optlab.engine.loop.probes_for", lambda config: [])
    at = {k: run(config.with_updates(steps=k)).params for k in (3, 4, 5, 8, 9, 10, 11, 12)}
    for step in (5, 10, 12):
        older, last = spy.seen[step]
        torch.testing.assert_close(last, at[step] - at[step - 1])
        torch.testing.assert_close(older, at[step - 1] - at[step - 2])
    assert len(copies) < 2 * 12  # copies only in the steps before an evaluation, not every step


def test_a_full_batch_loss_above_the_limit_fails_the_run_between_evaluations():
    config = RunConfig(
        strategy="gd", dataset="digits", hidden=(16,), activation="relu", lr=50.0, steps=40, eval_every=40
    )
    for trainer in ("stacked", "reference"):
        result = run(config, trainer=trainer)
        assert result.status == "FAILED" and "exceeds 100 x its initial value" in result.reason, result.reason
        assert result.steps < 40
    healthy = train_together([prepare(config), prepare(config.with_updates(lr=0.1, seed=1))])
    assert [r.status for r in healthy] == ["FAILED", "FINISHED"] and healthy[1].steps == 40
