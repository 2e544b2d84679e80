"""`full_eval_every`: between full evaluation points a run measures validation only (the target, early stops
and divergence still see every point); the first and last points and the target's point measure all three."""

import math
from types import SimpleNamespace

import pandas as pd
import pytest
from user_workload_files import BLOBS

from optlab.config import RunConfig
from optlab.engine import prepare, run
from optlab.engine.loop import DIVERGENCE_FACTOR
from optlab.engine.runner import group_key
from optlab.engine.stacked_trainer import StackedTrainer
from optlab.engine.trainers import StrategyTrainer
from optlab.problem import stacked
from optlab.problem.problem import NetworkProblem
from optlab.reports import plots
from optlab.sweeps import seed_groups

TRAINERS = ("reference", "stacked")
OTHERS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")


def full_steps(result) -> list[int]:
    return [p["step"] for p in result.history if "train_loss" in p]


@pytest.mark.parametrize("trainer", TRAINERS)
def test_points_between_full_ones_record_validation_only(trainer):
    # 9 points (steps 0, 5, ..., 40): points 0, 3, 6 are full, and the last (point 8, step 40)
    config = RunConfig(strategy="momentum", lr=0.1, dataset="digits", steps=40, eval_every=5, full_eval_every=3)
    result = run(config, trainer=trainer)
    assert result.status == "FINISHED", result.reason
    assert [p["step"] for p in result.history] == list(range(0, 41, 5))
    assert full_steps(result) == [0, 15, 30, 40]
    for point in result.history:
        assert {"val_loss", "val_accuracy"} <= set(point)
        has = [k in point for k in OTHERS]
        assert all(has) if point["step"] in (0, 15, 30, 40) else not any(has), point
    assert set(OTHERS) <= set(result.final)
    # the evaluation points measure, they do not train: validation is the same as with every point full
    dense = run(config.with_updates(full_eval_every=1), trainer=trainer)
    assert [p["val_loss"] for p in result.history] == [p["val_loss"] for p in dense.history]
    assert all(set(OTHERS) <= set(p) for p in dense.history)
    assert result.final["test_accuracy"] == dense.final["test_accuracy"]


@pytest.mark.parametrize("trainer", TRAINERS)
def test_a_validation_only_point_computes_only_the_validation_set(trainer, monkeypatch):
    sizes = []
    if trainer == "stacked":
        original = stacked.loss_accuracy
        monkeypatch.setattr(
            stacked,
            "loss_accuracy",
            lambda spec, cost, layers, x, y: sizes.append(len(x)) or original(spec, cost, layers, x, y),
        )
    else:
        original = NetworkProblem._loss_accuracy
        monkeypatch.setattr(
            NetworkProblem, "_loss_accuracy", lambda self, w, x, y: sizes.append(len(x)) or original(self, w, x, y)
        )
    prep = prepare(RunConfig(strategy="sgd", lr=0.1, dataset="digits", steps=3))
    made = StackedTrainer([prep]) if trainer == "stacked" else StrategyTrainer(prep)
    full = made.evaluate()
    data = prep.problem.dataset
    assert sizes == [data.n_train, data.n_val, data.n_test]
    sizes.clear()
    only = made.evaluate(("val",))
    assert sizes == [data.n_val]
    assert only == [{"val_loss": full[0]["val_loss"], "val_accuracy": full[0]["val_accuracy"]}]


@pytest.mark.parametrize("trainer", TRAINERS)
def test_the_point_a_target_is_reached_measures_all_three(trainer):
    config = RunConfig(strategy="momentum", lr=0.1, dataset="digits", steps=60, eval_every=2)
    dense = run(config, trainer=trainer)
    accuracy = [p["val_accuracy"] for p in dense.history]
    # a point between full ones (every 4th is full) where validation accuracy reaches a new high
    at = next(i for i in range(1, len(accuracy) - 1) if i % 4 and accuracy[i] > max(accuracy[:i]))
    target = accuracy[at]
    for stop in (False, True):
        result = run(config.with_updates(full_eval_every=4, target=target, stop_at_target=stop), trainer=trainer)
        assert result.steps_to_target == dense.history[at]["step"]
        point = next(p for p in result.history if p["step"] == result.steps_to_target)
        assert set(OTHERS) <= set(point)
        assert point["test_accuracy"] == dense.history[at]["test_accuracy"]
        end = result.history[-1]["step"]
        expected = {*range(0, end + 1, 8), result.steps_to_target, end}
        assert set(full_steps(result)) == expected
        assert (result.history[-1]["step"] == result.steps_to_target) == stop


def test_the_default_measures_all_three_at_every_point():
    result = run(RunConfig(strategy="adam", dataset="digits", steps=20, eval_every=2))
    assert len(result.history) == 11
    assert all(set(OTHERS) | {"val_loss", "val_accuracy"} <= set(p) for p in result.history)


