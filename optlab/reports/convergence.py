"""Section 1: per workload, how each strategy's loss and accuracy evolve on every cost axis, the final
results with 95 % bootstrap intervals, grouped in tiers by their verdict against the best strategy on
validation (optlab.reports.verdict_tables), and the mean paired differences between every two strategies.

Only the reported runs are used (fresh-seed reruns of each selected configuration), and only within one
workload: a strategy's runs at another budget are another workload's row. Wall times come from the runs
trained alone (all reruns, or the `timed_alone` subset the sweep file declares).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from optlab.analysis import stats, verdicts
from optlab.analysis.numbers import significant
from optlab.reports import plots, verdict_tables, work, workloads
from optlab.reports.chart import Chart, Matrix
from optlab.reports.load import Store
from optlab.reports.model import Note, Section, Table, heading, not_run

TITLE = "Convergence and final results"
EXPERIMENTS = ("convergence", "second_order", "zeroth_order")
X_AXES = [
    ("epoch", "epochs"),
    ("gradient_equivalents", "gradient equivalents (full-set gradients)"),
    ("evaluations", "function evaluations"),
    ("wall_time", "wall time (s, training only)"),
]
METRICS = [("train_loss", "train loss"), ("test_accuracy", "test accuracy")]
REPORTED = ("final_test_accuracy", "test accuracy", True)  # the compared metric: reported on test


def build(store: Store, experiments=EXPERIMENTS, all_pairs: bool = False) -> Section:
    section = Section(
        1,
        TITLE,
        "Per workload (a fixed problem, budget and validation target), train loss and "
        "test accuracy of each strategy against epochs, gradient equivalents, function evaluations "
        "and wall time; then the final results grouped in tiers — the best strategy on validation, "
        "those equivalent to it within the workload's margin, those undecided, those worse — with "
        "each strategy's verdict against the best, and the mean paired differences between every "
        "two strategies. Learning rates were tuned on validation metrics; every number here comes "
        "from reruns of the selected configuration on fresh seeds; wall times only from the runs "
        "trained alone. Lines are means over seeds; bands and [low, high] are 95 % bootstrap "
        "confidence intervals over seeds.",
    )
    runs, missing = workloads.gather(store, experiments)
    trials, _ = workloads.gather(store, experiments, include_tuning=True)
    primary = experiments[0]
    if runs is None or primary in missing:
        section.add(not_run(primary))
    absent = [m for m in missing if m != primary]
    if absent:
        names = ", ".join(f"'{name}'" for name in absent)
        commands = "; ".join(f"`SWEEP=experiments/{name}.toml make sweep`" for name in absent)
        section.add(
            Note(
                f"Not run yet, so their workloads are absent here: experiment{'s' if len(absent) > 1 else ''} "
                f"{names} ({commands}).",
                kind="info",
            )
        )
    if runs is None:
        return section
    for workload in workloads.ordered(runs):
        add_workload(section, store, runs[runs["workload"] == workload], trials, workload, all_pairs)
    return section


@dataclass
class WorkloadResult:
    """The numbers of one workload's comparison (shared by the report section and `--markdown`)."""

    workload: str
    about: str  # the workload in words
    how: str  # how its reported runs were obtained
    stops: bool  # runs stop at the target: final values are not comparable
    table: pd.DataFrame | None = None  # final values per strategy with CIs
    values: pd.DataFrame | None = None  # seeds x strategies, the compared metric
    verdicts: verdict_tables.WorkloadVerdicts | None = None  # each strategy vs the best on validation
    sentences: list[str] = field(default_factory=list)
    edges: pd.DataFrame = field(default_factory=pd.DataFrame)  # selections at the edge of their grid (none: empty)

    @property
    def caption(self) -> str:
        return f"Workload {self.workload}: {self.about}; {self.how}"


def workload_result(runs: pd.DataFrame, trials, all_pairs: bool = False) -> WorkloadResult:
    workload = runs["workload"].iloc[0]
    about = workloads.describe(runs)
    result = WorkloadResult(workload, about, workloads.protocol(runs), "runs stop at the target" in about)
    if result.stops:
        return result
    selection = workloads.selection_table(runs, trials)
    result.verdicts = verdict_tables.accuracy_verdicts(runs, all_pairs)
    result.table = final_table(runs, selection, result.verdicts.tiers if result.verdicts else {})
    result.edges = selection[selection["edge"] != ""]
    if result.verdicts is not None:
        result.values = result.verdicts.values
        result.sentences = verdict_tables.sentences(result.verdicts)
    result.sentences += [t for t in (work.unequal_work(runs), work.budget_exceeded(runs)) if t]
    return result


