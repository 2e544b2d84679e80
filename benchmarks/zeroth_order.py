"""Reproduce the issue's reference numbers for the gradient-free strategies (untracked runs).

    OMP_NUM_THREADS=1 python benchmarks/zeroth_order.py            # all rows
    OMP_NUM_THREADS=1 python benchmarks/zeroth_order.py OnePlusOne  # rows whose label contains it

784-16-16-10 sigmoid net on mnist5k, cross-entropy. Prints one line per run: final test accuracy,
training wall time (evaluation excluded), function evaluations and gradient-equivalents.
"""

from __future__ import annotations

import sys

from optlab.engine import run

BASE = {"dataset": "mnist5k", "hidden": [16, 16], "activation": "sigmoid", "cost": "cross_entropy", "seed": 0}
FULL = {"sigma": 0.05, "objective": "full"}
ROWS = [
    ("ng:OnePlusOne full, 3000 evals", {"strategy": "ng:OnePlusOne", "evaluations": 3000, "options": FULL}),
    ("ng:DiagonalCMA full, 3000 evals", {"strategy": "ng:DiagonalCMA", "evaluations": 3000, "options": FULL}),
    (
        "ng:OnePlusOne full, 3000 evals, 8 workers batched",
        {"strategy": "ng:OnePlusOne", "evaluations": 3000, "options": {**FULL, "num_workers": 8}},
    ),
    ("ng:OnePlusOne full, 10 s", {"strategy": "ng:OnePlusOne", "seconds": 10, "options": FULL}),
    (
        "ng:OnePlusOne full, 8 workers batched, 10 s",
        {"strategy": "ng:OnePlusOne", "seconds": 10, "options": {**FULL, "num_workers": 8}},
    ),
    (
        "ng:OnePlusOne batch 100, 10 s",
        {"strategy": "ng:OnePlusOne", "seconds": 10, "options": {"sigma": 0.05, "objective": "batch"}},
    ),
    (
        "ng:OnePlusOne batch 100, 8 workers, 10 s",
        {
            "strategy": "ng:OnePlusOne",
            "seconds": 10,
            "options": {"sigma": 0.05, "objective": "batch", "num_workers": 8},
        },
    ),
    ("spsa q=1 B=256 lr=0.1, 3000 evals", {"strategy": "spsa", "lr": 0.1, "evaluations": 3000}),
    ("spsa q=1 B=256 lr=0.1, 10 s", {"strategy": "spsa", "lr": 0.1, "seconds": 10}),
    ("sgd lr=0.1, 3000 evals", {"strategy": "sgd", "lr": 0.1, "evaluations": 3000}),
    ("adam B=32, 3000 evals", {"strategy": "adam", "batch_size": 32, "evaluations": 3000}),
    ("adam B=32, 10 s", {"strategy": "adam", "batch_size": 32, "seconds": 10}),
]


def main(selection: list[str]) -> None:
    for label, values in ROWS:
        if selection and not any(s in label for s in selection):
            continue
        r = run({**BASE, **values})
        f = r.final
        print(
            f"{label:<48} test acc {f['test_accuracy']:.3f}  train loss {f['train_loss']:.3f}  "
            f"{r.wall_time:6.1f} s  {r.counters['function_evals']:>7} evals  "
            f"{f['gradient_equivalents']:8.1f} grad-equiv  {r.status}",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
