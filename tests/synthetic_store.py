"""Synthetic MLflow runs with known numbers (no training): reported reruns and tuning trials tagged as
the sweeps tag them, with evaluation histories chosen by the test. For report tests that need exact,
hand-computable values."""

from __future__ import annotations

import time

from optlab.tracking.store import client as make_client
from optlab.tracking.store import ensure_experiment


def add_run(
    experiment: str,
    workload: str,
    strategy: str,
    seed: int,
    curve: list[tuple[float, float]],
    target: float,
    role: str = "rerun",
    status: str = "FINISHED",
    params: dict | None = None,
    final: dict | None = None,
    group: str | None = None,
    trial: str = "lr=0.1",
    trials: int = 3,
    selected: str = "true",
    timing: str = "alone",
    budget: dict | None = None,
    tags: dict | None = None,
) -> str:
    """One run whose evaluation points are `curve` = [(gradient_equivalents, val_accuracy), ...]; wall time
    and steps are set to 10x and 100x the gradient equivalents, epochs equal to them."""
    from mlflow.entities import Metric, Param

    client = make_client()
    experiment_id = ensure_experiment(client, experiment)
    tags = {
        "optlab.sweep": experiment,
        "optlab.role": role,
        "optlab.workload": workload,
        "optlab.workload_hash": workload,
        "optlab.strategy": strategy,
        "optlab.family": "first-order",
        "optlab.group": group or f"{workload}: strategy={strategy}",
        "optlab.trial": trial,
        "optlab.trials": str(trials),
        "optlab.selected": selected,
        "optlab.timing": timing,
        "optlab.split": "3500/500/1000",
        **(tags or {}),
    }
    run = client.create_run(experiment_id, tags=tags)
    run_id = run.info.run_id
    values = {
        "strategy": strategy,
        "seed": seed,
        "target": target,
        "dataset": "mnist5k",
        "hidden": "16,16",
        "activation": "sigmoid",
        "cost": "cross_entropy",
        "lr": float(trial.split("=")[1]) if "=" in trial else "",
        **(budget or {"epochs": 5}),
        **(params or {}),
    }
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in values.items()])
    stamp = int(time.time() * 1000)
    metrics = []
    for work, acc in curve:
        step = int(round(work * 100))
        point = {
            "val_accuracy": acc,
            "test_accuracy": acc - 0.01,
            "train_loss": 1.0 - acc,
            "train_accuracy": acc,
            "val_loss": 1.0 - acc,
            "gradient_equivalents": work,
            "epoch": work,
            "wall_time": work * 10,
            "samples_seen": work * 3500,
            "evaluations": step,
            "gradient_evaluations": step,
        }
        metrics += [Metric(k, float(v), stamp, step) for k, v in point.items()]
    for key, value in (final or {}).items():
        metrics.append(Metric(key, float(value), stamp + 1, int(round(curve[-1][0] * 100))))
    client.log_batch(run_id, metrics=metrics)
    client.set_terminated(run_id, status)
    return run_id
