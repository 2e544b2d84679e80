"""Section 2: time to the validation target per workload (censored: runs that never reach it are
counted), and AlgoPerf-style performance profiles over the workloads of a suite.

Time to target on a workload is the Kaplan-Meier median over seeds (optlab.analysis.target) with its
95 % interval and the fraction of seeds that reached it. The profile (optlab.analysis.profiles) uses
that median per workload and strategy; missed, failed or absent counts as infinite, and a strategy
absent from a workload is listed as absent. It is drawn only for an experiment whose every workload
was meant to run every strategy (one sweep file), never across files with different strategy sets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from optlab import palette
from optlab.analysis import profiles
from optlab.analysis.target import time_to_target
from optlab.reports import measures, plots, verdict_tables, workloads
from optlab.reports.load import Store
from optlab.reports.model import Note, Section, Table, heading, not_run

TITLE = "Time to target and performance profiles"
EXPERIMENTS = ("convergence", "second_order", "zeroth_order", "modern")
TABLE_AXES = [
    ("step", "steps"),
    ("epoch", "epochs"),
    ("gradient_equivalents", "grad. equiv."),
    ("evaluations", "evaluations"),
    ("wall_time", "wall s"),
]
PROFILE_AXES = [("wall_time", "training wall time"), ("gradient_equivalents", "gradient equivalents")]


def build(store: Store, experiments=EXPERIMENTS, all_pairs: bool = False) -> Section:
    section = Section(
        2,
        TITLE,
        "Cost until the validation accuracy first reaches the workload's target, per "
        "strategy: the Kaplan-Meier median over seeds with its 95 % interval, runs that never reach "
        "it counted as censored (not dropped), and the fraction that did. Then, for a suite of "
        "workloads run with the same strategies, performance profiles (AlgoPerf): the fraction of "
        "workloads a strategy reaches within τ times the fastest strategy's time, τ up to 4, and "
        "the normalized area under that curve as its score. The newer-optimizer sweep "
        "(experiments/modern.toml) is included: its runs train their whole budget and record the validation "
        "accuracy, so they answer the same question. Each workload belongs to one sweep and is named with it "
        "when several sweeps are shown (two sweeps may use one workload name; their runs are never pooled), "
        "and a profile is drawn per sweep.",
    )
    computed = compute(store, experiments, all_pairs)
    if computed is None:
        return section.add(not_run(experiments[0]))
    for workload, (table, caption) in computed.tables.items():
        section.add(heading(f"Workload {workload}"))
        section.add(
            Table(
                table,
                f"Time to the validation target: Kaplan-Meier median [95 % CI] over seeds "
                f"(∞: open above; 'not reached': fewer than half the seeds reached it); wall time "
                f"over the runs trained alone only. {caption}.",
            )
        )
        verdict = computed.verdicts.get(workload)
        if verdict is not None:
            section.add(
                Table(
                    verdict_tables.tier_table(verdict),
                    f"{verdict_tables.caption(verdict)} A run that never reached the target is censored "
                    f"at the cost it stopped at: such a pair can be better or worse, never equivalent. "
                    f"{caption}.",
                )
            )
            section.add(Note(" ".join([f"Workload {workload}:", *verdict_tables.sentences(verdict)])))
            if verdict.pairs is not None:
                section.add(
                    Table(
                        verdict_tables.pairs_table(verdict),
                        f"Every pair on {verdict.metric.label} "
                        f"(--all-pairs): Holm over all {len(verdict.pairs)} pairs. {caption}.",
                        appendix=True,
                    )
                )
        if workload in computed.failed:
            section.add(Note(computed.failed[workload], kind="warning"))
    for result in computed.profiles:
        add_profile(section, result, computed.timings)
    return section


@dataclass
class TargetResults:
    tables: dict[str, tuple[pd.DataFrame, str]]  # workload -> (time-to-target table, caption)
    profiles: list[ProfileResult]
    timings: set
    verdicts: dict = field(default_factory=dict)  # workload -> verdict_tables.WorkloadVerdicts (time to target)
    failed: dict[str, str] = field(default_factory=dict)  # workload -> the sentence naming its failed runs


def name_failed(runs: pd.DataFrame) -> str:
    """The runs a time-to-target table counts as not reaching the target because they failed, by name and
    reason ("" when none failed)."""
    failed = runs[runs["status"] == "FAILED"]
    if failed.empty:
        return ""
    named = "; ".join(
        f"{r.strategy} seed {r.seed:g}: "
        + (r.failure_reason if isinstance(r.failure_reason, str) and r.failure_reason else "no reason recorded")
        for r in failed.sort_values(["strategy", "seed"]).itertuples()
    )
    return (
        f"{len(failed)} failed run(s), counted in 'reached' as not reaching the target (censored where they "
        f"stopped): {named}."
    )


def compute(store: Store, experiments=EXPERIMENTS, all_pairs: bool = False) -> TargetResults | None:
    """Time to target per workload, and a profile per experiment with at least two such workloads."""
    runs, _ = workloads.gather(store, experiments)
    if runs is None:
        return None
    trials, _ = workloads.gather(store, experiments, include_tuning=True)
    hist = store.history(runs, label="time-to-target histories")
    hit = measures.hits(runs, hist)
    tables, per_workload, verdicts, failed = {}, {}, {}, {}
    for workload in workloads.ordered(runs):
        mine = hit[hit["workload"] == workload]
        if mine["target"].isna().all():
            continue
        verdict = verdict_tables.time_verdicts(mine, all_pairs)
        if verdict is not None:
            verdicts[workload] = verdict
        table, medians = ttt_table(mine, trials)
        per_workload[workload] = medians
        tables[workload] = (table, f"Workload {workload}: {workloads.describe(mine)}; {workloads.protocol(mine)}")
        failed[workload] = name_failed(runs[runs["workload"] == workload])
    results = []
    for experiment in experiments:
        mine = hit[hit["experiment"] == experiment]
        names = [w for w in workloads.ordered(runs) if w in set(mine["workload"]) and w in per_workload]
        if len(names) < 2:
            continue
        pool = trials[trials["experiment"] == experiment] if trials is not None else mine
        results.append(profile_result(experiment, names, per_workload, sorted(set(pool["strategy"]))))
    return TargetResults(
        tables, results, set(runs["timing"]), verdicts, {w: text for w, text in failed.items() if text}
    )


def tuning_trials(runs: pd.DataFrame, trials: pd.DataFrame | None) -> float:
    """Every tuning trial behind one strategy's reported runs on one workload (all its tuning groups)."""
    known = runs.assign(
        **{c: runs.get(c, default) for c, default in (("group", ""), ("experiment", ""), ("trials", np.nan))}
    )
    counts = [
        workloads.trial_count(trials, str(first["experiment"]), str(group), first["trials"])
        for group, first in known.groupby("group", sort=True).first().iterrows()
    ]
    counts = [c for c in counts if pd.notna(c)]
    return float(sum(counts)) if counts else np.nan