@pytest.mark.parametrize("trainer", TRAINERS)
def test_a_divergence_between_full_points_is_caught_on_the_validation_loss(trainer):
    # sgd at lr 1e30: the losses reach ~1e30, finite, by step 10 (a validation-only point here)
    config = RunConfig(strategy="sgd", lr=1e30, dataset="digits", steps=40, eval_every=10, full_eval_every=100)
    result = run(config, trainer=trainer)
    assert result.status == "FAILED"
    assert result.reason.startswith("diverged: validation loss ")
    assert f"exceeds {DIVERGENCE_FACTOR:g} x its initial value" in result.reason
    assert result.steps == 10
    last = result.history[-1]
    assert last["val_loss"] > DIVERGENCE_FACTOR * result.history[0]["val_loss"]
    assert set(OTHERS) <= set(last)  # the point a run diverges at measures all three


def test_the_setting_is_in_the_config_hash_only_when_set():
    base = RunConfig(dataset="digits", lr=0.1)
    assert "full_eval_every" not in base.values("evaluation")
    assert base.with_updates(full_eval_every=1).config_hash() == base.config_hash()
    assert base.with_updates(full_eval_every=5).config_hash() != base.config_hash()
    assert base.with_updates(full_eval_every=5).workload_hash() == base.workload_hash()


@pytest.mark.parametrize("trainer", TRAINERS)
def test_the_diagnostics_follow_the_full_points_and_the_noise_probe_its_own_schedule(trainer):
    # the diagnostics measure the training set at full points only; the noise-scale probe keeps its doubling
    # schedule (step 0, then the first point at or after steps 10, 20, 40)
    config = RunConfig(
        strategy="momentum",
        lr=0.1,
        dataset="digits",
        steps=40,
        eval_every=5,
        full_eval_every=3,
        diagnostics="cheap",
        probe_noise_scale=True,
    )
    result = run(config, trainer=trainer)
    assert result.status == "FINISHED", result.reason
    diagnosed = [p["step"] for p in result.history if any(k.startswith("diag/") for k in p)]
    assert diagnosed == full_steps(result) == [0, 15, 30, 40]
    assert [p["step"] for p in result.history if "noise_g2" in p] == [0, 10, 20, 40]


def sparse_histories():
    """Two runs evaluated at steps 0..10: validation at every step, the training loss at 0, 5 and 10."""
    histories, runs = {}, []
    for run_id, scale in (("a", 1.0), ("b", 2.0)):
        runs.append(SimpleNamespace(info=SimpleNamespace(run_id=run_id)))
        histories[(run_id, "gradient_equivalents")] = {s: float(s) for s in range(11)}
        histories[(run_id, "val_loss")] = {s: scale * (11 - s) for s in range(11)}
        histories[(run_id, "train_loss")] = {s: scale * (10 - s) for s in (0, 5, 10)}
    return histories, runs


def test_seed_group_mean_curves_cover_sparse_training_curves_end_to_end():
    histories, runs = sparse_histories()
    curves = seed_groups.mean_curves(histories, runs)
    train = [v for key, _, v in curves if key == "train_loss"]
    val = [v for key, _, v in curves if key == "val_loss"]
    assert len(train) == len(val) == seed_groups.GRID_POINTS
    assert train[0] == pytest.approx(1.5 * 10) and train[-1] == pytest.approx(0.0)  # first and last: full points
    assert val[0] == pytest.approx(1.5 * 11) and val[-1] == pytest.approx(1.5)


def test_report_bands_span_the_whole_run_when_training_points_are_sparse():
    histories, _ = sparse_histories()
    rows = [
        {
            "run_id": r,
            "label": "adam",
            "step": s,
            "epoch": x,
            "train_loss": histories[(r, "train_loss")].get(s, math.nan),
        }
        for (r, key), points in histories.items()
        if key == "gradient_equivalents"
        for s, x in points.items()
    ]
    band = plots.bands(pd.DataFrame(rows), "epoch", "train_loss", "label")["adam"]
    assert band["x"].iloc[0] == 0.0 and band["x"].iloc[-1] == 10.0
    assert band["mean"].notna().all()
    assert band["mean"].iloc[0] == pytest.approx(15.0) and band["mean"].iloc[-1] == pytest.approx(0.0)


def test_a_users_workload_measures_validation_only_between_full_points(tmp_path):
    path = tmp_path / "wl.py"
    path.write_text(BLOBS)
    config = {"workload": f"{path}:blobs", "strategy": "adam", "lr": 0.05, "steps": 12, "batch_size": 16}
    result = run({**config, "eval_every": 2, "full_eval_every": 4})
    assert result.status == "FINISHED", result.reason
    assert full_steps(result) == [0, 8, 12]
    assert all("val_accuracy" in p for p in result.history)
    assert not any(k in p for p in result.history if p["step"] in (2, 4, 6, 10) for k in OTHERS)


def test_runs_with_another_full_eval_every_never_share_a_stacked_program():
    config = RunConfig(strategy="momentum", lr=0.1, dataset="digits", steps=10)
    same, other = prepare(config.with_updates(seed=1)), prepare(config.with_updates(seed=2, full_eval_every=3))
    assert group_key(prepare(config)) == group_key(same) != group_key(other)
