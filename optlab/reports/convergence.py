"""Section 1: per workload, how each strategy's loss and accuracy evolve on every cost axis, the final
results with 95 % bootstrap intervals, and who beats whom (paired tests over seeds, Holm-corrected).

Only the reported runs are used (fresh-seed reruns of each selected configuration, timed alone), and
only within one workload: a strategy's runs at another budget are another workload's row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from optlab.analysis import stats
from optlab.reports import claims, plots, style, work, workloads
from optlab.reports.load import Store
from optlab.reports.chart import Chart, Matrix
from optlab.reports.model import Figure, Note, Section, Table, heading, not_run

TITLE = "Convergence and final results"
EXPERIMENTS = ("convergence", "second_order", "zeroth_order")
X_AXES = [("epoch", "epochs"), ("gradient_equivalents", "gradient equivalents (full-set gradients)"),
          ("evaluations", "function evaluations"), ("wall_time", "wall time (s, training only)")]
METRICS = [("train_loss", "train loss"), ("test_accuracy", "test accuracy")]
REPORTED = ("final_test_accuracy", "test accuracy", True)   # the compared metric: reported on test


def build(store: Store, experiments=EXPERIMENTS) -> Section:
    section = Section(1, TITLE, "Per workload (a fixed problem, budget and validation target), train loss and "
                      "test accuracy of each strategy against epochs, gradient equivalents, function evaluations "
                      "and wall time; then the final results and a who-beats-whom matrix. Learning rates were "
                      "tuned on validation metrics; every number here comes from reruns of the selected "
                      "configuration on fresh seeds, each trained alone. Lines are means over seeds; bands and "
                      "[low, high] are 95 % bootstrap confidence intervals over seeds.")
    runs, missing = workloads.gather(store, experiments)
    trials, _ = workloads.gather(store, experiments, include_tuning=True)
    primary = experiments[0]
    if runs is None or primary in missing:
        section.add(not_run(primary))
    for name in [m for m in missing if m != primary]:
        section.add(Note(f"Experiment '{name}' not run yet — its workloads are absent here "
                         f"(`SWEEP=experiments/{name}.toml make sweep`).", kind="info"))
    if runs is None:
        return section
    for workload in workloads.ordered(runs):
        add_workload(section, store, runs[runs["workload"] == workload], trials, workload)
    return section


@dataclass
class WorkloadResult:
    """The numbers of one workload's comparison (shared by the report section and `--markdown`)."""
    workload: str
    about: str                 # the workload in words
    how: str                   # how its reported runs were obtained
    stops: bool                # runs stop at the target: final values are not comparable
    table: pd.DataFrame | None = None     # final values per strategy with CIs
    values: pd.DataFrame | None = None    # seeds x strategies, the compared metric
    pairs: pd.DataFrame | None = None     # every pair, Holm-corrected
    sentences: list[str] = field(default_factory=list)
    edges: pd.DataFrame | None = None     # selections at the edge of their grid

    @property
    def caption(self) -> str:
        return f"Workload {self.workload}: {self.about}; {self.how}"


def workload_result(runs: pd.DataFrame, trials) -> WorkloadResult:
    workload = runs["workload"].iloc[0]
    about = workloads.describe(runs)
    result = WorkloadResult(workload, about, workloads.protocol(runs), "runs stop at the target" in about)
    if result.stops:
        return result
    selection = workloads.selection_table(runs, trials)
    result.table = final_table(runs, selection)
    result.edges = selection[selection["edge"] != ""]
    values = runs.pivot_table(index="seed", columns="label", values=REPORTED[0], aggfunc="first")
    if values.shape[1] >= 2:
        result.values = values
        result.pairs = stats.compare_all(values, larger_is_better=REPORTED[2])
        result.sentences = [t for t in (claims.leader(values, f"final {REPORTED[1]}", REPORTED[2], result.pairs),
                                        work.unequal_work(runs), work.budget_exceeded(runs),
                                        claims.power(int(values.dropna().shape[0]), values.shape[1])) if t]
    return result


def add_workload(section: Section, store: Store, runs: pd.DataFrame, trials, workload: str) -> None:
    section.add(heading(f"Workload {workload}"))
    result = workload_result(runs, trials)
    failed = runs[runs["status"] != "FINISHED"]
    if len(failed):
        reasons = "; ".join(f"{r.label} seed {r.seed:g}: {r.failure_reason or r.status}" for r in failed.itertuples())
        section.add(Note(f"{len(failed)} run(s) did not finish and are drawn up to where they stopped: {reasons}",
                         kind="warning"))
    if result.stops:
        section.add(Note(f"Workload {workload} ({result.about}): its runs stop when they reach the target, so final "
                         f"values are not comparable; its results are the time to target (section 2)."))
        return
    hist = store.history(runs, label=f"{workload} histories")
    for chart in curves_figure(runs, hist, result.caption):
        section.add(chart)
    section.add(Table(result.table, f"Final values per strategy, mean [95 % bootstrap CI] over seeds, with the "
                                    f"selected configuration and its tuning budget (trials). {result.caption}."))
    if result.pairs is not None:
        section.add(matrix_figure(result.values, result.pairs, result.caption))
        section.add(Note(" ".join([f"Workload {workload}:", *result.sentences])))
    for label, row in result.edges.iterrows():
        section.add(Note(f"Workload {workload}, {label}: the selected {row['edge']} — the tuning grid may have "
                         f"cut off a better value.", kind="warning"))


