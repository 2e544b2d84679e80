"""The statistics behind every comparison, checked against scipy.stats / statsmodels and by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from optlab.analysis import curves, profiles, stats
from optlab.analysis.sensitivity import edge_of_grid, sensitivity
from optlab.analysis.target import fraction_reached_by, time_to_target


# ---- bootstrap intervals ----------------------------------------------------------------------
def test_bootstrap_ci_is_scipys_bootstrap():
    x = np.random.default_rng(3).normal(10, 2, size=12)
    ours = stats.bootstrap_ci(x, resamples=2000, seed=7)
    assert stats.bootstrap_ci(x[::-1], resamples=2000, seed=7) == ours  # the data's order does not matter
    ref = sps.bootstrap((np.sort(x),), np.mean, n_resamples=2000, method="BCa", rng=np.random.default_rng(7))
    assert ours.estimate == pytest.approx(x.mean())
    assert (ours.low, ours.high) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    assert ours.n == 12


def test_bootstrap_ci_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    covered = 0
    trials = 300
    for _ in range(trials):
        sample = rng.normal(5.0, 3.0, size=30)
        ci = stats.bootstrap_ci(sample, resamples=999, seed=int(rng.integers(1 << 30)))
        covered += ci.low <= 5.0 <= ci.high
    # binomial sd at 0.95 with 300 trials is 1.3 points: 0.91-0.985 allows for BCa's small-sample bias
    assert 0.91 <= covered / trials <= 0.985, covered / trials


def test_bootstrap_edge_cases_and_band():
    assert math.isnan(stats.bootstrap_ci([]).estimate)
    one = stats.bootstrap_ci([2.0])
    assert one.estimate == 2.0 and math.isnan(one.low)
    same = stats.bootstrap_ci([3.0, 3.0, 3.0])
    assert (same.low, same.high) == (3.0, 3.0)
    m = np.random.default_rng(1).normal(size=(6, 4))
    m[:, 2] = 1.0
    mean, low, high = stats.bootstrap_band(m, resamples=999)
    assert mean == pytest.approx(m.mean(axis=0))
    assert (low[2], high[2]) == (1.0, 1.0)
    for j in (0, 1, 3):  # each column's band is that column's bootstrap interval
        ci = stats.bootstrap_ci(m[:, j], resamples=999)
        assert (low[j], high[j]) == pytest.approx((ci.low, ci.high))


# ---- paired tests ------------------------------------------------------------------------------
def test_paired_p_values_are_scipys():
    rng = np.random.default_rng(2)
    x, y = rng.normal(0, 1, 9), rng.normal(0.4, 1, 9)
    assert stats.paired_p_value(x, y, "wilcoxon") == pytest.approx(sps.wilcoxon(x, y).pvalue)
    assert stats.paired_p_value(x, y, "t") == pytest.approx(sps.ttest_rel(x, y).pvalue)
    perm = sps.permutation_test(
        (x, y),
        lambda a, b, axis: np.mean(a - b, axis=axis),
        permutation_type="samples",
        n_resamples=np.inf,
        vectorized=True,
    )
    assert stats.paired_p_value(x, y, "permutation") == pytest.approx(perm.pvalue)
    # five seeds, one strategy better on all of them: the exact two-sided Wilcoxon floor
    assert stats.paired_p_value([1, 2, 3, 4, 5], [0, 0, 0, 0, 0]) == pytest.approx(0.0625)
    assert stats.min_p_value(5) == 0.0625
    assert stats.paired_p_value([1, 2], [1, 2]) == 1.0


def test_holm_matches_the_hand_computed_step_down():
    # sorted p: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> monotone: 0.06
    adjusted = stats.holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_rank_biserial():
    # differences 1, 2, -3: ranks 1, 2, 3 -> (1 + 2 - 3) / 6 = 0
    assert stats.rank_biserial([1, 2, 0], [0, 0, 3]) == 0.0
    assert stats.rank_biserial([2, 3], [1, 1]) == 1.0


# ---- time to target with censoring -------------------------------------------------------------
def test_time_to_target_counts_misses_instead_of_dropping_them():
    # 5 runs, 3 reach the target at 1, 2, 3; 2 stop at the budget 5 without reaching it
    ttt = time_to_target([1.0, 2.0, 3.0, np.nan, np.nan], [5, 5, 5, 5, 5])
    assert (ttt.n, ttt.reached) == (5, 3) and ttt.fraction == 0.6
    assert ttt.median == 3.0  # Kaplan-Meier: S(3) = 2/5 <= 1/2; dropping the misses would say 2
    km = sps.ecdf(sps.CensoredData(uncensored=[1.0, 2.0, 3.0], right=[5.0, 5.0]))
    assert fraction_reached_by([1.0, 2.0, 3.0, np.nan, np.nan], [5] * 5, [0.5, 2.5, 4]) == pytest.approx(
        1 - km.sf.evaluate([0.5, 2.5, 4])
    )
    # three misses of five: fewer than half reach it, the median is unbounded
    assert math.isinf(time_to_target([1.0, 2.0, np.nan, np.nan, np.nan], [5] * 5).median)
    assert math.isinf(time_to_target([np.nan, np.nan], [5, 5]).median)
    # a failed run never reaches it, even with a recorded hit before it diverged
    failed = time_to_target([1.0, 2.0, 2.5], [5, 5, 5], failed=[False, False, True])
    assert failed.reached == 2 and failed.median == 2.0


def test_time_to_target_interval_brackets_the_median():
    hits = [10.0, 12.0, 13.0, 15.0, 18.0, 20.0, 25.0]
    ttt = time_to_target(hits, [30] * 7)
    assert ttt.median == 15.0 and ttt.low <= 15.0 <= ttt.high <= 25.0  # all reached: the interval closes
    assert "15 [" in ttt.text()


# ---- performance profiles ----------------------------------------------------------------------
def test_profile_on_a_hand_made_three_workload_fixture():
    costs = pd.DataFrame(
        {"a": [10.0, 20.0, np.inf], "b": [20.0, 10.0, 30.0], "c": [50.0, np.nan, 15.0]}, index=["w1", "w2", "w3"]
    )
    r = profiles.ratios(costs)
    # by hand: best per workload 10, 10, 15
    assert r.loc["w1"].tolist() == [1.0, 2.0, 5.0]
    assert r.loc["w2"].tolist() == [2.0, 1.0, math.inf]  # c absent on w2: infinite, not dropped
    assert r.loc["w3"].tolist() == [math.inf, 2.0, 1.0]
    curve = profiles.rho(r, [1.0, 2.0, 4.0])
    assert curve.loc[1.0].tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3])
    assert curve.loc[2.0].tolist() == pytest.approx([2 / 3, 1.0, 1 / 3])
    assert curve.loc[4.0].tolist() == pytest.approx([2 / 3, 1.0, 1 / 3])
    # score = mean over workloads of (4 - max(r, 1)) / 3 for r <= 4
    assert profiles.score(r).tolist() == pytest.approx([(3 + 2) / 9, (2 + 3 + 2) / 9, 3 / 9])
    # the exact score equals the area under the step function
    fine = profiles.rho(r, np.linspace(1, 4, 300001))
    assert profiles.score(r).tolist() == pytest.approx(fine.mean().tolist(), abs=1e-4)


def test_profile_of_a_workload_nobody_finished_counts_for_nobody():
    costs = pd.DataFrame({"a": [1.0, np.inf], "b": [2.0, np.inf]}, index=["w1", "w2"])
    assert profiles.ratios(costs).loc["w2"].tolist() == [math.inf, math.inf]
    assert profiles.score(profiles.ratios(costs)).tolist() == pytest.approx([0.5, (4 - 2) / 3 / 2])


# ---- sensitivity and the edge of the grid ------------------------------------------------------
def test_edge_of_grid_flags_the_ends_only():
    grid = {"lr": [0.01, 0.1, 0.3, 0.6]}
    assert [f.side for f in edge_of_grid({"lr": 0.6}, grid)] == ["highest"]
    assert [f.side for f in edge_of_grid({"lr": 0.01}, grid)] == ["lowest"]
    assert edge_of_grid({"lr": 0.1}, grid) == []
    assert edge_of_grid({"lr": 0.1}, {"lr": [0.1]})[0].side == "only"
    assert edge_of_grid({"schedule": "cosine"}, {"schedule": ["constant", "cosine"]}) == []
    assert "0.6 is the highest value of its grid [0.01, 0.1, 0.3, 0.6]" in edge_of_grid({"lr": 0.6}, grid)[0].text()


def test_sensitivity_keeps_every_trial_and_counts_failures():
    trials = pd.DataFrame({"strategy": ["s"] * 5, "lr": [0.1, 0.1, 1.0, 1.0, 1.0], "val": [0.8, 0.9, 0.5, np.nan, 0.7]})
    table = sensitivity(trials, ["strategy"], "lr", "val").set_index("lr")
    assert table.loc[0.1, "mean"] == pytest.approx(0.85) and table.loc[1.0, "mean"] == pytest.approx(0.6)
    assert table.loc[1.0, "finite"] == 2 and table.loc[1.0, "trials"] == 3


# ---- curves on a common grid -------------------------------------------------------------------
def test_band_interpolates_each_run_onto_the_grid_they_all_cover():
    runs = [
        (np.array([0.0, 1.0, 2.0, 4.0]), np.array([0.0, 1.0, 2.0, 4.0])),
        (np.array([0.5, 3.0]), np.array([1.0, 6.0])),
    ]  # y = 2x - 0 ... on [0.5, 3]
    b = curves.band(runs, points=6)
    assert b["x"].iloc[0] == 0.5 and b["x"].iloc[-1] == 3.0  # the common range only
    first = np.interp(b["x"], runs[0][0], runs[0][1])
    second = np.interp(b["x"], runs[1][0], runs[1][1])
    assert b["mean"].to_numpy() == pytest.approx((first + second) / 2)
    assert (b["n"] == 2).all()
    assert (
        curves.common_grid(
            [(np.array([0.0, 1.0]), np.array([1.0, 1.0])), (np.array([2.0, 3.0]), np.array([1.0, 1.0]))]
        ).size
        == 0
    )


# ---- gradient noise scale ----------------------------------------------------------------------
def test_noise_sample_recovers_g2_and_trace_from_their_expectations():
    from optlab.analysis.noise_scale import NoiseSample

    g2, trace = 0.5, 40.0  # E|g_B|^2 = |G|^2 + tr(Sigma) / B
    sample = NoiseSample(4, 256, g2 + trace / 4, g2 + trace / 256)
    assert sample.g2 == pytest.approx(g2) and sample.trace == pytest.approx(trace)
    assert sample.b_simple == pytest.approx(80.0)
    assert math.isnan(NoiseSample(4, 16, 1.0, 2.0).b_simple)  # norm growing with B: no valid estimate


def test_two_batch_estimate_at_the_same_parameters_matches_per_sample_gradients():
    import torch

    from optlab.analysis import noise_scale
    from optlab.config import RunConfig
    from optlab.problem import build_problem

    problem = build_problem(RunConfig(dataset="digits", hidden=(16,), activation="relu"))
    w = problem.init_params(0)
    g2, trace = noise_scale.exact(problem, w)
    sample = noise_scale.measure(problem, w, 8, 256, draws=200, generator=torch.Generator().manual_seed(0))
    assert sample.trace == pytest.approx(trace, rel=0.1)
    assert sample.g2 == pytest.approx(g2, rel=0.2)
    assert sample.b_simple == pytest.approx(trace / g2, rel=0.2)


def test_b_simple_interval_resamples_whole_seeds_with_scipy():
    from optlab.analysis.noise_scale import b_simple_ci

    rng = np.random.default_rng(5)
    per_seed = {s: [(1.0 + rng.normal(0, 0.1), 50 + rng.normal(0, 5)) for _ in range(3)] for s in range(6)}
    estimate, low, high = b_simple_ci(per_seed, resamples=2000)
    g2 = np.array([np.mean([m[0] for m in v]) for v in per_seed.values()])
    tr = np.array([np.mean([m[1] for m in v]) for v in per_seed.values()])
    assert estimate == pytest.approx(tr.mean() / g2.mean())
    ref = sps.bootstrap(
        (tr, g2),
        lambda t, g, axis: t.mean(axis=axis) / g.mean(axis=axis),
        paired=True,
        vectorized=True,
        n_resamples=2000,
        method="percentile",
        rng=np.random.default_rng(0),
    )
    assert (low, high) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    assert low < estimate < high


def test_time_to_target_upper_bound_opens_when_misses_stop_before_the_last_hit():
    # wall time: three runs reach the target at 0.35, 0.5, 0.718 s; two miss it but stop (out of budget)
    # at 0.3 and 0.4 s, before the last hit. They never reach it: censored at the end of the window, the
    # interval stays open above as on the step axis of the same runs (not closed at the last hit).
    wall = time_to_target([0.35, 0.5, 0.718, np.nan, np.nan], [0.35, 0.5, 0.718, 0.3, 0.4])
    steps = time_to_target([10.0, 20.0, 30.0, np.nan, np.nan], [10, 20, 30, 100, 100])
    assert math.isinf(steps.high) and math.isinf(wall.high)
    assert wall.text().endswith(", ∞]") and wall.median == 0.718
    km = sps.ecdf(sps.CensoredData(uncensored=[0.35, 0.5, 0.718], right=[0.718, 0.718]))
    assert 1 - km.sf.evaluate(0.718) == pytest.approx(0.6)  # the curve never falls to 0: the misses are at risk


def test_time_to_target_upper_bound_closes_when_every_run_reaches_it():
    wall = time_to_target([0.35, 0.5, 0.718, 0.6, 0.4], [0.35, 0.5, 0.718, 0.6, 0.4])
    assert wall.reached == 5 and wall.median == 0.5 and wall.high == 0.718


def test_time_to_target_table_wall_time_follows_the_row():
    from optlab.reports.target import ttt_table

    hit = pd.DataFrame(
        {
            "strategy": ["sgd"] * 5,
            "family": ["first-order"] * 5,
            "timing": ["alone"] * 5,
            "failed": [False] * 5,
            "hit_step": [10.0, 20.0, 30.0, np.nan, np.nan],
            "stop_step": [10.0, 20.0, 30.0, 100.0, 100.0],
            "hit_wall_time": [0.35, 0.5, 0.718, np.nan, np.nan],
            "stop_wall_time": [0.35, 0.5, 0.718, 0.3, 0.4],
        }
    )
    for axis in ("epoch", "gradient_equivalents", "evaluations"):
        hit[f"hit_{axis}"] = hit[f"stop_{axis}"] = np.nan
    table, _ = ttt_table(hit)
    row = table.iloc[0]
    assert row["reached"] == "3/5" and row["steps"].endswith(", ∞]") and row["wall s"].endswith(", ∞]")
    # wall time over fewer runs than the row (two trained batched): the cell says over which
    hit.loc[[3, 4], "timing"] = "batched"
    row = ttt_table(hit)[0].iloc[0]
    assert row["wall s"].startswith("0.5 [") and "(3 of 5 runs, trained alone)" in row["wall s"]


def test_numbers_are_written_out_not_in_exponent_notation():
    from optlab.analysis.numbers import significant

    assert [significant(v) for v in (1000, 999.6, 0.718, 0.00025, 13002, -0.0023)] == [
        "1000",
        "1000",
        "0.718",
        "0.00025",
        "13000",
        "-0.0023",
    ]
    assert significant(1.7e8, 2) == "1.7×10⁸" and significant(2e-6, 2) == "2×10⁻⁶"
    assert significant(0.5, sign=True) == "+0.5" and significant(math.inf) == "∞"
    # a column with the same value on every seed: no interval to show, and no "1e+03 [1e+03, 1e+03]"
    assert stats.bootstrap_ci([1000.0, 1000.0, 1000.0]).text() == "1000 (no spread over 3 seeds)"
    assert time_to_target([1000.0, 1000.0, 1000.0], [1000.0] * 3).text() == "1000 [1000, 1000]"
