"""Tuning effort in the report: per workload, each tuning group's expected best validation accuracy after
k of its trials (optlab.analysis.tuning_effort, Dodge et al. 2019), as a chart and a table.

A trial's score is its final validation accuracy averaged over the tuning seeds (a trial whose every
seed failed has none). A strategy run as given (not tuned) is one trial: its reruns' mean validation
accuracy, a single point. Strategies whose curves still rise at their last trial might gain from a larger
grid; a verdict between a strategy with a flat curve and one with a rising curve depends on the budget.
"""

from __future__ import annotations

import pandas as pd

from optlab.analysis.tuning_effort import curves
from optlab.reports import workloads
from optlab.reports.chart import Chart
from optlab.reports.model import Table

SCORE = "final_val_accuracy"


def trial_scores(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per trial of one workload: setting (the tuning group's setting, e.g. 'strategy=adam'),
    strategy, family, score (mean over the trial's seeds; failed seeds count as missing)."""
    tuning = runs[runs["role"] == "tuning"].copy()
    score = tuning[SCORE].where(tuning["status"] == "FINISHED")
    tuning = tuning.assign(score=score, setting=[g.split(": ", 1)[1] if ": " in g else g for g in tuning["group"]])
    rows = (
        tuning.groupby(["setting", "trial"], sort=False)
        .agg(score=("score", "mean"), strategy=("strategy", "first"), family=("family", "first"))
        .reset_index()
    )
    as_given = runs[(runs["role"] == "rerun") & (runs["trial"] == workloads.AS_GIVEN)]
    for strategy, own in as_given.groupby("strategy", sort=False):
        done = own[own["status"] == "FINISHED"]
        rows.loc[len(rows)] = {
            "setting": f"strategy={strategy} ({workloads.NOT_TUNED})",
            "trial": workloads.NOT_TUNED,
            "score": done[SCORE].mean() if len(done) else float("nan"),
            "strategy": strategy,
            "family": own["family"].iloc[0],
        }
    return rows


def effort(runs: pd.DataFrame) -> pd.DataFrame:
    """The expected-best curves of one workload: setting, k, expected, trials, strategy, family."""
    scores = trial_scores(runs)
    if scores.empty:
        return pd.DataFrame(columns=["setting", "k", "expected", "trials", "strategy", "family"])
    frame = curves(scores, "setting", "score", larger_is_better=True)
    first = scores.drop_duplicates("setting").set_index("setting")
    return frame.assign(
        strategy=frame["setting"].map(first["strategy"]),
        family=frame["setting"].map(first["family"]).replace("", "unknown"),
    )


def chart(frame: pd.DataFrame, workload: str) -> Chart:
    data = frame.assign(label=[s.replace("strategy=", "") for s in frame["setting"]])
    return Chart(
        data,
        x="k",
        y="expected",
        label="label",
        mode="lines+markers",
        x_title="tuning trials k",
        y_title="expected best validation accuracy",
        hover=["trials"],
        caption=f"Tuning effort on workload {workload}: the expected best final validation accuracy (mean "
        f"over the tuning seeds) among k trials drawn with replacement from the trials the sweep ran "
        f"(Dodge et al. 2019, exact from the empirical distribution), k = 1 to the number of trials; "
        f"a strategy not tuned is one point. A curve still rising at its last trial may gain from "
        f"a larger grid.",
    )


def table(frame: pd.DataFrame, workload: str) -> Table:
    rows = []
    for setting, own in frame.groupby("setting", sort=False):
        own = own.sort_values("k")
        rows.append(
            {
                "strategy": setting.replace("strategy=", ""),
                "trials": int(own["trials"].iloc[0]),
                "E[best] of 1": f"{own['expected'].iloc[0]:.3f}",
                "E[best] of half": f"{own['expected'].iloc[(len(own) - 1) // 2]:.3f}",
                "E[best] of all": f"{own['expected'].iloc[-1]:.3f}",
                "gain from the last trial": f"{own['expected'].iloc[-1] - own['expected'].iloc[-2]:+.3f}"
                if len(own) > 1
                else "-",
            }
        )
    return Table(
        pd.DataFrame(rows),
        f"Tuning effort on workload {workload}: expected best validation accuracy after 1 trial, half the "
        f"trials and all of them (k drawn with replacement; Dodge et al. 2019), and what the last trial "
        f"adds on average.",
    )
