"""A small but complete MLflow store for the report tests: tiny real sweeps on the digits dataset, run
exactly as `make sweep` runs the shipped experiment files — a two-workload convergence suite (tuned on
validation, rerun on fresh seeds), a batch-size study with a fixed-lr series, and a memorization study
with label noise, Gaussian inputs and two widths."""

from __future__ import annotations

from pathlib import Path

CONVERGENCE = """
name = "convergence"
[base]
dataset = "digits"
eval_every = 5
[workloads.digits-short]
hidden = [16]
activation = "relu"
epochs = 3
target = 0.8
[workloads.digits-long]
hidden = [16]
activation = "relu"
epochs = 6
target = 0.9
stop_at_target = true
[grid]
strategy = ["adam", "momentum", "gd"]
[tune]
objective = "steps_to_target"
seeds = [0]
lr = [0.1, 0.5]
[rerun]
seeds = [100, 101, 102]
[overrides.adam]
tune = { lr = [0.003, 0.03] }
"""

BATCH_SIZE = """
name = "batch_size"
[base]
dataset = "digits"
eval_every = 2
[workloads.digits-steps]
hidden = [16]
activation = "relu"
steps = 120
target = 0.7
stop_at_target = true
[grid]
strategy = ["minibatch"]
batch_size = [8, 32, 128]
[tune]
objective = "steps_to_target"
seeds = [0]
by = ["batch_size"]
lr = [0.1, 0.5]
[rerun]
seeds = [100, 101]
[series.fixed_lr]
lr = 0.1
"""

MEMORIZATION = """
name = "memorization"
[base]
dataset = "digits"
strategy = "adam"
lr = 0.01
epochs = 4
eval_every = 10
[grid]
hidden = [[16], [64]]
label_noise = [0.0, 1.0]
seed = [0, 1]
[series.gaussian]
variant = "gaussian"
label_noise = 0.0
"""


def build_store(folder: Path) -> None:
    from optlab.sweeps import load, run_sweep

    for name, text in (("convergence", CONVERGENCE), ("batch_size", BATCH_SIZE), ("memorization", MEMORIZATION)):
        path = folder / f"{name}.toml"
        path.write_text(text)
        run_sweep(load(path), progress=False)
