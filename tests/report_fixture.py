"""A small but complete MLflow store for the report tests: tiny real runs on the digits dataset,
tagged as the sweeps tag them (convergence, batch_size with lr tuning and a fixed-lr series,
memorization with label noise, Gaussian inputs and two widths)."""

from __future__ import annotations

from optlab.engine import run
from optlab.tracking import RunRecorder

BASE = {"dataset": "digits", "hidden": [16], "eval_every": 5}


def _run(experiment: str, config: dict, tags: dict) -> object:
    config = {**BASE, **config, "experiment": experiment}
    return run(config, recorder=RunRecorder(experiment=experiment),
               extra_tags={"optlab.sweep": experiment, **tags})


def build_store() -> None:
    for strategy, lr in (("adam", 0.01), ("momentum", 0.1), ("gd", 0.5)):
        for seed in (0, 1):
            _run("convergence", {"strategy": strategy, "lr": lr, "seed": seed, "epochs": 3, "target": 0.8,
                                 "eval_every": 1 if strategy == "gd" else 5},
                 {"optlab.role": "point"})
    for batch in (8, 32, 128):
        results = {}
        for lr in (0.1, 0.5):
            results[lr] = _run("batch_size", {"strategy": "minibatch", "batch_size": batch, "lr": lr, "epochs": 2,
                                              "target": 0.7, "stop_at_target": True, "eval_every": 2},
                               {"optlab.role": "tuning", "optlab.group": f"batch_size={batch}"})
        steps = {lr: r.steps_to_target if r.steps_to_target is not None else 10 ** 9 for lr, r in results.items()}
        best = min(steps, key=steps.get)
        from optlab.tracking.store import client
        client().set_tag(results[best].run_id, "optlab.selected", "true")
        _run("batch_size", {"strategy": "minibatch", "batch_size": batch, "lr": 0.1, "epochs": 2, "target": 0.7,
                            "eval_every": 2}, {"optlab.role": "point", "optlab.series": "fixed_lr"})
    for hidden in ([16], [64]):
        for noise, variant in ((0.0, "none"), (1.0, "none"), (0.0, "gaussian")):
            _run("memorization", {"strategy": "adam", "lr": 0.01, "hidden": hidden, "label_noise": noise,
                                  "variant": variant, "epochs": 4, "eval_every": 10},
                 {"optlab.role": "point"})
    for lr in (0.05, 0.2, 200.0):                 # edge of stability: two stable step sizes, one diverging
        for seed in (0, 1):
            _run("dynamics", {"strategy": "gd", "activation": "relu", "lr": lr, "seed": seed, "steps": 30,
                              "eval_every": 5, "diagnostics": "full"}, {"optlab.role": "point"})
    for strategy, lr in (("adam", 0.01), ("minibatch", 0.3)):
        for seed in (0, 1):
            _run("diagnostics", {"strategy": strategy, "lr": lr, "seed": seed, "epochs": 1, "eval_every": 10,
                                 "diagnostics": "full", "diagnostics_samples": 64}, {"optlab.role": "point"})
    lessons = {None: {}, "sorted_by_class": {"order": "sorted_by_class"}, "init_zeros": {"init": "zeros"},
               "init_normal": {"init": "normal"}, "init_fan_in_normal": {"init": "fan_in_normal"},
               "init_xavier": {"init": "xavier"}, "init_he": {"init": "he"}, "standardized": {"standardize": True},
               "cosine_decay": {"schedule": "cosine"}, "mse": {"cost": "mse"}}
    for series, change in lessons.items():
        for seed in (0, 1, 2):
            tags = {"optlab.role": "point", **({"optlab.series": series} if series else {})}
            _run("lessons", {"strategy": "minibatch", "lr": 0.5, "seed": seed, "epochs": 2, "eval_every": 10,
                             **change}, tags)
