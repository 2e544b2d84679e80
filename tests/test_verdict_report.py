"""Verdicts in the report on a synthetic store with known numbers: the tier table, the sentences and
verdicts.csv / verdicts.json (`optlab report --all-pairs --json`); two sweeps that use one workload name
kept apart; the trials count after a widened grid."""

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


@pytest.mark.slow
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


# ---- two sweeps that use one workload name -----------------------------------------------------------------
# experiments/convergence.toml and experiments/modern.toml both have `mnist5k-relu-ce`: their runs are never
# pooled. verdicts.csv names each row's sweep, the report sections that read several sweeps keep each sweep's
# workload apart, and a tuning grid is read back from its own sweep only. Also: the trials a strategy had on a
# workload count every trial, when a later sweep widened the grid.
# Validation accuracy at each cost; the last point's is replaced by the run's final value (below 0.95).
REACHED = [(0.0, 0.1), (1.0, 0.96), (2.0, 0.97)]  # reaches the target 0.95 at 1 gradient equivalent
SLOW = [(0.0, 0.1), (1.0, 0.5), (2.0, 0.6), (3.0, 0.96), (4.0, 0.97)]  # reaches it at 3


def _tuning(experiment: str, strategy: str, grid: list[float], best: float, trials: int) -> None:
    for lr in grid:
        for seed in (0, 1):
            add_run(
                experiment,
                "w",
                strategy,
                seed,
                REACHED,
                0.95,
                role="tuning",
                trial=f"lr={lr:g}",
                trials=trials,
                selected="true" if lr == best else "false",
                final={"val_accuracy": 0.9 if lr == best else 0.8},
            )


@pytest.fixture(scope="module")
def two_sweeps():
    """Sweeps 'conv2' and 'mod2', each with a workload 'w' and the strategies adam and sgd on seeds
    100-109: adam is 5 points better on conv2 and 5 points worse on mod2, and reaches the target faster on
    conv2 only. Pooled, the two would cancel. adam's lr grid is 0.001-0.1 on conv2 (0.01 selected: inside)
    and 0.1-1 on mod2 (0.1 selected: at the low edge)."""
    rng = np.random.default_rng(1)
    base = rng.normal(0.85, 0.01, len(SEEDS))
    finals = {
        "conv2": {"adam": base + 0.05, "sgd": base + rng.normal(0, 0.003, len(SEEDS))},
        "mod2": {"adam": base + rng.normal(0, 0.003, len(SEEDS)), "sgd": base + 0.05},
    }
    selected = {"conv2": {"adam": 0.01, "sgd": 0.1}, "mod2": {"adam": 0.1, "sgd": 0.1}}
    grids = {"conv2": {"adam": [0.001, 0.01, 0.1], "sgd": [0.01, 0.1, 1.0]}, "mod2": {"adam": [0.1, 1.0]}}
    for experiment, by_strategy in finals.items():
        for strategy, values in by_strategy.items():
            grid = grids[experiment].get(strategy, [selected[experiment][strategy]])
            _tuning(experiment, strategy, grid, selected[experiment][strategy], len(grid))
            fast = (experiment == "conv2") == (strategy == "adam")
            for seed, value in zip(SEEDS, values):
                add_run(
                    experiment,
                    "w",
                    strategy,
                    seed,
                    REACHED if fast else SLOW,
                    0.95,
                    trial=f"lr={selected[experiment][strategy]:g}",
                    trials=len(grid),
                    final={"test_accuracy": value, "val_accuracy": value},
                )
    return finals


def test_verdicts_csv_names_the_sweep_of_every_row_and_never_pools_two_sweeps(two_sweeps, tmp_path):
    from optlab.analysis.verdicts import COLUMNS
    from optlab.reports import verdict_tables
    from optlab.reports.load import Store

    results = verdict_tables.collect(Store(progress=False), ("conv2", "mod2"))
    (csv, as_json) = verdict_tables.write(results, tmp_path, as_json=True)
    table = pd.read_csv(csv)
    assert list(table.columns) == ["scope", *COLUMNS] and "experiment" in COLUMNS
    assert set(table["workload"]) == {"w"}  # the workload keeps its name; the sweep is its own column
    accuracy = table[table["metric"] == "test_accuracy"].set_index("experiment")
    assert list(accuracy.index) == ["conv2", "mod2"]
    conv, mod = accuracy.loc["conv2"], accuracy.loc["mod2"]
    assert (conv["a"], conv["b"], conv["verdict"], conv["n"]) == ("sgd", "adam", "worse", len(SEEDS))
    assert (mod["a"], mod["b"], mod["verdict"], mod["n"]) == ("adam", "sgd", "worse", len(SEEDS))
    own = two_sweeps["conv2"]
    assert conv["mean_diff"] == pytest.approx(np.mean(own["sgd"] - own["adam"]))
    timed = table[table["metric"] == "time_to_target"].set_index("experiment")
    assert timed.loc["conv2", "b"] == "adam" and timed.loc["mod2", "b"] == "sgd"
    assert {r["experiment"] for r in pd.read_json(as_json).to_dict("records")} == {"conv2", "mod2"}


