"""Comparisons in the report stay within a workload: a synthetic store with known numbers (no training)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from synthetic_store import add_run


def ramp(hit: float, target: float = 0.8, end: float | None = None) -> list[tuple[float, float]]:
    """A curve that first reaches `target` exactly at work `hit` (NaN hit: never), ending at `end`."""
    end = end or (hit * 1.5 if math.isfinite(hit) else 10.0)
    if not math.isfinite(hit):
        return [(0.0, 0.1), (end / 2, 0.5), (end, 0.6)]
    return [(0.0, 0.1), (hit / 2, target - 0.2), (hit, target), (end, target + 0.05)]


@pytest.fixture(scope="module", autouse=True)
def home(tmp_path_factory):
    """One store for the module (creating one costs seconds); each test writes its own experiment."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPTLAB_HOME", str(tmp_path_factory.mktemp("home")))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield


@pytest.fixture(scope="module")
def two_workloads():
    """adam and momentum on a short and a long budget; adam's times differ tenfold between them."""
    hits = {
        ("short", "adam"): [1.0, 1.2, 1.4],
        ("short", "momentum"): [2.0, 2.0, 2.0],
        ("long", "adam"): [10.0, 12.0, 14.0],
        ("long", "momentum"): [5.0, 5.0, 5.0],
    }
    for (workload, strategy), times in hits.items():
        for seed, hit in zip((100, 101, 102), times):
            add_run(
                "cmp",
                workload,
                strategy,
                seed,
                ramp(hit),
                0.8,
                budget={"epochs": 5 if workload == "short" else 50},
                final={"test_accuracy": 0.9 if strategy == "adam" else 0.8},
            )
    return hits


def test_time_to_target_and_profile_never_pool_workloads(two_workloads):
    from optlab.reports import target
    from optlab.reports.load import Store

    computed = target.compute(Store(), ("cmp",))
    assert set(computed.tables) == {"short", "long"}
    short = computed.tables["short"][0].set_index("strategy")
    long = computed.tables["long"][0].set_index("strategy")
    # Kaplan-Meier medians of each workload's own three seeds (pooling would give 6/6 and other medians)
    assert short.loc["adam", "reached"] == "3/3" and short.loc["adam", "grad. equiv."].startswith("1.2 ")
    assert long.loc["adam", "reached"] == "3/3" and long.loc["adam", "grad. equiv."].startswith("12 ")
    assert long.loc["momentum", "grad. equiv."].startswith("5 ")
    (profile,) = computed.profiles
    assert profile.workloads == ["short", "long"] or profile.workloads == ["long", "short"]
    scores = profile.scores.set_index("strategy")["score (gradient equivalents)"]
    # short: adam 1.2 (best), momentum 2 -> 5/3; long: momentum 5 (best), adam 12 -> 2.4
    assert scores["adam"] == pytest.approx(((4 - 1) + (4 - 2.4)) / 3 / 2)
    assert scores["momentum"] == pytest.approx(((4 - 5 / 3) + (4 - 1)) / 3 / 2)


def test_convergence_rows_and_bands_hold_one_workload_each(two_workloads):
    from optlab.reports import convergence, plots, workloads
    from optlab.reports.chart import Chart, Matrix
    from optlab.reports.load import Store
    from optlab.reports.model import Figure, Note, Table

    store = Store()
    section = convergence.build(store, ("cmp",))
    headings = [b.text for b in section.blocks if isinstance(b, Note) and b.kind == "heading"]
    assert sorted(headings) == ["Workload long", "Workload short"]
    tables = [b for b in section.blocks if isinstance(b, Table) and b.caption.startswith("Final values")]
    tiers = [b for b in section.blocks if isinstance(b, Table) and b.caption.startswith("Tiers on")]
    assert len(tables) == 2 and len(tiers) == 2
    for table in tables + tiers:
        frame = table.frame.set_index("strategy")
        assert {str(frame.loc[s, "seeds"]) for s in ("adam", "momentum")} <= {"3/3", "3"}  # each workload's own
        assert ("Workload short" in table.caption) != ("Workload long" in table.caption)
    figures = [b for b in section.blocks if isinstance(b, (Figure, Chart, Matrix))]
    assert all("Workload" in f.caption for f in figures)
    curves = [f for f in figures if f.caption.startswith("Train loss")]
    assert len(curves) == 2 and all("95 % bootstrap" in f.caption for f in curves)
    matrices = [f for f in figures if f.caption.startswith("Mean paired differences")]
    assert len(matrices) == 2 and all("up to 3 shared seeds" in f.caption for f in matrices)
    runs, _ = workloads.gather(store, ("cmp",))
    hist = store.history(runs)
    for workload in ("short", "long"):
        mine = hist[hist["workload"] == workload]
        bands = plots.bands(mine, "gradient_equivalents", "val_accuracy", "label")
        assert set(bands) == {"adam", "momentum"}
        assert all((band["n"] == 3).all() for band in bands.values())  # three seeds, never six


