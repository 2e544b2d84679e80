"""Verdicts (optlab.analysis.verdicts) against scipy / statsmodels, on constructed data on both sides of
each threshold."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sstats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import ttost_paired

from optlab.analysis import verdicts as v

ACC = v.METRICS["test_accuracy"]
TIME = v.METRICS["time_to_target"]


def frame(columns: dict, seeds=None) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    return pd.DataFrame(columns, index=seeds if seeds is not None else range(100, 100 + n))


def test_a_clear_difference_is_better_and_worse_with_scipy_p_values():
    rng = np.random.default_rng(1)
    base = rng.normal(0.80, 0.01, 20)
    values = frame({"best": base + 0.05, "weak": base + rng.normal(0, 0.002, 20)})
    rows = v.comparisons(values, ACC, best="best")
    row = rows.iloc[0]
    assert (row["a"], row["b"], row["verdict"]) == ("weak", "best", "worse")
    d = values["weak"] - values["best"]
    assert row["wilcoxon_p"] == pytest.approx(sstats.wilcoxon(d).pvalue)
    assert row["t_p"] == pytest.approx(sstats.ttest_rel(values["weak"], values["best"]).pvalue)
    assert row["test"] == "wilcoxon" and row["p"] == row["wilcoxon_p"]
    assert row["mean_diff"] == pytest.approx(d.mean())
    assert row["ci_low"] < row["mean_diff"] < row["ci_high"] < 0
    assert row["wins"] == 0 and row["losses"] == 20 and row["rank_biserial"] == pytest.approx(-1.0)
    assert row["effect_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
    # seen from the other side: the better one is "better" (all pairs)
    pair = v.comparisons(values, ACC, best="best", all_pairs=True).iloc[0]
    assert (pair["a"], pair["b"], pair["verdict"]) == ("best", "weak", "better")


def test_lower_is_better_metric_turns_the_sign():
    values = frame({"fast": np.linspace(100, 120, 12), "slow": np.linspace(200, 240, 12) + np.arange(12) % 3})
    row = v.comparisons(values, TIME, best="fast").iloc[0]
    assert row["a"] == "slow" and row["verdict"] == "worse" and row["mean_diff"] > 0


def test_one_distribution_is_equivalent_at_a_wide_margin_and_undecided_at_a_tiny_one():
    rng = np.random.default_rng(7)
    a, b = rng.normal(0.9, 0.01, 20), rng.normal(0.9, 0.01, 20)
    values = frame({"a": a, "b": b})
    wide = v.comparisons(values, ACC, best="b", margin=0.02).iloc[0]
    assert wide["verdict"] == "equivalent"
    assert wide["tost_p"] == pytest.approx(ttost_paired(a, b, -0.02, 0.02)[0])
    tiny = v.comparisons(values, ACC, best="b", margin=0.0005).iloc[0]
    assert tiny["tost_p"] == pytest.approx(ttost_paired(a, b, -0.0005, 0.0005)[0]) and tiny["tost_p"] > 0.05
    assert tiny["verdict"] == "undecided"
    assert math.isfinite(tiny["seeds_needed"]) and tiny["seeds_needed"] > 20


def test_seeds_needed_matches_the_statsmodels_power_solver():
    rng = np.random.default_rng(3)
    base = rng.normal(0.8, 0.02, 6)
    values = frame({"best": base + 0.006 + rng.normal(0, 0.01, 6), "b": base, "c": base + 0.2, "d": base - 0.2})
    rows = v.comparisons(values, ACC, best="best", margin=0.001)
    row = rows[rows["a"] == "b"].iloc[0]
    assert row["verdict"] == "undecided"
    d = (values["b"] - values["best"]).to_numpy()
    dz = abs(d.mean() / d.std(ddof=1))
    expected = TTestPower().solve_power(effect_size=dz, alpha=0.05 / 3, power=0.8, alternative="two-sided")
    assert row["seeds_needed"] == math.ceil(expected)  # the equivalence route is impossible at this margin
    gap = (0.05 - abs(d.mean())) / d.std(ddof=1)
    assert v.seeds_for_equivalence(d, 0.05) == pytest.approx(
        TTestPower().solve_power(effect_size=gap, alpha=0.05, power=0.8, alternative="larger")
    )


def test_holm_is_over_the_k_minus_1_comparisons_with_the_best():
    rng = np.random.default_rng(11)
    base = rng.normal(0.8, 0.01, 8)
    values = frame(
        {
            s: base + shift + rng.normal(0, 0.01, 8)
            for s, shift in (("best", 0.0), ("b", -0.01), ("c", -0.02), ("d", 0.0), ("e", -0.05))
        }
    )
    rows = v.comparisons(values, ACC, best="best", margin=0.001)
    assert len(rows) == 4 and set(rows["b"]) == {"best"}
    assert np.allclose(rows["p_adjusted"], multipletests(rows["p"], method="holm")[1])
    every = v.comparisons(values, ACC, best="best", all_pairs=True, margin=0.001)
    assert len(every) == 10
    assert np.allclose(every["p_adjusted"], multipletests(every["p"], method="holm")[1])


def test_the_deciding_test_is_t_only_when_wilcoxon_cannot_reach_and_d_looks_normal():
    normal = np.array([0.010, 0.012, 0.009, 0.011, 0.0105])
    test, why = v.choose_test(normal, 0.05 / 4)
    assert test == "t" and "Shapiro-Wilk" in why
    skewed = np.array([0.001, 0.001, 0.0011, 0.001, 0.5])
    assert v.choose_test(skewed, 0.05 / 4)[0] == "wilcoxon"
    assert v.choose_test(np.linspace(0.01, 0.02, 20), 0.05 / 8)[0] == "wilcoxon"
    # five normal-looking pairs against the best with 4 rivals: the t-test decides, and does decide
    rng = np.random.default_rng(5)
    base = rng.normal(0.8, 0.02, 5)
    values = frame(
        {"best": base + 0.1 + rng.normal(0, 0.003, 5), **{s: base + rng.normal(0, 0.003, 5) for s in "abcd"}}
    )
    rows = v.comparisons(values, ACC, best="best")
    assert set(rows["test"]) == {"t"} and set(rows["verdict"]) == {"worse"}


def test_censored_pairs_are_never_equivalent():
    values = frame({"best": [100.0, 110, 105, 98, 102, 101], "b": [101.0, 109, 106, 99, 103, 400]})
    censored = frame({"best": [False] * 6, "b": [False] * 5 + [True]})
    row = v.comparisons(values, TIME, best="best", margin=0.5, censored=censored).iloc[0]
    assert row["censored"] and row["verdict"] != "equivalent" and row["test"] == "wilcoxon"
    plain = v.comparisons(values.assign(b=[101.0, 109, 106, 99, 103, 102]), TIME, best="best", margin=0.5).iloc[0]
    assert plain["verdict"] == "equivalent"


def test_relative_margin_is_a_fraction_of_the_references_mean():
    values = frame({"best": [100.0, 100, 100], "b": [101.0, 99, 100]})
    assert v.comparisons(values, TIME, best="best").iloc[0]["margin"] == pytest.approx(10.0)


def test_tiers_follow_the_verdicts_against_the_best():
    rows = pd.DataFrame(
        {"a": ["b", "c", "d", "e"], "b": ["best"] * 4, "verdict": ["equivalent", "worse", "undecided", "better"]}
    )
    assert v.tiers(rows, "best") == {
        "best": "best",
        "b": "equivalent to best",
        "c": "worse",
        "d": "undecided",
        "e": "best",
    }


def test_best_is_chosen_on_validation_not_on_the_compared_metric():
    validation = frame({"a": [0.90, 0.91], "b": [0.88, 0.89]})
    assert v.best_on(validation, larger_is_better=True) == "a"
    assert v.best_on(validation, larger_is_better=False) == "b"


def test_sentences_state_no_order_the_verdict_does_not_support():
    values = frame({"a": [0.9, 0.91, 0.905, 0.9, 0.902, 0.899], "best": [0.901, 0.909, 0.904, 0.902, 0.9, 0.9]})
    row = v.comparisons(values, ACC, best="best").iloc[0]
    assert row["verdict"] == "equivalent"
    text = v.verdict_text(row, ACC)
    assert "equivalent within 0.01" in text and "better" not in text and "beat" not in text
