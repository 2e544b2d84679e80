"""Writes identity_main.json: the identities (config hashes, point hashes, workload names and hashes, run
names) that the code of commit 55eee6a gave a set of configs and every experiment file. Made once with the
code stores were recorded with; tests/test_config_roles.py checks later code gives the same identities.

    .venv/bin/python tests/data/identity_snapshot.py > tests/data/identity_main.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from optlab.config import RunConfig
from optlab.sweeps import naming
from optlab.sweeps import spec as sweep_spec

ROOT = Path(__file__).resolve().parents[2]

# the experiment files' texts are kept in the snapshot: later edits of experiments/ do not move it
SWEEP_FILES = (
    "smoke.toml",
    "lessons.toml",
    "memorization.toml",
    "second_order.toml",
    "zeroth_order.toml",
    "dynamics.toml",
    "diagnostics.toml",
)
CONFIGS = [
    {},
    {"strategy": "sgd", "lr": 0.1, "seed": 3},
    {"strategy": "momentum", "momentum": 0.8, "batch_size": 64, "epochs": 3, "target": 0.9, "stop_at_target": True},
    {"strategy": "adam", "order": "sorted_by_class"},
    {"strategy": "adam", "order": "shuffled"},
    {"strategy": "adam", "init": "zeros"},
    {"strategy": "adam", "standardize": True, "train_size": 500, "dtype": "float64"},
    {"strategy": "spsa", "options": {"q": 4, "eps": 0.01}, "evaluations": 200},
    {"strategy": "gd", "hidden": [], "cost": "mse", "label_noise": 0.2, "noise_seed": 5, "variant": "gaussian"},
    {"strategy": "adam", "hidden": [512], "activation": "relu", "steps": 100, "seconds": 30.0},
    {
        "strategy": "adam",
        "probe_curvature": True,
        "diagnostics": "cheap",
        "eval_every": 5,
        "log_every": 10,
        "experiment": "other",
        "run_name": "named",
    },
    {"strategy": "lbfgs", "dataset": "rosenbrock", "dtype": "float64", "evaluations": 50},
    {"strategy": "adamw", "weight_decay": 0.01, "schedule": "cosine", "decay_rate": 0.5, "decay_every": 2.0},
]


def main() -> None:
    configs = []
    for values in CONFIGS:
        config = RunConfig.from_dict(values)
        configs.append({"values": values, "config_hash": config.config_hash(), "workload_hash": config.workload_hash()})
    sweeps = {}
    for name in SWEEP_FILES:
        text = (ROOT / "experiments" / name).read_text()
        spec = sweep_spec.parse(sweep_spec.tomllib.loads(text), name)
        names = naming.sweep_names(spec)
        sweeps[name] = {
            "text": text,
            "points": [
                {
                    "point_hash": p.point_hash,
                    "config_hash": p.config.config_hash(),
                    "workload": p.workload,
                    "workload_hash": p.tags(spec.name)["optlab.workload_hash"],
                    "group": p.group,
                    "role": p.role,
                    "name": names[p.point_hash],
                }
                for p in spec.points
            ],
        }
    json.dump({"configs": configs, "sweeps": sweeps}, sys.stdout, indent=0, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