def test_profile_over_a_hand_made_three_workload_store_and_absent_strategies():
    from optlab.reports import target
    from optlab.reports.load import Store

    # w1: a 10, b 20, c 50; w2: a 20, b 10, c absent (tuning trials only, all failed); w3: a misses, b 30, c 15
    hits = {
        "w1": {"a": 10.0, "b": 20.0, "c": 50.0},
        "w2": {"a": 20.0, "b": 10.0},
        "w3": {"a": math.nan, "b": 30.0, "c": 15.0},
    }
    for workload, by_strategy in hits.items():
        for strategy, hit in by_strategy.items():
            add_run("suite", workload, strategy, 100, ramp(hit, end=60.0), 0.8)
    add_run("suite", "w2", "c", 0, ramp(math.nan), 0.8, role="tuning", status="FAILED", selected="false")
    computed = target.compute(Store(), ("suite",))
    (profile,) = computed.profiles
    scores = profile.scores.set_index("strategy")
    assert scores.loc["a", "score (gradient equivalents)"] == pytest.approx((3 + 2) / 9)
    assert scores.loc["b", "score (gradient equivalents)"] == pytest.approx((2 + 3 + 2) / 9)
    assert scores.loc["c", "score (gradient equivalents)"] == pytest.approx(3 / 9)
    assert scores.loc["c", "workloads run"] == "2/3"
    assert profile.absent == {"w2": ["c"]}
    assert computed.tables["w3"][0].set_index("strategy").loc["a", "grad. equiv."].startswith("not reached")


def test_misses_are_counted_and_wall_time_comes_only_from_runs_trained_alone():
    from optlab.reports import convergence, target
    from optlab.reports.chart import Chart
    from optlab.reports.load import Store

    for seed, hit in zip((1, 2, 3), (4.0, 6.0, math.nan)):
        add_run("mix", "w", "adam", seed, ramp(hit, end=9.0), 0.8, final={"test_accuracy": 0.9})
    for seed, hit in zip((1, 2, 3), (5.0, 5.0, 5.0)):
        add_run("mix", "w", "sgd", seed, ramp(hit, end=9.0), 0.8, timing="batched:4", final={"test_accuracy": 0.8})
    table = target.compute(Store(), ("mix",)).tables["w"][0].set_index("strategy")
    assert table.loc["adam", "reached"] == "2/3" and table.loc["adam", "grad. equiv."].startswith("6 ")
    assert table.loc["sgd", "wall s"] == "(no run trained alone)" and table.loc["sgd", "reached"] == "3/3"
    section = convergence.build(Store(), ("mix",))
    curves = [b for b in section.blocks if isinstance(b, Chart)]
    caption = " ".join(c.caption for c in curves)
    assert "Wall time is drawn from the runs trained alone only (3 trained alone, 3 batched)" in caption
    data = pd.concat([c.data for c in curves])
    wall = data[data["axis"].str.contains("wall time")]
    assert set(wall["label"]) == {"adam"} and set(data["label"]) == {"adam", "sgd"}


def test_edge_of_grid_selection_is_flagged_in_the_report():
    from optlab.reports import convergence, sensitivity
    from optlab.reports.load import Store
    from optlab.reports.model import Note

    for lr, acc in ((0.001, 0.5), (0.01, 0.7), (0.1, 0.85)):
        add_run(
            "grid",
            "w",
            "adam",
            0,
            ramp(2.0, end=3.0),
            0.8,
            role="tuning",
            trial=f"lr={lr}",
            selected="true" if lr == 0.1 else "false",
            final={"val_accuracy": acc},
        )
    for lr, acc in ((0.01, 0.6), (0.1, 0.8), (1.0, 0.7)):
        add_run(
            "grid",
            "w",
            "sgd",
            0,
            ramp(2.0, end=3.0),
            0.8,
            role="tuning",
            trial=f"lr={lr}",
            selected="true" if lr == 0.1 else "false",
            final={"val_accuracy": acc},
        )
    for seed in (100, 101):
        add_run("grid", "w", "adam", seed, ramp(2.0, end=3.0), 0.8, trial="lr=0.1", final={"test_accuracy": 0.9})
        add_run("grid", "w", "sgd", seed, ramp(2.5, end=3.0), 0.8, trial="lr=0.1", final={"test_accuracy": 0.8})
    section = convergence.build(Store(), ("grid",))
    warnings = [b.text for b in section.blocks if isinstance(b, Note) and b.kind == "warning"]
    assert any("adam" in w and "lr=0.1 is the highest value of its grid [0.001, 0.01, 0.1]" in w for w in warnings)
    assert not any("sgd" in w for w in warnings)
    sens = sensitivity.build(Store(), ("grid",))
    flagged = [b for b in sens.blocks if hasattr(b, "frame") and b.caption.startswith("Selections at the edge")][
        0
    ].frame
    assert list(flagged["group"]) == ["w: strategy=adam"]


