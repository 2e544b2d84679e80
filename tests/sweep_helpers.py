"""Shared bits of the sweep tests: a tiny spec writer and store readers."""

from __future__ import annotations

import textwrap
from pathlib import Path

TINY_BASE = """
[base]
dataset = "digits"
hidden = [8]
activation = "relu"
steps = {steps}
eval_every = 10
"""


# minibatch and adam, lr tuned on one seed per strategy, each selection rerun on two fresh seeds
TUNED_PAIR = """
[grid]
strategy = ["minibatch", "adam"]

[tune]
lr = [0.1, 0.5]
objective = "train_loss"
seeds = [0]

[rerun]
seeds = [100, 101]

[overrides.adam.tune]
lr = [0.003, 0.03]
"""


def write_spec(
    tmp_path: Path,
    body: str,
    name: str = "tiny",
    steps: int = 20,
    filename: str | None = None,
    description: str | None = None,
) -> Path:
    path = tmp_path / (filename or f"{name}.toml")
    header = f'name = "{name}"\n' + (f'description = "{description}"\n' if description else "")
    path.write_text(header + TINY_BASE.format(steps=steps) + textwrap.dedent(body))
    return path


def sweep_runs(name: str):
    """All runs of the sweep's experiment in the current store (OPTLAB_HOME)."""
    from optlab.sweeps import resume
    from optlab.tracking.store import client

    c = client()
    experiment = c.get_experiment_by_name(name)
    if experiment is None:
        return []
    return resume.search_all(c, experiment.experiment_id, "")


def children(name: str):
    """The sweep's point runs (not its parent, not its seed-group runs)."""
    return [r for r in sweep_runs(name) if r.data.tags.get("optlab.role") not in ("parent", "group")]


def groups(name: str):
    return [r for r in sweep_runs(name) if r.data.tags.get("optlab.role") == "group"]
