import math

import pytest
import torch

from optlab.config import RunConfig
from optlab.engine import prepare, run
from optlab.strategies import registry

FIRST_ORDER = ["gd", "sgd", "minibatch", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad"]


def test_every_first_order_strategy_is_registered():
    names = {cls.name for cls in registry.available() if cls.family == "first-order"}
    assert set(FIRST_ORDER) <= names


@pytest.mark.parametrize("strategy", FIRST_ORDER)
def test_every_first_order_strategy_lowers_the_training_loss_on_mnist5k(strategy):
    lr = {"gd": 2.0, "minibatch": 0.5}.get(strategy)
    steps = 1000 if strategy == "sgd" else 300  # one sample per step: a sigmoid net's plateau lasts longer
    result = run(RunConfig(strategy=strategy, lr=lr, steps=steps, eval_every=steps))
    assert result.status == "FINISHED"
    first, last = result.history[0], result.history[-1]
    assert last["train_loss"] < first["train_loss"] - 0.05, (first["train_loss"], last["train_loss"])


def test_same_seed_and_config_give_identical_metrics():
    config = RunConfig(strategy="momentum", dataset="digits", steps=120, eval_every=40, seed=7)
    a, b = run(config), run(config)
    strip = lambda h: [{k: v for k, v in p.items() if k != "wall_time"} for p in h]
    assert strip(a.history) == strip(b.history)
    assert torch.equal(a.params, b.params)
    c = run(config.with_updates(seed=8))
    assert strip(c.history) != strip(a.history)


def test_budget_in_epochs_steps_and_evaluations():
    epochs = run(RunConfig(strategy="minibatch", dataset="digits", batch_size=100, epochs=2))
    assert epochs.counters["samples_seen"] >= 2 * 1257 and epochs.steps == 2 * math.ceil(1257 / 100)
    steps = run(RunConfig(strategy="adam", dataset="digits", steps=17))
    assert steps.steps == 17
    evals = run(RunConfig(strategy="adam", dataset="digits", evaluations=25))
    assert evals.counters["function_evals"] == 25


def test_target_records_steps_and_time_and_can_stop_the_run():
    config = RunConfig(strategy="adam", dataset="digits", steps=600, eval_every=10, target=0.5)
    result = run(config)
    assert result.steps_to_target is not None and result.steps_to_target % 10 == 0
    reached = [p for p in result.history if p["val_accuracy"] >= 0.5]  # the target is a validation accuracy
    assert reached[0]["step"] == result.steps_to_target
    stopped = run(config.with_updates(stop_at_target=True))
    assert stopped.steps == result.steps_to_target


def test_a_diverging_run_is_failed_with_its_reason():
    result = run(RunConfig(strategy="gd", dataset="rosenbrock", lr=1.0, steps=100))
    assert result.status == "FAILED"
    assert "diverged" in result.reason and "step" in result.reason


def test_schedules_change_the_learning_rate():
    base = RunConfig(strategy="minibatch", dataset="digits", batch_size=100, lr=1.0, epochs=4, log_every=1)
    prepared = prepare(base.with_updates(schedule="step", decay_every=2.0, decay_rate=0.1))
    cls = prepared.strategy_cls
    strategy = cls(prepared.problem, prepared.problem.init_params(0), prepared.config, prepared.plan)
    lrs = [strategy.step()["lr"] for _ in range(prepared.plan.max_steps)]
    per_epoch = math.ceil(1257 / 100)
    assert lrs[0] == 1.0 and lrs[2 * per_epoch - 1] == 1.0 and abs(lrs[2 * per_epoch] - 0.1) < 1e-12
    for schedule in ("exponential", "cosine"):
        prepared = prepare(base.with_updates(schedule=schedule, decay_rate=0.5))
        s = cls(prepared.problem, prepared.problem.init_params(0), prepared.config, prepared.plan)
        seen = [s.step()["lr"] for _ in range(prepared.plan.max_steps)]
        assert seen[0] == 1.0 and all(b <= a for a, b in zip(seen, seen[1:])) and seen[-1] < 0.2


def test_zero_init_never_takes_off_while_fan_in_init_does():
    zero = run(RunConfig(strategy="adam", dataset="digits", init="zeros", steps=200))
    good = run(RunConfig(strategy="adam", dataset="digits", steps=200))
    assert good.final["train_accuracy"] > zero.final["train_accuracy"] + 0.3
