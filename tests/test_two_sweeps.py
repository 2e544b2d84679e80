"""Two sweeps that use one workload name (experiments/convergence.toml and experiments/modern.toml both have
`mnist5k-relu-ce`) are never pooled: verdicts.csv names each row's sweep, the report sections that read
several sweeps keep each sweep's workload apart, and a tuning grid is read back from its own sweep only.
Also: the trials a strategy had on a workload count every trial, when a later sweep widened the grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from synthetic_store import add_run

SEEDS = list(range(100, 110))
# validation accuracy at each cost; the last point's is replaced by the run's final value (below 0.95)
CURVE = [(0.0, 0.1), (1.0, 0.96), (2.0, 0.97)]  # reaches the target 0.95 at 1 gradient equivalent
SLOW = [(0.0, 0.1), (1.0, 0.5), (2.0, 0.6), (3.0, 0.96), (4.0, 0.97)]  # reaches it at 3


@pytest.fixture(scope="module", autouse=True)
def home(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPTLAB_HOME", str(tmp_path_factory.mktemp("home")))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        yield


def _tuning(experiment: str, strategy: str, grid: list[float], best: float, trials: int) -> None:
    for lr in grid:
        for seed in (0, 1):
            add_run(
                experiment,
                "w",
                strategy,
                seed,
                CURVE,
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
                    CURVE if fast else SLOW,
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
                CURVE,
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