def ttt_table(hit: pd.DataFrame, trials: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict]:
    rows: list[dict] = []
    medians: dict[str, dict[str, float]] = {}
    axes = [(a, n) for a, n in TABLE_AXES if hit[f"stop_{a}"].notna().any()]
    if not (hit["family"] == "zeroth-order").any():
        axes = [(a, n) for a, n in axes if a != "evaluations"]
    for strategy, group in hit.groupby("strategy", sort=True):
        count = tuning_trials(group, trials)
        row = {"strategy": strategy, "tuning trials": f"{int(count)}" if pd.notna(count) else "-"}
        medians[strategy] = {}
        for axis, name in axes:
            # wall time only from the runs trained alone (a batched run's clock is shared)
            own = group[group["timing"] == "alone"] if axis == "wall_time" else group
            result = time_to_target(own[f"hit_{axis}"], own[f"stop_{axis}"], own["failed"])
            if axis != "wall_time":
                row["reached"] = f"{result.reached}/{result.n}"
            timed = len(own) > 0
            subset = f" ({len(own)} of {len(group)} runs, trained alone)" if 0 < len(own) < len(group) else ""
            row[name] = result.text() + subset if timed else "(no run trained alone)"
            medians[strategy][axis] = result.median if timed else math.nan
        rows.append(row)
    frame = pd.DataFrame(rows)
    first = axes[0][1] if axes else None
    if first:
        frame = frame.sort_values(first, key=lambda s: s.map(_median_key))
    return frame[["strategy", "tuning trials", "reached", *[n for _, n in axes]]], medians


