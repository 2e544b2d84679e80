"""Section 3: learning-rate sensitivity (DeepOBS) — every tuning trial's final validation accuracy
against its learning rate, per workload and tuning group, the selected value marked, and selections
at the edge of their grid flagged (the optimum may lie outside the grid)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from optlab.analysis.sensitivity import sensitivity
from optlab.reports import style, workloads
from optlab.reports.load import Store
from optlab.reports.model import Figure, Note, Section, Table, heading, not_run

TITLE = "Learning-rate sensitivity"
EXPERIMENTS = ("convergence", "second_order", "zeroth_order", "batch_size")
AXIS = "lr"
METRIC = "final_val_accuracy"


def build(store: Store, experiments=EXPERIMENTS) -> Section:
    section = Section(3, TITLE, "Every tuning trial's final validation accuracy against its learning rate (mean "
                      "over the tuning seeds with a 95 % bootstrap interval; a trial that diverged has no value), "
                      "per workload and tuning group, with the selected learning rate marked. A selection at the "
                      "lowest or highest value of its grid is flagged: a better value may lie outside the grid.")
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
        table = sensitivity(mine.assign(**{METRIC: mine[METRIC].where(mine["status"] == "FINISHED")}),
                            ["setting"], AXIS, METRIC)
        selected = mine[mine["selected"].str.lower() == "true"].groupby("setting")[AXIS].first()
        section.add(figure(table, selected, mine, workload))
        rows = edges(mine, selected)
        flagged += [(workload, r) for r in rows]
    if flagged:
        frame = pd.DataFrame([{"workload": w, "group": r["group"], "selected": r["selected"], "flag": r["flag"]}
                              for w, r in flagged])
        section.add(Table(frame, "Selections at the edge of their tuning grid (also printed by `optlab sweep`)."))
        section.add(Note(f"{len(frame)} selection(s) sit at the edge of their grid; their results may improve with a "
                         f"wider grid.", kind="warning"))
    else:
        section.add(Note("No selection sits at the edge of its tuning grid."))
    return section


def edges(trials: pd.DataFrame, selected: pd.Series) -> list[dict]:
    rows = []
    for setting, lr in selected.items():
        group = trials[trials["setting"] == setting]
        chosen = group[group[AXIS] == lr].iloc[0]
        for flag in workloads.edge_flags(trials, chosen["group"], chosen["trial"], {AXIS: lr}):
            rows.append({"group": chosen["group"], "selected": chosen["trial"], "flag": flag.text()})
    return rows


def figure(table: pd.DataFrame, selected: pd.Series, trials: pd.DataFrame, workload: str) -> Figure:
    settings = list(dict.fromkeys(table["setting"]))
    colors = style.palette(settings)
    fig, axes = style.figure(1, 1, width=7.0, height=4.0)
    ax = axes[0][0]
    for setting in settings:
        rows = table[table["setting"] == setting].sort_values(AXIS)
        color = colors[setting]
        ok = rows["finite"] > 0
        ax.plot(rows.loc[ok, AXIS], rows.loc[ok, "mean"], "o-", color=color, ms=3, lw=1.2, label=setting)
        spread = ok & rows["low"].notna()
        ax.fill_between(rows.loc[spread, AXIS], rows.loc[spread, "low"], rows.loc[spread, "high"], color=color,
                        alpha=0.12, lw=0)
        failed = rows[~ok]
        ax.scatter(failed[AXIS], np.zeros(len(failed)), marker="x", color=color)
        if setting in selected.index:
            pick = rows[np.isclose(rows[AXIS], selected[setting])]
            ax.scatter(pick[AXIS], pick["mean"], s=70, facecolor="none", edgecolor=color, lw=1.6)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("final validation accuracy")
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=7,
               title="tuning group")
    fig.tight_layout()
    seeds = sorted({int(s) for s in trials["seed"].dropna()})
    return Figure(fig, f"Learning-rate sensitivity on workload {workload}: every tuning trial (tuning seeds "
                       f"{', '.join(map(str, seeds))}), mean and 95 % bootstrap band over those seeds; open circle: "
                       f"the selected learning rate; x at 0: every seed of that trial failed. "
                       f"{workloads.describe(trials)}.")
