"""The newer-optimizer section (optlab.reports.modern): the sentence computed from the verdicts says whether
a newer optimizer beats both baselines, on small synthetic frames covering each outcome."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from optlab.reports import modern, verdict_tables

SEEDS = list(range(100, 110))


def frame(test: dict[str, float], spread: dict[str, float] | None = None, val: dict[str, float] | None = None):
    """Reported runs of one workload: per strategy a mean final test accuracy (validation = the same unless
    given), seed noise of the given spread (shared across strategies, plus a little of each's own)."""
    rng = np.random.default_rng(0)
    shared = rng.normal(0, 0.01, len(SEEDS))
    spread = spread or {}
    rows = []
    for strategy, mean in test.items():
        own = rng.normal(0, spread.get(strategy, 0.001), len(SEEDS))
        for i, seed in enumerate(SEEDS):
            acc = mean + shared[i] + own[i]
            rows.append(
                {
                    "workload": "w",
                    "label": strategy,
                    "strategy": strategy,
                    "seed": seed,
                    "status": "FINISHED",
                    "final_test_accuracy": acc,
                    "final_val_accuracy": (val or test)[strategy] + shared[i] + own[i],
                }
            )
    return pd.DataFrame(rows)


def outcome_of(runs):
    result = verdict_tables.accuracy_verdicts(runs)
    newer, baselines = modern.split_labels(runs)
    assert baselines == ["adamw", "momentum"] and all(n.startswith("po:") for n in newer)
    return result, modern.outcome(result, newer, baselines)


def test_a_newer_optimizer_better_than_both_baselines():
    result, found = outcome_of(frame({"po:soap": 0.95, "po:lion": 0.90, "adamw": 0.91, "momentum": 0.88}))
    assert result.best == "po:soap"
    assert found.outcome == "better"
    assert "po:soap is best on validation and adamw and momentum are both worse than it" in found.sentence
    assert found.sentence.startswith("Workload w, newer vs adamw and momentum on final test accuracy:")


def test_every_newer_optimizer_worse_than_a_baseline():
    result, found = outcome_of(frame({"po:soap": 0.90, "po:lion": 0.89, "adamw": 0.95, "momentum": 0.93}))
    assert result.best == "adamw"
    assert found.outcome == "worse"
    assert "every newer optimizer is worse" in found.sentence and "po:lion and po:soap are all worse" in found.sentence


def test_a_newer_optimizer_equivalent_to_the_best_baseline_is_not_called_better():
    runs = frame(
        {"po:soap": 0.950, "po:lion": 0.90, "adamw": 0.9495, "momentum": 0.90},
        val={"po:soap": 0.951, "po:lion": 0.90, "adamw": 0.9495, "momentum": 0.90},
    )
    result, found = outcome_of(runs)
    assert result.best == "po:soap" and result.tiers["adamw"] == "equivalent to best"
    assert found.outcome == "equivalent"
    assert "no newer optimizer is better than both" in found.sentence and "adamw is equivalent to it" in found.sentence
    assert "worse than po:soap: po:lion" in found.sentence


def test_equivalent_when_the_best_is_a_baseline():
    runs = frame(
        {"po:soap": 0.9495, "po:lion": 0.90, "adamw": 0.950, "momentum": 0.90},
        val={"po:soap": 0.9495, "po:lion": 0.90, "adamw": 0.951, "momentum": 0.90},
    )
    result, found = outcome_of(runs)
    assert result.best == "adamw" and found.outcome == "equivalent"
    assert "po:soap is equivalent to it" in found.sentence


def test_noisy_seeds_leave_it_undecided():
    runs = frame(
        {"po:soap": 0.95, "po:lion": 0.94, "adamw": 0.945, "momentum": 0.85},
        spread={"po:soap": 0.03, "po:lion": 0.03, "adamw": 0.03},
        val={"po:soap": 1.05, "po:lion": 0.94, "adamw": 0.945, "momentum": 0.85},  # soap: clearly best there
    )
    result, found = outcome_of(runs)
    assert result.best == "po:soap" and result.tiers["adamw"] == "undecided"
    assert found.outcome == "undecided" and "adamw is neither shown worse nor equivalent" in found.sentence


@pytest.mark.parametrize("best", ["po:soap", "adamw"])
def test_the_outcome_table_has_one_row_per_workload_with_the_tiers(best):
    means = {"po:soap": 0.90, "po:lion": 0.89, "adamw": 0.90, "momentum": 0.88}
    means[best] = 0.96
    _, found = outcome_of(frame(means))
    table = modern.outcome_table([found])
    assert list(table["best on validation"]) == [best]
    assert table["newer better than both baselines?"].iloc[0] == ("better" if best.startswith("po:") else "worse")
    assert "po:lion" in table["newer: worse"].iloc[0]


def test_a_users_workload_is_described_by_its_file_not_by_the_default_hidden_layers():
    from optlab.reports import workloads

    runs = pd.DataFrame(
        {"dataset": ["mnist5k"] * 2, "hidden": ["16,16"] * 2, "activation": ["sigmoid"] * 2, "epochs": [2, 2]}
    )
    assert "hidden 16,16 sigmoid" in workloads.describe(runs)
    text = workloads.describe(runs.assign(workload_ref="examples/cnn_mnist5k.py:tiny_cnn"))
    assert "the network of examples/cnn_mnist5k.py:tiny_cnn" in text and "hidden" not in text
