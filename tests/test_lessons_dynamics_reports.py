"""The computations behind the Lessons and Dynamics sections, on frames with known answers: the paired
test is scipy's, each verdict follows the numbers, the edge-of-stability table and sentence follow the curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wilcoxon

from optlab.reports import dynamics, lessons

ORDER = lessons.LESSONS[0]  # shuffled (recommended, higher is better) vs sorted_by_class
SCHEDULE = lessons.LESSONS[3]  # cosine (recommended, lower is better) vs constant


def values(conditions: dict[str, list[float]]) -> pd.DataFrame:
    rows = [
        {"run_id": f"{c}{s}", "condition": c, "seed": s, "value": v}
        for c, seeds in conditions.items()
        for s, v in enumerate(seeds)
    ]
    return pd.DataFrame(rows)


def test_the_paired_test_is_scipys_wilcoxon_on_the_seed_differences():
    good = [0.9, 0.88, 0.91, 0.87, 0.9, 0.89, 0.92, 0.9]
    bad = [0.2, 0.3, 0.15, 0.5, 0.95, 0.1, 0.2, 0.3]
    table = lessons.compare(values({"shuffled": good, "sorted by class": bad}), ORDER).set_index("series")
    row = table.loc["sorted_by_class"]
    assert row["p"] == pytest.approx(wilcoxon(np.subtract(good, bad)).pvalue)
    assert row["wins"] == 7 and row["paired"] == 8 and row["first_better"]
    assert table.loc[lessons.BASELINE, "mean"] == pytest.approx(np.mean(good))


@pytest.mark.parametrize(
    "cosine,constant,expected",
    [
        ([0.1] * 8, [0.2 + 0.01 * i for i in range(8)], "as the lecture says (cosine decay is better in 8 of 8 seeds"),
        ([0.3] * 8, [0.2 + 0.01 * i for i in range(8)], "the opposite of the lecture's claim"),
        ([0.1, 0.3, 0.1, 0.3, 0.1, 0.3, 0.1, 0.3], [0.2] * 8, "not conclusively"),
        ([0.1, 0.2, 0.1, 0.1, 0.1, 0.3], [0.2, 0.1, 0.2, 0.2, 0.2, 0.2], "p cannot go below 0.0312"),
    ],
)
def test_each_verdict_follows_the_numbers(cosine, constant, expected):
    table = lessons.compare(values({"cosine decay": cosine, "constant": constant}), SCHEDULE)
    text = lessons.sentence(table, SCHEDULE)
    assert expected in text, text
    assert text.startswith("Lecture: a decaying learning rate helps at the end.")


def test_zero_init_takes_off_only_above_twice_chance():
    init = lessons.LESSONS[1]
    frame = values(
        {
            init.baseline_label: [0.9] * 4,
            "zeros": [0.11, 0.1, 0.12, 0.1],
            "N(0, 1)": [0.8] * 4,
            "N(0, 1/fan_in) (LeCun)": [0.9] * 4,
            "Xavier": [0.91] * 4,
            "He": [0.9] * 4,
        }
    )
    text = lessons.sentence(lessons.compare(frame, init), init, chance=0.1, symmetry=(4, 4))
    assert "Zero init never takes off" in text and "identical at the end in 4 of 4 runs" in text
    assert "Xavier 0.91 [0.91, 0.91] (better than the baseline in 4 of 4 seeds" in text
    assert "not significant at 0.05 after Holm" in text  # 4 seeds cannot reach p < 0.05


def test_holm_runs_over_the_lessons_comparisons_and_decides_the_verdict():
    from statsmodels.stats.multitest import multipletests

    init = lessons.LESSONS[1]
    rng = np.random.default_rng(0)
    base = 0.9 + 0.01 * rng.standard_normal(8)
    frame = values(
        {
            init.baseline_label: base,
            "zeros": base - 0.5,
            "N(0, 1)": base - 0.01 * np.arange(1, 9),
            "N(0, 1/fan_in) (LeCun)": base + 0.001 * rng.standard_normal(8),
            "Xavier": base + 0.002,
            "He": base - 0.0005 * np.arange(8),
        }
    )
    table = lessons.compare(frame, init)
    tested = table[table["p"].notna()]
    assert len(tested) == 5
    assert tested["p_holm"].to_numpy() == pytest.approx(multipletests(tested["p"], method="holm")[1])
    zeros = table.set_index("series").loc["init_zeros"]
    assert zeros["p"] == pytest.approx(wilcoxon(base - (base - 0.5)).pvalue)
    text = lessons.sentence(table, init)
    assert f"Holm {zeros['p_holm']:.3g}" in text
    assert ("as the lecture says" in text) == (zeros["p_holm"] < lessons.ALPHA)


def runs_frame(changes: dict[str, dict]) -> pd.DataFrame:
    rows = []
    for series, change in changes.items():
        for seed in range(3):
            rows.append(
                {
                    "run_id": f"{series}{seed}",
                    "series": "" if series == "baseline" else series,
                    "seed": seed,
                    "strategy": "minibatch",
                    "lr": 1.0,
                    "init": "fan_in_uniform",
                    "order": "shuffled",
                    "epochs": 10,
                    "workload_hash": "w1",
                    **change,
                }
            )
    return pd.DataFrame(rows)


def test_a_lesson_compares_only_runs_that_differ_in_its_own_setting():
    order, init = lessons.LESSONS[0], lessons.LESSONS[1]
    good = lessons.lesson_runs(runs_frame({"baseline": {}, "sorted_by_class": {"order": "sorted_by_class"}}), order)
    assert lessons.comparable(good, order) is None
    other_lr = lessons.lesson_runs(
        runs_frame({"baseline": {}, "sorted_by_class": {"order": "sorted_by_class", "lr": 0.5}}), order
    )
    assert "differs from the baseline in lr" in lessons.comparable(other_lr, order)
    mixed = runs_frame({"baseline": {}, "sorted_by_class": {"order": "sorted_by_class"}})
    mixed.loc[0, "lr"] = 0.3
    assert "baseline mixes configurations (lr vary" in lessons.comparable(lessons.lesson_runs(mixed, order), order)
    two_workloads = runs_frame({"baseline": {}, "sorted_by_class": {"order": "sorted_by_class", "workload_hash": "w2"}})
    assert "2 workloads" in lessons.comparable(lessons.lesson_runs(two_workloads, order), order)
    # init is part of the workload: its series may sit on another workload, differing in init alone
    zeros = runs_frame({"baseline": {}, "init_zeros": {"init": "zeros", "workload_hash": "w2"}})
    assert lessons.comparable(lessons.lesson_runs(zeros, init), init) is None


def stability_inputs():
    """eta = 0.1 rises to 2/eta = 20 and stays; eta = 0.05 levels off at 19; eta = 30 diverges at step 3."""
    steps = np.arange(0, 501, 10)
    runs, evaluations, losses = [], [], []
    curves = {0.05: 19.0 * (1 - np.exp(-steps / 60)) + 1, 0.1: np.minimum(20.0, 1 + steps / 5.0)}
    for lr, sharp in curves.items():
        run_id = f"r{lr}"
        runs.append({"run_id": run_id, "lr": lr, "seed": 0, "status": "FINISHED", "failure_reason": ""})
        evaluations.append(
            pd.DataFrame(
                {
                    "run_id": run_id,
                    "lr": lr,
                    "seed": 0,
                    "step": steps,
                    "sharpness": sharp,
                    "alpha": 0.9,
                    "train_loss": np.linspace(2.3, 0.2, len(steps)),
                }
            )
        )
        loss = np.linspace(2.3, 0.2, 500)
        loss[100::50] *= 1.5  # ten steps where the loss rises
        losses.append(pd.DataFrame({"run_id": run_id, "lr": lr, "seed": 0, "step": np.arange(1, 501), "loss": loss}))
    runs.append(
        {
            "run_id": "bad",
            "lr": 30.0,
            "seed": 0,
            "status": "FAILED",
            "failure_reason": "diverged: train loss 456 exceeds 100 x its initial value 2.3 at step 3",
        }
    )
    evaluations.append(
        pd.DataFrame(
            {
                "run_id": "bad",
                "lr": 30.0,
                "seed": 0,
                "step": [0],
                "sharpness": [1.0],
                "alpha": [np.nan],
                "train_loss": [2.3],
            }
        )
    )
    losses.append(pd.DataFrame({"run_id": "bad", "lr": 30.0, "seed": 0, "step": [1, 2, 3], "loss": [2.3, 4.0, 456.0]}))
    return pd.DataFrame(runs), pd.concat(evaluations), pd.concat(losses)


def test_the_edge_of_stability_table_and_sentence_follow_the_curves():
    runs, evaluations, losses = stability_inputs()
    table = dynamics.stability_table(runs, evaluations, losses).set_index("lr")
    assert table.loc[0.1, "first_reach_step"] == 90  # 1 + 90/5 = 19 >= 0.9 x 20
    assert table.loc[0.1, "edge_share"] == 1.0 and table.loc[0.1, "after_median_ratio"] == pytest.approx(1.0)
    assert np.isnan(table.loc[0.05, "first_reach_step"]) and table.loc[0.05, "sharpness_max"] < 20
    assert table.loc[0.1, "loss_increases"] == 8  # rises at steps 100, 150, ..., 450
    assert np.isnan(table.loc[30.0, "sharpness_max"]) and table.loc[30.0, "status"] == "FAILED"
    text = dynamics.stability_sentence(table.reset_index())
    assert "η = 0.05: sharpness rose from 1 to at most 20, below 0.9 × 2/η = 36" in text
    assert "η = 0.1: sharpness rose from 1 to 2/η = 20 by step 90" in text
    assert "η = 30 (2/η = 0.0667, below the initial sharpness 1) failed in 1 of 1 runs: diverged" in text
    assert "For η = 0.1, 2/η is about where sharpness levels off anyway (20)" in text
