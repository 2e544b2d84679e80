"""Batched training must reproduce single runs, record one MLflow run per config, and stay fast to test."""

import math

import pytest
import torch

from optlab.config import RunConfig
from optlab.engine import prepare, run, run_many
from optlab.engine.runner import group_key, train_together
from optlab.problem import build_problem, stacked

SKIP = {"wall_time", "wall_time_share"}  # timings, and the batched-only share of the group's time


pytestmark = pytest.mark.usefixtures("one_intra_op_thread")


@pytest.fixture
def tracking_home(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTLAB_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def assert_same_run(single, batched, atol=2e-5):
    assert single.status == batched.status, (single.reason, batched.reason)
    assert single.reason == batched.reason
    assert single.steps == batched.steps
    assert single.counters == batched.counters
    assert single.steps_to_target == batched.steps_to_target
    assert [p["step"] for p in single.history] == [p["step"] for p in batched.history]
    for a, b in zip(single.history, batched.history):
        assert a.keys() - SKIP == b.keys() - SKIP
        for key in a.keys() - SKIP:
            assert math.isclose(a[key], b[key], rel_tol=1e-5, abs_tol=atol), (key, a[key], b[key])
    torch.testing.assert_close(single.params, batched.params, atol=atol, rtol=1e-4)


# non-chaotic settings: learning rates well inside each rule's stable range on digits, where float
# rounding differences between the stacked kernels and torch.optim stay at rounding level
BATCHED = {
    "gd": ([0.5, 0.2, 1.0], [None, None, None]),
    "sgd": ([0.1, 0.05, 0.02], [None, None, None]),
    "minibatch": ([0.5, 0.2, 1.0], [None, None, None]),
    "momentum": ([0.1, 0.05, 0.2], [0.9, 0.5, None]),
    "nesterov": ([0.1, 0.05, 0.2], [0.9, 0.5, None]),
    "adam": ([0.01, 0.003, 0.001], [0.9, 0.8, None]),
    "adamw": ([0.01, 0.003, 0.001], [0.9, 0.8, None]),
    "rmsprop": ([0.003, 0.001, 0.002], [0.0, 0.5, None]),
    "adagrad": ([0.05, 0.02, 0.1], [None, None, None]),
}


def test_every_strategy_with_a_batched_form_is_tested_here():
    from optlab.strategies import registry

    assert {cls.name for cls in registry.available() if cls.batched_rule() is not None} == set(BATCHED)


@pytest.mark.parametrize("strategy", sorted(BATCHED))
def test_stacked_runs_alone_and_in_a_group_equal_the_torch_optim_reference(strategy):
    lrs, momenta = BATCHED[strategy]
    configs = [
        RunConfig(
            strategy=strategy,
            dataset="digits",
            steps=45,
            eval_every=15,
            seed=seed,
            lr=lr,
            momentum=momentum,
            weight_decay=0.001 if seed == 2 else None,
        )
        for seed, lr, momentum in zip((0, 1, 2), lrs, momenta)
    ]
    together = train_together([prepare(c) for c in configs])
    for config, grouped in zip(configs, together):
        reference = run(config, trainer="reference")  # torch.optim, one run
        alone = run(config)  # what `optlab run` trains with: stacked, K = 1
        assert alone.timing == "alone" and grouped.timing == "batched:3"
        assert_same_run(reference, alone)
        assert_same_run(reference, grouped)
        assert torch.equal(alone.params, run(config, trainer="stacked").params)


def test_label_noise_draws_schedules_and_full_batch_train_together():
    configs = [
        RunConfig(
            strategy="gd",
            dataset="digits",
            lr=1.0,
            steps=30,
            eval_every=10,
            seed=seed,
            label_noise=0.2,
            noise_seed=seed,
            schedule=schedule,
            decay_every=0.01,
        )
        for seed, schedule in ((0, "constant"), (1, "step"), (2, "cosine"))
    ]
    preps = [prepare(c) for c in configs]
    assert len({group_key(p) for p in preps}) == 1
    for config, result in zip(configs, train_together(preps)):
        assert_same_run(run(config, trainer="reference"), result)
    # mini-batches with seeds shared unevenly (1, 0, 1): rows of one seed see the same batches
    configs = [
        RunConfig(
            strategy="momentum",
            dataset="digits",
            steps=40,
            eval_every=20,
            seed=seed,
            lr=lr,
            label_noise=0.1 * i,
            noise_seed=i,
        )
        for i, (seed, lr) in enumerate(((1, 0.1), (0, 0.2), (1, 0.3)))
    ]
    for config, result in zip(configs, train_together([prepare(c) for c in configs])):
        assert_same_run(run(config, trainer="reference"), result)


def test_a_diverging_row_fails_with_its_reason_while_the_others_go_on():
    configs = [
        RunConfig(strategy="minibatch", dataset="digits", steps=30, eval_every=10, seed=0, lr=lr)
        for lr in (0.5, 1e38, 0.2)
    ]
    results = train_together([prepare(c) for c in configs])
    assert [r.status for r in results] == ["FINISHED", "FAILED", "FINISHED"]
    alone = run(configs[1], trainer="reference")
    assert alone.status == "FAILED" and results[1].reason == alone.reason and "diverged" in alone.reason
    assert_same_run(run(configs[2], trainer="reference"), results[2])
    assert results[0].steps == 30


def test_a_row_that_stops_at_its_target_leaves_the_group():
    base = RunConfig(strategy="adam", dataset="digits", steps=300, eval_every=10, target=0.6)
    configs = [base.with_updates(stop_at_target=True), base.with_updates(seed=1)]
    results = train_together([prepare(c) for c in configs])
    for config, result in zip(configs, results):
        assert_same_run(run(config, trainer="reference"), result)
    assert results[0].steps == results[0].steps_to_target < 300 and results[1].steps == 300


def test_run_many_records_one_mlflow_run_per_config_with_its_params(tracking_home):
    from optlab.tracking import RunRecorder
    from optlab.tracking.store import client

    configs = [
        RunConfig(
            strategy="momentum", dataset="digits", steps=20, eval_every=10, seed=seed, lr=lr, experiment="batched"
        )
        for seed in (0, 1)
        for lr in (0.1, 0.3)
    ]
    configs.append(RunConfig(strategy="gd", dataset="ravine", lr=0.01, steps=20, experiment="batched"))  # runs alone
    tags = [{"optlab.sweep": "t", "optlab.point_hash": str(i)} for i in range(len(configs))]
    results = run_many(configs, make_recorder=lambda c: RunRecorder(experiment=c.experiment), extra_tags=tags)
    mlflow = client()
    experiment = mlflow.get_experiment_by_name("batched")
    runs = mlflow.search_runs([experiment.experiment_id])
    assert len(runs) == len(configs) == len({r.run_id for r in results})
    by_id = {r.info.run_id: r for r in runs}
    for i, (config, result) in enumerate(zip(configs, results)):
        recorded = by_id[result.run_id]
        assert recorded.data.params["seed"] == str(config.seed)
        assert float(recorded.data.params["lr"]) == config.lr
        assert recorded.data.params["strategy"] == config.strategy
        assert recorded.data.tags["optlab.status"] == "FINISHED"
        assert recorded.data.tags["optlab.point_hash"] == str(i)
        assert recorded.data.tags["optlab.family"] == "first-order"
        assert recorded.data.metrics["train_loss"] == pytest.approx(result.final["train_loss"])
        losses = mlflow.get_metric_history(result.run_id, "batch_loss")
        assert sorted(m.step for m in losses) == list(range(1, 21))
    assert by_id[results[0].run_id].data.tags["optlab.timing"] == "batched:4"
    assert by_id[results[-1].run_id].data.tags["optlab.timing"] == "alone"
    # the batched runs match their unbatched twins, which run_many(batched=False) gives
    for a, b in zip(run_many(configs[:2], batched=False), results[:2]):
        assert_same_run(a, b)


def test_stacked_forward_and_population_losses_match_one_at_a_time():
    problem = build_problem(RunConfig(dataset="digits", hidden=(8, 6), activation="tanh", cost="mse"))
    ws = torch.stack([problem.init_params(s) for s in range(5)])
    batch = problem.batch(torch.arange(40))
    together = problem.losses(ws, batch)
    alone = torch.stack([problem.objective(w, batch) for w in ws])
    torch.testing.assert_close(together, alone)
    per_row_x = batch.x.expand(5, -1, -1)
    torch.testing.assert_close(problem.network.forward_many(ws, per_row_x), problem.network.forward_many(ws, batch.x))
    # the hand-written backward equals autograd's
    loss, grad = stacked.loss_and_grad(problem.network, "mse", ws, batch.x, batch.y)
    for w, value, g in zip(ws, loss, grad):
        expected_value, expected_grad = problem.loss_and_grad(w, batch)
        torch.testing.assert_close(value, expected_value)
        torch.testing.assert_close(g, expected_grad, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
@pytest.mark.parametrize("cost", ["cross_entropy", "mse"])
def test_the_hand_written_backward_equals_autograd(activation, cost):
    problem = build_problem(RunConfig(dataset="digits", hidden=(8, 6), activation=activation, cost=cost))
    ws = torch.stack([problem.init_params(s) for s in range(3)])
    for x_shape in ("shared", "per row"):
        batch = problem.batch(torch.arange(40))
        x = batch.x if x_shape == "shared" else batch.x.expand(3, -1, -1)
        loss, grad = stacked.loss_and_grad(problem.network, cost, ws, x, batch.y)
        for w, value, g in zip(ws, loss, grad):
            expected_value, expected_grad = problem.loss_and_grad(w, batch)
            torch.testing.assert_close(value, expected_value)
            torch.testing.assert_close(g, expected_grad, atol=1e-6, rtol=1e-4)


def test_bulk_metric_insert_writes_what_log_batch_writes(tracking_home):
    from mlflow.entities import Metric

    from optlab.tracking.fast_metrics import log_metrics_fast
    from optlab.tracking.store import client, ensure_experiment

    mlflow = client()
    experiment = ensure_experiment(mlflow, "bulk")
    points = [
        Metric(key, step * 0.5 + len(key), 1000 + step, step) for step in range(30) for key in ("batch_loss", "lr")
    ] + [Metric("bad", float("inf"), 7, 2)]
    fast, plain = (mlflow.create_run(experiment).info.run_id for _ in range(2))
    assert log_metrics_fast(mlflow, fast, points)
    mlflow.log_batch(plain, metrics=points)
    assert mlflow.get_run(fast).data.metrics == mlflow.get_run(plain).data.metrics
    for key in ("batch_loss", "lr", "bad"):
        history = lambda run, key=key: sorted(
            (m.step, m.value, m.timestamp) for m in mlflow.get_metric_history(run, key)
        )
        assert history(fast) == history(plain)
    assert not log_metrics_fast(mlflow, fast, points[:3])  # duplicates: the caller falls back to log_batch
