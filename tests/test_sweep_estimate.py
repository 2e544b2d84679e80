"""`make sweep-estimate` on a tiny sweep file: phases counted as the executor runs them, costs measured."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from sweep_helpers import write_spec

ROOT = Path(__file__).resolve().parents[1]


def test_estimate_counts_every_phase_and_compares_with_the_limit(tmp_path):
    path = write_spec(
        tmp_path,
        """
        [grid]
        strategy = ["minibatch", "adam"]
        [tune]
        lr = [0.1, 0.3]
        objective = "val_loss"
        seeds = [0]
        [rerun]
        seeds = [10, 11, 12, 13]
        timed_alone = 2
    """,
        name="est",
        steps=40,
    )
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "sweep_estimate.py"),
            str(path),
            "--fraction",
            "0.25",
            "--limit",
            "100000",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    row = re.search(r"\| est\.toml \| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|", done.stdout)
    # 2 strategies x 2 lr tuning trials + 2 x 4 reruns
    assert row and int(row.group(1)) == 4 + 8
    assert "within the 100000 s limit" in done.stdout
    tight = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "sweep_estimate.py"),
            str(path),
            "--fraction",
            "0.25",
            "--limit",
            "0",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert tight.returncode == 1 and "ABOVE the 0 s limit" in tight.stdout


def test_a_kind_first_measured_alone_still_gets_its_stack_share_when_batched(monkeypatch):
    import importlib.util

    from optlab.config import RunConfig

    spec = importlib.util.spec_from_file_location("sweep_estimate", ROOT / "scripts" / "sweep_estimate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # one run costs 1 s at either fraction; a stack of STACK runs costs 4 s: it shares (STACK - 4) / (STACK - 1)
    monkeypatch.setattr(module, "cpu_seconds", lambda configs: 1.0 if len(configs) == 1 else 4.0)
    costs = module.Costs(0.05, progress=False)
    config = RunConfig.from_dict({"strategy": "minibatch", "dataset": "digits", "hidden": [8], "steps": 100})
    assert costs.of(config, stackable=False) == (1.0, 0.0)  # the timed reruns, alone
    alone, shared = costs.of(config.with_updates(seed=7), stackable=True)  # the other reruns of that kind, stacked
    assert alone == 1.0 and shared == (module.STACK - 4.0) / (module.STACK - 1)


def test_a_kind_that_refuses_a_small_budget_is_measured_on_a_larger_one(monkeypatch):
    import importlib.util

    from optlab.config import RunConfig
    from optlab.errors import ConfigError

    spec = importlib.util.spec_from_file_location("sweep_estimate", ROOT / "scripts" / "sweep_estimate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    measured = []

    def cpu_seconds(configs):  # like newton_cg: below 2 epochs there is not one step to take
        epochs = configs[0].epochs
        if epochs < 2:
            raise ConfigError(f"epoch budget {epochs} is less than one step")
        measured.append(epochs)
        return epochs

    monkeypatch.setattr(module, "cpu_seconds", cpu_seconds)
    config = RunConfig.from_dict({"strategy": "gd", "dataset": "digits", "hidden": [8], "epochs": 20})
    alone, _ = module.Costs(0.03, progress=False).of(config, stackable=False)
    assert measured and min(measured) >= 2  # measured at a fraction the strategy accepts
    assert alone == 20  # the cost per epoch extrapolated to the whole budget (1 s per epoch here)