def curves_figure(runs: pd.DataFrame, hist: pd.DataFrame, caption: str) -> list[Chart]:
    axes = [(x, name) for x, name in X_AXES if x in hist and hist[x].notna().any()]
    if "evaluations" in dict(axes) and not (runs["family"] == "zeroth-order").any():
        axes = [(x, n) for x, n in axes if x != "evaluations"]  # the same as steps for first-order runs
    timed_alone = set(runs["timing"]) == {"alone"}
    if not timed_alone:
        axes = [(x, n) for x, n in axes if x != "wall_time"]
    both = hist[["epoch", "gradient_equivalents"]].dropna() if "gradient_equivalents" in hist else None
    if both is not None and len(both) and np.allclose(both["epoch"], both["gradient_equivalents"]):
        axes = [(x, n) for x, n in axes if x != "gradient_equivalents"]  # first-order only: the same as epochs
    data, log_x = plots.band_frame(runs, hist, axes, METRICS)
    wall = ("" if timed_alone else " Wall time is not drawn: some runs were timed inside a batch "
            f"({', '.join(sorted(set(runs['timing'])))}).")
    text = f"Train loss (log scale) and test accuracy, {plots.BAND_TEXT}; colour = strategy, line style = family.{wall}"
    return plots.axis_charts(data, log_x, [label for _, label in METRICS], {"train loss": True},
                             f"{text} {caption}.")


def final_table(runs: pd.DataFrame, selection: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for label, group in runs.groupby("label", sort=True):
        done = group[group["status"] == "FINISHED"]
        row = {"strategy": label, "family": group["family"].iloc[0],
               "selected": selection.loc[label, "selected"] if label in selection.index else "-",
               "trials": selection.loc[label, "trials"] if label in selection.index else np.nan,
               "seeds": f"{len(done)}/{len(group)}"}
        for key, name in (("final_test_accuracy", "test acc"), ("final_val_accuracy", "val acc"),
                          ("final_train_loss", "train loss"), ("final_gradient_equivalents", "grad. equiv."),
                          ("final_wall_time", "wall s")):
            row[name] = stats.bootstrap_ci(done[key]).text(3) if key in done else "-"
        row["timing"] = ", ".join(sorted(set(group["timing"])))
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["trials"] = frame["trials"].map(lambda v: "-" if pd.isna(v) else f"{int(v)}")
    return frame.sort_values("test acc", key=lambda s: s.map(_estimate), ascending=False)


def _estimate(text: str) -> float:
    try:
        return float(str(text).split()[0])
    except ValueError:
        return -math.inf


def matrix_figure(values: pd.DataFrame, pairs: pd.DataFrame, caption: str) -> Matrix:
    """Who beats whom: cell (row a, column b) = mean paired difference a - b of the final test accuracy,
    annotated with a's wins over the seeds and marked * when Holm-corrected p <= 0.05."""
    order = values.mean().sort_values(ascending=False).index.tolist()
    diff = pd.DataFrame(np.nan, index=order, columns=order)
    notes = pd.DataFrame("", index=order, columns=order)
    for p in pairs.itertuples():
        for a, b, sign, wins in ((p.a, p.b, 1, p.wins), (p.b, p.a, -1, p.losses)):
            diff.loc[a, b] = sign * p.mean_diff
            star = "*" if p.verdict != "n.s." else ""
            notes.loc[a, b] = f"{sign * p.mean_diff:+.3f}{star}\n{wins}/{p.n}"
    magnitudes = np.abs(diff.to_numpy())[np.isfinite(diff.to_numpy())]
    # a robust colour scale: one far-off strategy must not wash out the differences among the others
    limit = float(np.quantile(magnitudes, 0.8)) if len(magnitudes) else 1.0
    limit = limit if limit > 0 else 1.0
    n = int(pairs["n"].max()) if len(pairs) else 0
    return Matrix(diff, notes, limit=limit, x_title="column strategy", y_title="row strategy",
                  colorbar="mean difference (row - column)",
                  caption=f"Who beats whom on final test accuracy: each cell is the mean paired difference (row minus "
                          f"column) over {n} seeds and the number of seeds the row strategy won (colours saturate "
                          f"beyond ±{limit:.3g}); * marks a difference significant at 0.05 after Holm's correction "
                          f"over all {len(pairs)} pairs (exact two-sided Wilcoxon signed-rank test, seeds paired). "
                          f"{caption}.")