def _median_key(text: str) -> float:
    try:
        return float(str(text).split()[0])
    except ValueError:
        return math.inf


@dataclass
class ProfileResult:
    """A suite's performance profiles: rho(tau) curves and scores per cost axis, and who was absent where."""

    experiment: str
    workloads: list[str]
    curves: dict[str, pd.DataFrame]  # axis label -> rho (tau x strategy)
    scores: pd.DataFrame  # strategy rows: score per axis, workloads run
    absent: dict[str, list[str]]  # workload -> strategies with no reported run


def profile_result(experiment: str, names: list[str], per_workload: dict, strategies: list[str]) -> ProfileResult:
    curves, scores, absent = {}, {}, {}
    for w in names:
        missing = [s for s in strategies if s not in per_workload[w]]
        if missing:
            absent[w] = missing
    for axis, axis_label in PROFILE_AXES:
        costs = pd.DataFrame(
            {s: [per_workload[w].get(s, {}).get(axis, np.nan) for w in names] for s in strategies}, index=names
        )
        ratio = profiles.ratios(costs)
        curves[axis_label] = profiles.rho(ratio, profiles.taus())
        scores[f"score ({axis_label})"] = profiles.score(ratio)
    table = pd.DataFrame(scores)
    table["workloads run"] = [f"{sum(s in per_workload[w] for w in names)}/{len(names)}" for s in table.index]
    table = table.sort_values(table.columns[0], ascending=False).reset_index(names="strategy")
    return ProfileResult(experiment, names, curves, table, absent)


def add_profile(section: Section, result: ProfileResult, timings: set) -> None:
    names = result.workloads
    section.add(heading(f"Performance profile over the {len(names)} workloads of '{result.experiment}'"))
    strategies = list(result.scores["strategy"])
    frames = []
    for axis_label, curve in result.curves.items():
        for strategy in strategies:
            frames.append(
                pd.DataFrame(
                    {
                        "x": curve.index,
                        "mean": curve[strategy].to_numpy(float),
                        "label": strategy,
                        "strategy": strategy,
                        "family": palette.family(strategy),
                        "axis": f"τ (ratio to the fastest, {axis_label})",
                        "metric": f"fraction of the {len(names)} workloads within τ",
                    }
                )
            )
    data = pd.concat(frames, ignore_index=True)
    wall = "" if timings == {"alone"} else " (wall time: medians over the runs trained alone only)"
    caption = (
        f"Performance profiles of '{result.experiment}' over its workloads {', '.join(names)}: "
        f"a strategy's cost on a workload is its Kaplan-Meier median time to the validation "
        f"target over seeds; missed, failed or absent = ∞{wall}."
    )
    for chart in plots.axis_charts(
        data,
        {a: False for a in dict.fromkeys(data["axis"])},
        list(set(data["metric"])),
        {},
        caption,
        band=False,
        step=True,
    ):
        section.add(chart)
    table = result.scores.copy()
    for column in [c for c in table.columns if c.startswith("score")]:
        table[column] = table[column].map("{:.3f}".format)
    section.add(
        Table(
            table,
            f"Profile scores (AlgoPerf: normalized area under ρ(τ) for τ from 1 to "
            f"{profiles.TAU_MAX:g}; 1 = fastest on every workload, 0 = never within "
            f"{profiles.TAU_MAX:g}x of the fastest) over the workloads of '{result.experiment}'.",
        )
    )
    for w, missing in result.absent.items():
        section.add(
            Note(
                f"Absent from workload {w} (no reported run, e.g. every tuning trial failed): "
                f"{', '.join(missing)}; counted as never reaching the target.",
                kind="warning",
            )
        )
