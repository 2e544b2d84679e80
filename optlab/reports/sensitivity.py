"""Section 3: learning-rate sensitivity (DeepOBS) — every tuning trial's final validation accuracy
against its learning rate, per workload and tuning group, the selected value marked, and selections
at the edge of their grid flagged (the optimum may lie outside the grid); then the tuning effort
(tuning_effort.py): the expected best validation accuracy against the number of trials."""

from __future__ import annotations

import numpy as np
import pandas as pd

from optlab.analysis.sensitivity import sensitivity
from optlab.reports import style, tuning_effort, workloads
from optlab.reports.chart import Chart
from optlab.reports.load import Store
from optlab.reports.model import Note, Section, Table, heading, not_run

TITLE = "Learning-rate sensitivity"
EXPERIMENTS = ("convergence", "second_order", "zeroth_order", "batch_size", "modern")
AXIS = "lr"
METRIC = "final_val_accuracy"


def build(store: Store, experiments=EXPERIMENTS) -> Section:
    section = Section(
        3,
        TITLE,
        "Every tuning trial's final validation accuracy against its learning rate (mean "
        "over the tuning seeds with a 95 % bootstrap interval; a trial that diverged has no value), "
        "per workload and tuning group, with the selected learning rate marked. A selection at the "
        "lowest or highest value of its grid is flagged: a better value may lie outside the grid. "
        "Then the tuning effort: each strategy's expected best validation accuracy after k of its "
        "trials (Dodge et al. 2019), so a verdict that depends on how much a strategy was tuned shows. "
        "Each sweep's workloads are shown on their own, named with their sweep when trials of several sweeps "
        "are shown: two sweeps with a workload of the same name tuned different strategies on different grids.",
    )
    trials, _ = workloads.gather(store, experiments, include_tuning=True)
    if trials is None or not (trials["role"] == "tuning").any():
        return section.add(not_run(experiments[0]))
    tuning = trials[trials["role"] == "tuning"].copy()
    tuning["setting"] = [g.split(": ", 1)[1] if ": " in g else g for g in tuning["group"]]
    flagged = []
    for workload in workloads.ordered(tuning):
        mine = tuning[tuning["workload"] == workload]
        if AXIS not in mine or mine[AXIS].notna().sum() == 0:
            continue
        section.add(heading(f"Workload {workload}"))
        table = sensitivity(
            mine.assign(**{METRIC: mine[METRIC].where(mine["status"] == "FINISHED")}), ["setting"], AXIS, METRIC
        )
        selected = mine[mine["selected"].str.lower() == "true"].groupby("setting")[AXIS].first()
        section.add(figure(table, selected, mine, workload))
        curves = tuning_effort.effort(trials[trials["workload"] == workload])
        if len(curves):
            section.add(tuning_effort.chart(curves, workload))
            section.add(tuning_effort.table(curves, workload))
        rows = edges(mine, selected)
        flagged += [(workload, r) for r in rows]
    if flagged:
        frame = pd.DataFrame(
            [{"workload": w, "group": r["group"], "selected": r["selected"], "flag": r["flag"]} for w, r in flagged]
        )
        section.add(Table(frame, "Selections at the edge of their tuning grid (also printed by `optlab sweep`)."))
        section.add(
            Note(
                f"{len(frame)} selection(s) sit at the edge of their grid; their results may improve with a "
                f"wider grid.",
                kind="warning",
            )
        )
    else:
        section.add(Note("No selection sits at the edge of its tuning grid."))
    return section


def edges(trials: pd.DataFrame, selected: pd.Series) -> list[dict]:
    rows = []
    for setting, lr in selected.items():
        group = trials[trials["setting"] == setting]
        chosen = group[group[AXIS] == lr].iloc[0]
        flags = workloads.edge_flags(trials, chosen["group"], chosen["trial"], {AXIS: lr}, chosen["experiment"])
        for flag in flags:
            rows.append({"group": chosen["group"], "selected": chosen["trial"], "flag": flag.text()})
    return rows


def figure(table: pd.DataFrame, selected: pd.Series, trials: pd.DataFrame, workload: str) -> Chart:
    settings = list(dict.fromkeys(table["setting"]))
    strategy_of = trials.groupby("setting")["strategy"].first()
    family_of = trials.groupby("setting")["family"].first()
    one_each = strategy_of.reindex(settings).nunique() == len(settings)
    data = table.assign(
        label=[f"{s} (selected lr={selected[s]:g})" if s in selected.index else s for s in table["setting"]],
        strategy=table["setting"].map(strategy_of),
        family=table["setting"].map(family_of),
        selected=[
            ("yes" if s in selected.index and np.isclose(v, selected[s]) else "")
            for s, v in zip(table["setting"], table[AXIS])
        ],
        seeds=[f"{f}/{t} finished" for f, t in zip(table["finite"], table["trials"])],
    )
    data = data[data["finite"] > 0]
    # groups of one strategy (batch sizes) are told apart by an ordered colour scale, not by strategy
    colors = None if one_each else dict(zip(settings, style.sequential(len(settings))))
    seeds = sorted({int(s) for s in trials["seed"].dropna()})
    return Chart(
        data,
        x=AXIS,
        y="mean",
        low="low",
        high="high",
        label="label",
        color="strategy" if one_each else "setting",
        colors=colors,
        dash="family" if one_each else None,
        mode="lines+markers",
        log_x=True,
        x_title="learning rate",
        y_title="final validation accuracy",
        hover=["selected", "seeds"],
        caption=f"Learning-rate sensitivity on workload {workload}: every tuning trial (tuning seeds "
        f"{', '.join(map(str, seeds))}), mean and 95 % bootstrap band over those seeds; the legend "
        f"gives each group's selected learning rate; a trial every seed of which failed has no "
        f"point. {workloads.describe(trials)}.",
    )
