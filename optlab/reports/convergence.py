"""Section 1: loss and accuracy per strategy against every cost axis, mean and band over seeds."""

from __future__ import annotations

import pandas as pd

from optlab.reports import plots, style
from optlab.reports.load import Store, runs_text, series_labels
from optlab.reports.model import Figure, Note, Section, Table, not_run

TITLE = "Convergence"
DATA_AXES = [("epoch", "epochs"), ("samples_seen", "samples seen"), ("wall_time", "wall time (s, training only)")]
COST_AXES = [("evaluations", "function evaluations"), ("gradient_evaluations", "gradient evaluations"),
             ("gradient_equivalents", "gradient equivalents (full-set gradients)")]
METRICS = [("train_loss", "train loss"), ("test_accuracy", "test accuracy")]


def gather(store: Store, experiments) -> tuple[pd.DataFrame | None, list[str]]:
    """Runs of the given experiments that exist, and the names of those that do not."""
    frames, missing = [], []
    for name in experiments:
        runs = store.runs(name)
        if runs is None:
            missing.append(name)
        else:
            frames.append(runs)
    if not frames:
        return None, missing
    runs = pd.concat(frames, ignore_index=True)
    runs = runs[runs["status"] != "RUNNING"].reset_index(drop=True)
    runs["label"] = series_labels(runs)
    runs["family"] = runs["family"].replace("", "unknown")
    return runs, missing


def build(store: Store, experiments=("convergence", "second_order", "zeroth_order")) -> Section:
    section = Section(1, TITLE, "Per strategy, train loss and test accuracy against epochs, samples seen and "
                      "wall time, then against the cost axes that put first-order, second-order and "
                      "gradient-free strategies on one scale. Lines: mean over seeds; band: ±1 standard "
                      "deviation over seeds.")
    runs, missing = gather(store, experiments)
    primary = experiments[0]
    if runs is None or primary in missing:
        section.add(not_run(primary))
    for name in missing[1:] if primary in missing else missing:
        section.add(Note(f"Experiment '{name}' not run yet — its strategies are absent here "
                         f"(`SWEEP=experiments/{name}.toml make sweep`).", kind="info"))
    if runs is None:
        return section
    failed = runs[runs["status"] != "FINISHED"]
    if len(failed):
        reasons = "; ".join(f"{r.label} seed {r.seed:g}: {r.failure_reason or r.status}" for r in failed.itertuples())
        section.add(Note(f"{len(failed)} run(s) did not finish and are drawn up to where they stopped: {reasons}",
                         kind="warning"))
    hist = store.history(runs, label="convergence histories")
    colors = style.palette(runs["label"])
    line_style = "family" if runs["family"].nunique() > 1 else None
    caption_runs = runs_text(runs)
    for axes, what in ((DATA_AXES, "epochs, samples seen and wall time"),
                       (COST_AXES, "function evaluations, gradient evaluations and gradient equivalents")):
        fig, grid = style.figure(len(METRICS), len(axes), width=4.6, height=3.4)
        for i, (metric, metric_label) in enumerate(METRICS):
            for j, (x, x_label) in enumerate(axes):
                ax = grid[i][j]
                if x not in hist or metric not in hist:
                    ax.set_axis_off()
                    continue
                logx = x != "epoch" and plots.spans_decades(hist[x])
                plots.band_lines(ax, hist, x, metric, "label", colors, logx=logx, style=line_style,
                                 legend=(i == 0 and j == len(axes) - 1))
                if ax.get_legend() is not None:
                    ax.get_legend().remove()
                    plots.legend_outside(fig, ax, "strategy")
                if metric == "train_loss":
                    ax.set_yscale("log")
                ax.set_xlabel(x_label)
                ax.set_ylabel(metric_label)
        fig.tight_layout()
        section.add(Figure(fig, f"Train loss (log scale) and test accuracy against {what}. "
                                f"Mean over seeds with a ±1 sd band" + ("; line style = family" if line_style else "") + f". {caption_runs}."))
    section.add(Table(final_table(runs), f"Final values per strategy (mean ± sd over seeds). {caption_runs}."))
    return section


def final_table(runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for label, group in runs.groupby("label", sort=True):
        row = {"strategy": label, "family": group["family"].iloc[0], "runs": len(group),
               "finished": int((group["status"] == "FINISHED").sum())}
        for key, name in (("final_test_accuracy", "test acc"), ("final_train_loss", "train loss"),
                          ("final_gradient_equivalents", "grad. equiv."), ("final_wall_time", "wall s")):
            if key in group:
                values = group[key].dropna()
                row[name] = f"{values.mean():.4g} ± {values.std(ddof=0):.2g}" if len(values) else "-"
        rows.append(row)
    return pd.DataFrame(rows)
