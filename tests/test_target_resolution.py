"""`target_resolution`: between evaluation points the validation accuracy is checked (not recorded) each
time the steps grow by a fraction, so a run's step of reaching its target is known to within that fraction;
the step it is reached at becomes an evaluation point measuring every split. Training is unchanged."""

import math

import pytest

from optlab.config import ConfigError, RunConfig
from optlab.engine import run, run_many

TRAINERS = ("reference", "stacked")
OTHERS = ("train_loss", "test_loss", "test_accuracy")
BASE = RunConfig(strategy="momentum", lr=0.1, activation="relu", dataset="digits", steps=120, eval_every=40)


def every_step(config: RunConfig, trainer: str = "reference"):
    return run(config.with_updates(eval_every=1), trainer=trainer)


def first_step_at(history, target: float) -> int:
    return next(p["step"] for p in history if p["val_accuracy"] >= target)


def a_target_between_grid_points(dense) -> float:
    """A validation accuracy first reached at a step off the grid of BASE (every 40 steps), past step 40,
    and held at the next grid point (so a run without checks sees it there)."""
    history = dense.history
    for point in history[41:]:
        step, value = point["step"], point["val_accuracy"]
        best_before = max(p["val_accuracy"] for p in history[:step])
        if step % 40 and value > best_before and history[-(-step // 40) * 40]["val_accuracy"] >= value:
            return value
    raise AssertionError("no new best between grid points")


@pytest.mark.parametrize("trainer", TRAINERS)
def test_the_step_of_reaching_the_target_is_found_between_grid_points(trainer):
    dense = every_step(BASE, trainer)
    target = a_target_between_grid_points(dense)
    truth = first_step_at(dense.history, target)
    for stop in (False, True):
        # 1/200: a check at every step up to step 200, so the step found is the true one
        config = BASE.with_updates(target=target, stop_at_target=stop, target_resolution=0.005)
        result = run(config, trainer=trainer)
        assert result.status == "FINISHED", result.reason
        assert result.steps_to_target == truth
        steps = [p["step"] for p in result.history]
        grid = [s for s in steps if s % 40 == 0]
        # the grid is untouched; the one extra point is the target's, with every split measured there
        assert sorted(set(steps) - set(grid)) == [truth]
        point = next(p for p in result.history if p["step"] == truth)
        assert set(OTHERS) <= set(point)
        assert point["val_accuracy"] == dense.history[truth]["val_accuracy"]
        if stop:
            assert steps[-1] == truth
        else:  # the checks measure, they do not train: the run ends as it would without them
            plain = run(BASE.with_updates(target=target), trainer=trainer)
            assert result.final["test_accuracy"] == plain.final["test_accuracy"]
            assert [p["val_loss"] for p in result.history if p["step"] in grid] == [
                p["val_loss"] for p in plain.history
            ]


def test_a_coarse_resolution_bounds_the_error_by_its_fraction():
    dense = every_step(BASE)
    target = a_target_between_grid_points(dense)
    truth = first_step_at(dense.history, target)
    for fraction in (0.05, 0.2, 0.5):
        result = run(BASE.with_updates(target=target, target_resolution=fraction))
        found = result.steps_to_target
        assert truth <= found
        # checks at steps s where s >= (1 + fraction) x the last check: the first one at or after the truth
        assert found <= max(truth, math.ceil((truth - 1) * (1 + fraction)))
        # without checks the target is seen only at the next grid point
        assert run(BASE.with_updates(target=target)).steps_to_target == -(-truth // 40) * 40


def test_stacked_runs_each_stop_at_their_own_step():
    configs = [BASE.with_updates(seed=s, target_resolution=0.005) for s in (0, 1, 2)]
    dense = [every_step(c) for c in configs]
    target = 0.75
    truths = [first_step_at(d.history, target) for d in dense]
    assert len(set(truths)) > 1, "the seeds reach the target at one step: pick another target"
    results = run_many([c.with_updates(target=target, stop_at_target=True) for c in configs])
    assert [r.timing for r in results] == ["batched:3"] * 3
    assert [r.steps_to_target for r in results] == truths
    assert [r.history[-1]["step"] for r in results] == truths


def test_checks_record_nothing_when_the_target_is_never_reached():
    plain = run(BASE.with_updates(target=1.0))
    checked = run(BASE.with_updates(target=1.0, target_resolution=0.01))
    assert checked.steps_to_target is None
    assert [p["step"] for p in checked.history] == [p["step"] for p in plain.history] == [0, 40, 80, 120]


@pytest.mark.parametrize("value", [0, -0.1, 1.5, math.inf])
def test_a_bad_resolution_is_refused_by_name(value):
    with pytest.raises(ConfigError, match=r"target_resolution must be a fraction in \(0, 1\]"):
        RunConfig(dataset="digits", target=0.9, target_resolution=value).validate()


def test_the_setting_is_in_the_config_hash_only_when_set():
    base = RunConfig(dataset="digits", lr=0.1, target=0.9)
    assert "target_resolution" not in base.values("evaluation")
    assert base.with_updates(target_resolution=0.02).config_hash() != base.config_hash()
    assert base.with_updates(target_resolution=0.02).workload_hash() == base.workload_hash()
