"""Section 1: loss and accuracy per strategy against every cost axis, mean and band over seeds."""

from __future__ import annotations

import pandas as pd

from optlab import palette
from optlab.reports import plots
from optlab.reports.chart import Chart
from optlab.reports.load import Store, runs_text, series_labels
from optlab.reports.model import Note, Section, Table, not_run

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
    caption_runs = runs_text(runs)
    for x, x_label in DATA_AXES + COST_AXES:
        if x not in hist:
            continue
        data, log_x = curves(runs, hist, x)
        if data.empty:
            continue
        section.add(Chart(
            data, x=x, y="mean", low="low", high="high", color="strategy", label="label", dash="family",
            row="metric", col="panel", row_order=[m for _, m in METRICS], col_order=PANEL_ORDER,
            x_title=x_label, y_title={m: m for _, m in METRICS}, log_x=log_x,
            log_y={label: metric == "train_loss" for metric, label in METRICS}, hover=["runs"],
            caption=f"Train loss (log scale) and test accuracy against {x_label}, one panel per kind of method "
                    f"(its own axes). Mean over seeds with a ±1 sd band; colour = strategy, line style = family. "
                    f"{caption_runs}."))
    section.add(Table(final_table(runs), f"Final values per strategy (mean ± sd over seeds). {caption_runs}."))
    return section


PANEL_ORDER = ["first-order: SGD & momentum", "first-order: adaptive", "second-order", "zeroth-order"]


def curves(runs: pd.DataFrame, hist: pd.DataFrame, x: str) -> tuple[pd.DataFrame, dict]:
    """Mean ± sd curves of each label against `x`, one row per (label, metric, x) with its strategy,
    family and panel (palette.panel_group); and per panel whether x is drawn on a log scale."""
    first = runs.drop_duplicates("label").set_index("label")
    panel_of = {label: palette.panel_group(row.strategy, row.family) for label, row in first.iterrows()}
    hist = hist.dropna(subset=[x]).assign(panel=lambda h: h["label"].map(panel_of))
    frames, log_x = [], {}
    for panel, part in hist.groupby("panel", sort=False):
        log_x[panel] = x != "epoch" and plots.spans_decades(part[x])
        for metric, metric_label in METRICS:
            if metric in part:
                band = plots.mean_band(part, x, metric, "label", logx=log_x[panel])
                if not band.empty:
                    frames.append(band.assign(metric=metric_label, panel=panel))
    if not frames:
        return pd.DataFrame(), log_x
    data = pd.concat(frames, ignore_index=True)
    data["strategy"] = data["label"].map(first["strategy"])
    data["family"] = data["label"].map(first["family"])
    return data, log_x


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