def test_gathering_two_sweeps_keeps_their_workloads_apart_and_refuses_a_pooled_comparison(two_sweeps):
    from optlab.reports import verdict_tables, workloads
    from optlab.reports.load import Store

    runs, _ = workloads.gather(Store(progress=False), ("conv2", "mod2"))
    assert workloads.ordered(runs) == ["w (sweep conv2)", "w (sweep mod2)"]
    for name, experiment in (("w (sweep conv2)", "conv2"), ("w (sweep mod2)", "mod2")):
        mine = runs[runs["workload"] == name]
        assert set(mine["experiment"]) == {experiment} and len(mine) == 2 * len(SEEDS)
        verdict = verdict_tables.accuracy_verdicts(mine)
        assert verdict.experiment == experiment and set(verdict.rows["experiment"]) == {experiment}
    # a selection's grid and trials come from its own sweep: mod2's adam sits at the low edge of [0.1, 1]
    trials, _ = workloads.gather(Store(progress=False), ("conv2", "mod2"), include_tuning=True)
    selection = workloads.selection_table(runs[runs["workload"] == "w (sweep mod2)"], trials)
    assert "lowest" in selection.loc["adam", "edge"] and selection.loc["adam", "trials"] == 2
    pooled = runs.assign(workload="w")
    with pytest.raises(ValueError, match="pools runs of the sweeps conv2, mod2"):
        verdict_tables.accuracy_verdicts(pooled)
    one, _ = workloads.gather(Store(progress=False), ("mod2",))
    assert set(one["workload"]) == {"w"}  # one sweep: names as the sweep file has them


def test_time_to_target_shows_each_sweeps_workload_with_its_own_verdict_and_profile_per_sweep(two_sweeps):
    from optlab.reports import target
    from optlab.reports.load import Store
    from optlab.reports.model import Note

    computed = target.compute(Store(progress=False), ("conv2", "mod2"))
    assert list(computed.tables) == ["w (sweep conv2)", "w (sweep mod2)"]
    assert computed.verdicts["w (sweep conv2)"].best == "adam" and computed.verdicts["w (sweep mod2)"].best == "sgd"
    conv = computed.tables["w (sweep conv2)"][0].set_index("strategy")
    assert conv.loc["adam", "reached"] == f"{len(SEEDS)}/{len(SEEDS)}"
    assert conv.loc["adam", "tuning trials"] == "3" and conv.loc["sgd", "tuning trials"] == "3"
    mod = computed.tables["w (sweep mod2)"][0].set_index("strategy")
    assert mod.loc["adam", "tuning trials"] == "2" and mod.loc["sgd", "tuning trials"] == "1"
    section = target.build(Store(progress=False), ("conv2", "mod2"))
    headings = [b.text for b in section.blocks if isinstance(b, Note) and b.kind == "heading"]
    assert headings == ["Workload w (sweep conv2)", "Workload w (sweep mod2)"]


def test_sensitivity_reads_each_selections_grid_from_its_own_sweep(two_sweeps):
    from optlab.reports import sensitivity
    from optlab.reports.load import Store
    from optlab.reports.model import Note, Table

    section = sensitivity.build(Store(progress=False), ("conv2", "mod2"))
    headings = [b.text for b in section.blocks if isinstance(b, Note) and b.kind == "heading"]
    assert headings == ["Workload w (sweep conv2)", "Workload w (sweep mod2)"]
    edges = [b for b in section.blocks if isinstance(b, Table) and b.caption.startswith("Selections at the edge")]
    flagged = edges[0].frame
    # mod2's adam at 0.1, the lowest of its grid [0.1, 1]; pooled with conv2's grid it would sit inside
    adam = flagged[flagged["group"] == "w: strategy=adam"]
    assert list(adam["workload"]) == ["w (sweep mod2)"] and "lowest" in adam["flag"].iloc[0]


def test_the_trials_column_counts_every_trial_after_a_grid_was_widened():
    """The modern sweep's first pass tuned adamw on 3 learning rates and its reruns were tagged with 3
    trials; a later pass widened the grid by one value and kept the selection, so the reruns were not
    redone. The report counts 4 trials."""
    from optlab.reports import modern, target, workloads
    from optlab.reports.load import Store

    rng = np.random.default_rng(2)
    for strategy, shift in (("adamw", 0.0), ("po:lion", -0.05)):
        _tuning("modern", strategy, [0.001, 0.003, 0.01], 0.003, trials=3)
        if strategy == "adamw":
            _tuning("modern", strategy, [0.03], 0.003, trials=4)  # the widened grid's new value
        for seed in SEEDS:
            value = 0.9 + shift + rng.normal(0, 0.005)
            add_run(
                "modern",
                "w",
                strategy,
                seed,
                REACHED,
                0.95,
                trial="lr=0.003",
                trials=3,
                final={"test_accuracy": value, "val_accuracy": value},
            )
    store = Store(progress=False)
    runs, trials = modern.results(store)
    assert set(runs["trials"]) == {3}  # what the reruns' tags say
    selection = workloads.selection_table(runs, trials)
    assert selection.loc["adamw", "trials"] == 4 and selection.loc["po:lion", "trials"] == 3
    ((result, _),) = modern.workload_outcomes(runs, trials)
    table = result.table.set_index("strategy")
    assert table.loc["adamw", "trials"] == "4" and table.loc["po:lion", "trials"] == "3"
    ttt = target.compute(store, ("modern",)).tables["w"][0].set_index("strategy")
    assert ttt.loc["adamw", "tuning trials"] == "4"