def test_batch_size_sentence_reads_the_regimes_off_the_medians():
    import pandas as pd

    from optlab.reports.batch_size import scaling_sentence

    # steps halve per doubling up to B = 8, then fall 20 % per doubling to 32, then stay flat
    table = pd.DataFrame(
        {"batch_size": [1, 2, 4, 8, 16, 32, 64, 128], "steps": [800.0, 400.0, 200.0, 100.0, 80.0, 64.0, 62.0, 63.0]}
    )
    text = scaling_sentence(table, pd.Series({"b_simple": 40.0, "low": 30.0, "high": 60.0}))
    assert "to 100 at B = 8 (÷8 over 3 doublings, ÷2 per doubling: near-perfect scaling)" in text
    assert "then to 64 at B = 32 (÷1.2 per doubling on average: diminishing returns)" in text
    assert "Beyond B = 32 no larger batch needs 15 % fewer steps per doubling (medians 62-63): no gain." in text
    assert "B_simple = 40 [30, 60], contains that batch size" in text
    missed = scaling_sentence(table.assign(steps=[800.0, 400.0, 200.0, 100.0, 80.0, 64.0, 62.0, np.inf]))
    assert "Not reached by most seeds at B = 128." in missed


def test_batch_size_no_gain_claim_holds_for_every_neighbouring_pair_after_it():
    import pandas as pd

    from optlab.reports.batch_size import NO_GAIN, scaling_sentence, step_factors

    def claimed_flat(text):
        return float(text.split("Beyond B = ")[1].split()[0]) if "Beyond B = " in text else None

    # after B = 64 the steps fall 15.4 % (130 -> 110) and 18 % (110 -> 90) per doubling: that is a gain
    gain = pd.DataFrame({"batch_size": [8, 16, 32, 64, 128, 256], "steps": [1000.0, 500.0, 200.0, 130.0, 110.0, 90.0]})
    assert claimed_flat(scaling_sentence(gain)) is None
    # just under the threshold on both pairs: no gain, and the claim is true of every later pair
    for fall in (NO_GAIN - 0.01, NO_GAIN + 0.01):
        steps = [1000.0, 500.0, 250.0, 250.0 * (1 - fall), 250.0 * (1 - fall) ** 2]
        table = pd.DataFrame({"batch_size": [8, 16, 32, 64, 128], "steps": steps})
        flat = claimed_flat(scaling_sentence(table))
        if fall < NO_GAIN:
            assert flat == 32
            b, s = table["batch_size"].to_numpy(float), table["steps"].to_numpy(float)
            after = step_factors(b, s)[list(b).index(flat) :]
            assert (after < 1 / (1 - NO_GAIN)).all()
        else:
            assert flat is None


def test_batch_size_diminishing_returns_states_the_range_of_its_neighbouring_pairs():
    import pandas as pd

    from optlab.reports.batch_size import scaling_sentence

    # 880 -> 410 is ÷2.15 in one doubling inside a stretch whose average is ÷1.6: the sentence says both
    table = pd.DataFrame(
        {"batch_size": [1, 2, 4, 8, 16, 32, 64], "steps": [3000.0, 1600.0, 1500.0, 880.0, 410.0, 400.0, 395.0]}
    )
    text = scaling_sentence(table)
    assert "÷1.6 per doubling on average; from one batch size to the next ÷1.1 to ÷2.1 per doubling" in text


def test_one_workload_name_with_two_budgets_is_split_not_pooled():
    from synthetic_store import add_run as add

    from optlab.reports import target
    from optlab.reports.load import Store

    # the same workload name recorded under two different workload hashes (an edited experiment file)
    for seed, hit in zip((1, 2, 3), (1.0, 1.0, 1.0)):
        add("edited", "w", "adam", seed, ramp(hit), 0.8)
    for seed, hit in zip((1, 2, 3), (9.0, 9.0, 9.0)):
        run_id = add("edited", "w", "adam", seed + 10, ramp(hit), 0.8)
        from optlab.tracking.store import client

        client().set_tag(run_id, "optlab.workload_hash", "other")
    tables = target.compute(Store(), ("edited",)).tables
    assert sorted(tables) == ["w [other]", "w [w]"]
    assert tables["w [w]"][0].set_index("strategy").loc["adam", "reached"] == "3/3"
    assert tables["w [other]"][0].set_index("strategy").loc["adam", "grad. equiv."].startswith("9 ")
