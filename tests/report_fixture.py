"""A small but complete MLflow store for the report tests: tiny real sweeps on the digits dataset, run
exactly as `make sweep` runs the shipped experiment files — a two-workload convergence suite (tuned on
validation, rerun on fresh seeds), a batch-size study with a fixed-lr series, and a memorization study
with label noise, Gaussian inputs and two widths, newer optimizers against AdamW and momentum, and the
sweep-more files: edge of stability (one run
diverges), per-strategy diagnostics and the lessons (a baseline and one series per change)."""

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
diagnostics = "cheap"
diagnostics_samples = 64
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


# newer optimizers (pytorch-optimizer) against the two baselines, as experiments/modern.toml runs them
MODERN = """
name = "modern"
[base]
dataset = "digits"
eval_every = 5
[workloads.digits-modern]
hidden = [16]
activation = "relu"
epochs = 2
target = 0.8
[grid]
strategy = ["adamw", "momentum", "po:lion"]
[tune]
objective = "val_loss"
seeds = [0]
lr = [0.003, 0.03]
[rerun]
seeds = [100, 101, 102]
[overrides.momentum]
tune = { lr = [0.03, 0.3] }
[overrides."po:lion"]
tune = { lr = [0.0003, 0.003] }
"""


# edge of stability: two stable step sizes, one diverging (recorded FAILED)
DYNAMICS = """
name = "dynamics"
[base]
dataset = "digits"
strategy = "gd"
hidden = [16]
activation = "relu"
steps = 30
eval_every = 5
diagnostics = "full"
[grid]
lr = [0.05, 0.2, 200.0]
seed = [0, 1]
"""

DIAGNOSTICS = """
name = "diagnostics"
[base]
dataset = "digits"
hidden = [16]
epochs = 1
eval_every = 10
diagnostics = "full"
diagnostics_samples = 64
[grid]
strategy = ["adam", "minibatch"]
seed = [0, 1]
[overrides.adam]
lr = 0.01
[overrides.minibatch]
lr = 0.3
"""

LESSONS = """
name = "lessons"
[base]
dataset = "digits"
strategy = "minibatch"
hidden = [16]
lr = 0.5
epochs = 2
eval_every = 10
[grid]
seed = [0, 1, 2]
[series.sorted_by_class]
order = "sorted_by_class"
[series.init_zeros]
init = "zeros"
[series.init_normal]
init = "normal"
[series.init_fan_in_normal]
init = "fan_in_normal"
[series.init_xavier]
init = "xavier"
[series.init_he]
init = "he"
[series.standardized]
standardize = true
[series.cosine_decay]
schedule = "cosine"
[series.mse]
cost = "mse"
"""


def build_store(folder: Path) -> None:
    from optlab.sweeps import load, run_sweep

    for name, text in (
        ("convergence", CONVERGENCE),
        ("modern", MODERN),
        ("batch_size", BATCH_SIZE),
        ("memorization", MEMORIZATION),
        ("dynamics", DYNAMICS),
        ("diagnostics", DIAGNOSTICS),
        ("lessons", LESSONS),
    ):
        path = folder / f"{name}.toml"
        path.write_text(text)
        run_sweep(load(path), progress=False)