def add_workload(
    section: Section, store: Store, runs: pd.DataFrame, trials, workload: str, all_pairs: bool = False
) -> WorkloadResult:
    """The workload's heading, curves, final table, tiers, sentences and matrix added to `section`; its
    numbers returned."""
    section.add(heading(f"Workload {workload}"))
    result = workload_result(runs, trials, all_pairs)
    failed = runs[runs["status"] != "FINISHED"]
    if len(failed):
        reasons = "; ".join(f"{r.label} seed {r.seed:g}: {r.failure_reason or r.status}" for r in failed.itertuples())
        section.add(
            Note(
                f"{len(failed)} run(s) did not finish and are drawn up to where they stopped: {reasons}", kind="warning"
            )
        )
    if result.stops:
        section.add(
            Note(
                f"Workload {workload} ({result.about}): its runs stop when they reach the target, so final "
                f"values are not comparable; its results are the time to target (section 2)."
            )
        )
        return result
    assert result.table is not None  # workload_result fills it for every workload whose runs do not stop
    hist = store.history(runs, label=f"{workload} histories")
    for chart in curves_figure(runs, hist, result.caption):
        section.add(chart)
    section.add(
        Table(
            result.table,
            f"Final values per strategy, mean [95 % bootstrap CI] over seeds, with the "
            f"selected configuration and its tuning budget (trials), grouped by tier "
            f"(verdict against the best on validation; sorted by test accuracy only within "
            f"a tier); wall s over the runs trained alone only. {result.caption}.",
        )
    )
    if result.verdicts is not None:
        v = result.verdicts
        section.add(Table(verdict_tables.tier_table(v), f"{verdict_tables.caption(v)} {result.caption}."))
        section.add(Note(" ".join([f"Workload {workload}:", *result.sentences])))
        if v.pairs is not None:
            section.add(
                Table(
                    verdict_tables.pairs_table(v),
                    f"Every pair on {v.metric.label} (--all-pairs): Holm "
                    f"over all {len(v.pairs)} pairs. {result.caption}.",
                    appendix=True,
                )
            )
        section.add(matrix_figure(result.values, list(result.table["strategy"]), result.caption))
    for label, row in result.edges.iterrows():
        section.add(
            Note(
                f"Workload {workload}, {label}: the selected {row['edge']} — the tuning grid may have "
                f"cut off a better value.",
                kind="warning",
            )
        )
    return result


def curves_figure(runs: pd.DataFrame, hist: pd.DataFrame, caption: str) -> list[Chart]:
    axes = [(x, name) for x, name in X_AXES if x in hist and hist[x].notna().any()]
    if "evaluations" in dict(axes) and not (runs["family"] == "zeroth-order").any():
        axes = [(x, n) for x, n in axes if x != "evaluations"]  # the same as steps for first-order runs
    alone = hist[hist["timing"] == "alone"] if "timing" in hist else hist
    if alone.empty:
        axes = [(x, n) for x, n in axes if x != "wall_time"]
    both = hist[["epoch", "gradient_equivalents"]].dropna() if "gradient_equivalents" in hist else None
    if both is not None and len(both) and np.allclose(both["epoch"], both["gradient_equivalents"]):
        axes = [(x, n) for x, n in axes if x != "gradient_equivalents"]  # first-order only: the same as epochs
    data, log_x = plots.band_frame(runs, hist, [a for a in axes if a[0] != "wall_time"], METRICS)
    wall_axes = [a for a in axes if a[0] == "wall_time"]
    if wall_axes:  # wall time only from the runs trained alone: a batched run's clock is shared
        wall, wall_log = plots.band_frame(runs, alone, wall_axes, METRICS)
        data, log_x = pd.concat([data, wall], ignore_index=True), {**log_x, **wall_log}
    timing = set(runs["timing"])
    wall_text = (
        ""
        if timing == {"alone"}
        else " Wall time is drawn from the runs trained alone only"
        if wall_axes
        else " Wall time is not drawn: no run was trained alone"
    )
    if wall_text:
        wall_text += f" ({timing_text(runs)})."
    text = (
        f"Train loss (log scale) and test accuracy, {plots.BAND_TEXT}; "
        f"colour = strategy, line style = family.{wall_text}"
    )
    return plots.axis_charts(data, log_x, [label for _, label in METRICS], {"train loss": True}, f"{text} {caption}.")


