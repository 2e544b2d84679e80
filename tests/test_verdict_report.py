"""Verdicts in the report on a synthetic store with known numbers: the tier table, the sentences and
verdicts.csv / verdicts.json (`optlab report --all-pairs --json`)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from synthetic_store import add_run

SEEDS = list(range(100, 110))
CURVE = [(0.0, 0.1), (1.0, 0.5), (2.0, 0.6)]  # never reaches the target 0.95: time to target is censored


@pytest.fixture(scope="module", autouse=True)
def home(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPTLAB_HOME", str(tmp_path_factory.mktemp("home")))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        yield


@pytest.fixture(scope="module")
def finals():
    """adam best on validation; twin within 0.2 points of it on test; weak 10 points below; a margin of
    0.01 declared for the workload (the default too), 0.5 for time to target."""
    rng = np.random.default_rng(0)
    base = rng.normal(0.90, 0.01, len(SEEDS))
    test = {"adam": base, "twin": base + rng.normal(0, 0.002, len(SEEDS)), "weak": base - 0.1}
    val = {"adam": base + 0.01, "twin": base, "weak": base - 0.1}
    margins = json.dumps({"test_accuracy": 0.01, "time_to_target": 0.5})
    for strategy in test:
        for i, seed in enumerate(SEEDS):
            add_run(
                "vr",
                "w",
                strategy,
                seed,
                CURVE,
                0.95,
                tags={"optlab.margins": margins},
                final={"test_accuracy": test[strategy][i], "val_accuracy": val[strategy][i]},
            )
    return test


def test_verdicts_csv_columns_and_values(finals, tmp_path):
    from optlab.analysis.verdicts import COLUMNS
    from optlab.reports import verdict_tables
    from optlab.reports.load import Store

    results = verdict_tables.collect(Store(progress=False), ("vr",))
    (csv,) = verdict_tables.write(results, tmp_path)
    table = pd.read_csv(csv)
    assert list(table.columns) == ["scope", *COLUMNS]
    acc = table[table["metric"] == "test_accuracy"].set_index("a")
    assert set(acc["b"]) == {"adam"} and set(acc.index) == {"twin", "weak"}
    assert acc.loc["weak", "verdict"] == "worse" and acc.loc["twin", "verdict"] == "equivalent"
    assert acc.loc["weak", "mean_diff"] == pytest.approx(np.mean(finals["weak"] - finals["adam"]))
    assert acc.loc["weak", "n"] == len(SEEDS) and acc.loc["weak", "margin"] == pytest.approx(0.01)
    assert acc.loc["weak", "ci_low"] <= acc.loc["weak", "mean_diff"] <= acc.loc["weak", "ci_high"]
    assert acc.loc["weak", "test"] == "wilcoxon" and acc.loc["weak", "p_adjusted"] <= 0.05
    # time to target: nobody reached 0.95, every value censored -> never "equivalent", even at margin 0.5
    time = table[table["metric"] == "time_to_target"]
    assert len(time) == 2 and set(time["verdict"]) == {"undecided"} and time["censored"].all()


def test_tier_table_groups_by_verdict_and_sentences_state_no_order_within_a_tier(finals):
    from optlab.reports import verdict_tables
    from optlab.reports.load import Store
    from optlab.reports.workloads import gather

    runs, _ = gather(Store(progress=False), ("vr",))
    result = verdict_tables.accuracy_verdicts(runs)
    assert result.best == "adam" and result.declared
    table = verdict_tables.tier_table(result)
    assert list(table["tier"]) == ["best", "equivalent to best", "worse"]
    assert list(table["strategy"]) == ["adam", "twin", "weak"]
    import re

    interval = r"^[+-]\S+ \[-?\d[\d.]*(×10\S+)?, -?\d[\d.]*(×10\S+)?\]$"  # a difference and its interval, as numbers
    compared = table[table["strategy"] != "adam"]["difference [95 % CI]"]
    assert all(re.match(interval, cell) for cell in compared), list(compared)
    text = " ".join(verdict_tables.sentences(result))
    assert "twin and adam are equivalent within 0.01" in text and "weak is worse than adam" in text
    assert "1 equivalent, 1 worse and 0 undecided of 2 comparisons" in text


def test_report_cli_writes_verdicts_for_all_pairs_and_json(finals, tmp_path, capsys):
    from optlab.cli import main

    out = tmp_path / "out"
    assert main(["report", "-e", "vr", "--all-pairs", "--json", "--out", str(out), "-q"]) in (0, 1)
    printed = capsys.readouterr().out
    assert f"report: {out / 'verdicts.csv'}" in printed
    table = pd.read_csv(out / "verdicts.csv")
    pairs = table[(table["scope"] == "all pairs") & (table["metric"] == "test_accuracy")]
    assert len(pairs) == 3  # 3 strategies: every pair once
    records = json.loads((out / "verdicts.json").read_text())
    assert len(records) == len(table) and {r["verdict"] for r in records} <= {
        "better",
        "worse",
        "equivalent",
        "undecided",
    }


def test_tuning_effort_chart_and_table_from_the_trials(tmp_path):
    from optlab.analysis.tuning_effort import expected_best
    from optlab.reports import sensitivity
    from optlab.reports.chart import Chart
    from optlab.reports.load import Store
    from optlab.reports.model import Table

    scores = {"adam": {0.001: 0.5, 0.01: 0.8, 0.1: 0.7}, "sgd": {0.1: 0.6, 1.0: 0.65}}
    for strategy, grid in scores.items():
        for lr, acc in grid.items():
            for seed, shift in ((0, -0.01), (1, 0.01)):
                add_run(
                    "te",
                    "w",
                    strategy,
                    seed,
                    CURVE,
                    0.95,
                    role="tuning",
                    trial=f"lr={lr}",
                    trials=len(grid),
                    selected="true" if acc == max(grid.values()) else "false",
                    final={"val_accuracy": acc + shift},
                )
        for seed in (100, 101):
            add_run(
                "te",
                "w",
                strategy,
                seed,
                CURVE,
                0.95,
                trial=f"lr={max(grid, key=grid.get)}",
                final={"val_accuracy": 0.7, "test_accuracy": 0.7},
            )
    section = sensitivity.build(Store(progress=False), ("te",))
    effort = [b for b in section.blocks if isinstance(b, Chart) and b.caption.startswith("Tuning effort")]
    assert len(effort) == 1
    data = effort[0].data
    adam = data[data["label"] == "adam"].sort_values("k")
    assert list(adam["k"]) == [1, 2, 3]
    assert adam["expected"].to_numpy() == pytest.approx(expected_best([0.5, 0.8, 0.7]))
    table = [b for b in section.blocks if isinstance(b, Table) and b.caption.startswith("Tuning effort")][0].frame
    row = table.set_index("strategy").loc["sgd"]
    assert row["trials"] == 2 and row["E[best] of 1"] == f"{np.mean([0.6, 0.65]):.3f}"