def final_table(runs: pd.DataFrame, selection: pd.DataFrame, tiers: dict[str, str] | None = None) -> pd.DataFrame:
    """Final values per strategy; with `tiers`, a tier column and rows grouped by tier (then by test
    accuracy within a tier). Wall time is over the runs trained alone only."""
    rows = []
    tiers = tiers or {}
    for label, group in runs.groupby("label", sort=True):
        done = group[group["status"] == "FINISHED"]
        row = {
            "tier": tiers.get(label, "-"),
            "strategy": label,
            "family": group["family"].iloc[0],
            "selected": selection.loc[label, "selected"] if label in selection.index else "-",
            "trials": selection.loc[label, "trials"] if label in selection.index else np.nan,
            "seeds": f"{len(done)}/{len(group)}",
        }
        for key, name in (
            ("final_test_accuracy", "test acc"),
            ("final_val_accuracy", "val acc"),
            ("final_train_loss", "train loss"),
            ("final_gradient_equivalents", "grad. equiv."),
            ("final_wall_time", "wall s"),
        ):
            own = done[done["timing"] == "alone"] if key == "final_wall_time" else done
            row[name] = stats.bootstrap_ci(own[key]).text(3) if key in own else "-"
        row["timing"] = timing_text(group)
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["trials"] = frame["trials"].map(lambda v: "-" if pd.isna(v) else f"{int(v)}")
    frame["_tier"] = frame["tier"].map(verdicts.tier_order)
    frame["_acc"] = -frame["test acc"].map(_estimate)
    frame = frame.sort_values(["_tier", "_acc"]).drop(columns=["_tier", "_acc"])
    return frame if tiers else frame.drop(columns=["tier"])


def timing_text(group: pd.DataFrame) -> str:
    """How many of the runs were trained alone (their wall time counts) and how many batched."""
    alone = int((group["timing"] == "alone").sum())
    batched = len(group) - alone
    return f"{alone} trained alone" + (f", {batched} batched" if batched else "")


def _estimate(text: str) -> float:
    try:
        return float(str(text).split()[0])
    except ValueError:
        return -math.inf


def matrix_figure(values: pd.DataFrame, order: list[str], caption: str) -> Matrix:
    """Mean paired differences: cell (row a, column b) = mean over shared seeds of a - b of the final test
    accuracy, annotated with a's wins; rows and columns in the tier order. Descriptive only: the verdicts
    are in the tier table."""
    order = [o for o in order if o in values.columns]
    diff = pd.DataFrame(np.nan, index=order, columns=order)
    notes = pd.DataFrame("", index=order, columns=order)
    n = 0
    for a in order:
        for b in order:
            if a == b:
                continue
            both = values[[a, b]].dropna()
            d = both[a] - both[b]
            if len(d):
                diff.loc[a, b] = float(d.mean())
                notes.loc[a, b] = f"{d.mean():+.3f}\n{int((d > 0).sum())}/{len(d)}"
                n = max(n, len(d))
    magnitudes = np.abs(diff.to_numpy())[np.isfinite(diff.to_numpy())]
    # a robust colour scale: one far-off strategy must not wash out the differences among the others
    limit = float(np.quantile(magnitudes, 0.8)) if len(magnitudes) else 1.0
    limit = limit if limit > 0 else 1.0
    return Matrix(
        diff,
        notes,
        limit=limit,
        x_title="column strategy",
        y_title="row strategy",
        colorbar="mean difference (row - column)",
        caption=f"Mean paired differences of final test accuracy: each cell is the mean difference (row minus "
        f"column) over up to {n} shared seeds and the number of seeds the row strategy was higher "
        f"(colours saturate beyond ±{significant(limit)}); rows in tier order. These are descriptions, not "
        f"verdicts: which differences are decided is in the tier table above (`optlab report "
        f"--all-pairs` tests every pair). {caption}.",
    )
