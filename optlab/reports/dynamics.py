"""Section: Dynamics — what the optimization looks like from inside.

Two experiments feed it:
- `diagnostics` (experiments/diagnostics.toml): per strategy on the convergence workload, the in-training
  diagnostics (optlab.diagnostics, metrics `diag/...`) over training, faceted one panel per quantity;
- `dynamics` (experiments/dynamics.toml): full-batch gradient descent at several step sizes eta, the
  sharpness against 2/eta (Cohen et al. 2021's edge of stability), the training loss step by step, and
  the run whose step is past the stable range.

Computation (functions returning data frames: `diagnostics_frame`, `diagnostics_summary`,
`stability_frames`, `stability_table`, `stability_sentence`) is kept apart from drawing (`*_chart(s)`); the
figures are Charts (optlab.reports.chart): interactive in the HTML, SVG in the PDF.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from optlab.analysis.numbers import significant
from optlab.reports.chart import Chart
from optlab.reports.load import Store, latest_attempts, runs_text
from optlab.reports.model import Note, Section, Table, not_run

TITLE = "Dynamics"
DIAGNOSTICS, STABILITY = "diagnostics", "dynamics"
PREFIX = "diag/"
# (metric, panel title, log scale): the panels of the per-strategy figure, in reading order
PANELS = [
    ("grad_norm", "gradient norm |G| (training set)", True),
    ("b_simple", "noise scale B_simple = tr Σ / |G|²", True),
    ("gsnr", "mean GSNR G_j² / Σ_jj", True),
    ("update_ratio_layer1", "update / weight, layer 1", True),
    ("update_ratio_layer2", "update / weight, layer 2", True),
    ("update_ratio_layer3", "update / weight, layer 3", True),
    ("update_cosine", "cosine of successive updates", False),
    ("distance_from_init", "distance from init |w − w₀|", False),
    ("sharpness", "sharpness λ_max(H)", True),
    ("hessian_trace", "Hessian trace", False),
    ("alpha", "step quality α (−1 start, 0 min, +1 far side)", False),
]
REACHED = 0.9  # the first evaluation where sharpness >= 0.9 x 2/eta counts as reaching it
EDGE = (0.8, 1.25)  # "at the edge": sharpness within this band of 2/eta


# ---- per-strategy diagnostics: computation ---------------------------------------------------------


def diagnostics_frame(store: Store, runs: pd.DataFrame) -> pd.DataFrame:
    """Long frame: run_id, strategy, seed, step, epoch, metric (without the prefix), value."""
    keys = [PREFIX + metric for metric, _, _ in PANELS]
    wide = store.history(runs, keys=("epoch", *keys), label="diagnostics histories")
    present = [k for k in keys if k in wide]
    if wide.empty or not present:
        return pd.DataFrame(columns=["run_id", "strategy", "seed", "step", "epoch", "metric", "value"])
    long = wide.melt(
        id_vars=["run_id", "strategy", "seed", "step", "epoch"],
        value_vars=present,
        var_name="metric",
        value_name="value",
    ).dropna(subset=["value"])
    long["metric"] = long["metric"].str[len(PREFIX) :]
    return long.reset_index(drop=True)


def diagnostics_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: each metric's median over the second half of training, averaged over seeds."""
    if frame.empty:
        return pd.DataFrame()
    late = frame[frame["epoch"] >= frame.groupby("run_id")["epoch"].transform("max") / 2]
    per_run = late.groupby(["strategy", "run_id", "metric"])["value"].median().reset_index()
    table = per_run.groupby(["strategy", "metric"])["value"].mean().unstack("metric")
    order = [m for m, _, _ in PANELS if m in table.columns]
    table = table[order].reset_index()
    table.columns.name = None
    return table


# ---- per-strategy diagnostics: drawing -------------------------------------------------------------

# the per-strategy figures: one chart per theme, one panel per quantity (alpha, one noisy value per
# evaluation, is summarized by its quartiles in a table instead)
GROUPS = [
    ("The gradient", ("grad_norm", "b_simple", "gsnr")),
    ("The updates", ("update_ratio_layer1", "update_ratio_layer2", "update_ratio_layer3")),
    ("The path", ("update_cosine", "distance_from_init")),
    ("The curvature", ("sharpness", "hessian_trace")),
]


def diagnostics_charts(frame: pd.DataFrame, runs: pd.DataFrame, caption: str) -> list[Chart]:
    """One Chart per group of PANELS: a panel per quantity, one line per strategy (mean over seeds, band:
    range over seeds, which stays positive on a log axis where mean - sd may not)."""
    titles = {m: title for m, title, _ in PANELS}
    logs = {m: log for m, _, log in PANELS}
    family = runs.drop_duplicates("strategy").set_index("strategy")["family"]
    charts = []
    for heading, metrics in GROUPS:
        part = frame[frame["metric"].isin(metrics)]
        if part.empty:
            continue
        data = (
            part.groupby(["strategy", "metric", "step"])
            .agg(
                epoch=("epoch", "mean"),
                mean=("value", "mean"),
                low=("value", "min"),
                high=("value", "max"),
                seeds=("value", "size"),
            )
            .reset_index()
        )
        data["family"] = data["strategy"].map(family).fillna("")
        data["panel"] = data["metric"].map(titles)
        panels = [titles[m] for m in metrics if m in set(part["metric"])]
        log = {titles[m]: bool(logs[m] and (data.loc[data["metric"] == m, "low"] > 0).all()) for m in metrics}
        charts.append(
            Chart(
                data,
                x="epoch",
                y="mean",
                low="low",
                high="high",
                col="panel",
                col_order=panels,
                x_title="epoch",
                y_title={p: "mean over seeds" for p in panels},
                log_y=log,
                hover=["seeds"],
                caption=f"{heading}: " + caption,
            )
        )
    return charts


def alpha_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: the step quality alpha's quartiles over all evaluations and seeds."""
    alpha = frame[frame["metric"] == "alpha"]
    if alpha.empty:
        return pd.DataFrame()
    q = alpha.groupby("strategy")["value"].quantile([0.25, 0.5, 0.75]).unstack()
    return pd.DataFrame(
        {
            "strategy": q.index,
            "evaluations": alpha.groupby("strategy").size()[q.index].to_numpy(),
            "α 25 %": q[0.25].map("{:+.2f}".format).to_numpy(),
            "α median": q[0.5].map("{:+.2f}".format).to_numpy(),
            "α 75 %": q[0.75].map("{:+.2f}".format).to_numpy(),
        }
    )


# ---- edge of stability: computation ----------------------------------------------------------------


def stability_frames(store: Store, runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(evaluations: run_id, lr, seed, step, sharpness, train_loss; steps: run_id, lr, seed, step, loss)
    where `loss` is each step's full-batch loss (the training loss at the point the step started from)."""
    evaluations = store.history(
        runs, keys=("train_loss", PREFIX + "sharpness", PREFIX + "alpha"), label="sharpness histories"
    )
    evaluations = evaluations.rename(columns={PREFIX + "sharpness": "sharpness", PREFIX + "alpha": "alpha"})
    steps = store.history(runs, keys=("batch_loss",), label="loss histories").rename(columns={"batch_loss": "loss"})
    lr = runs.set_index("run_id")["lr"]
    for frame in (evaluations, steps):
        frame["lr"] = frame["run_id"].map(lr)
    for column in ("sharpness", "alpha"):
        if column not in evaluations:
            evaluations[column] = np.nan
    return (
        evaluations[["run_id", "lr", "seed", "step", "sharpness", "alpha", "train_loss"]],
        steps[["run_id", "lr", "seed", "step", "loss"]],
    )


def stability_table(runs: pd.DataFrame, evaluations: pd.DataFrame, steps: pd.DataFrame) -> pd.DataFrame:
    """Per run: 2/eta; the sharpness at the start and its maximum; the first step where it reached
    REACHED x 2/eta; from then on, the share of evaluations within EDGE of 2/eta, the median and last
    sharpness over 2/eta and the median step quality alpha; how many steps raised the loss; initial and final
    training loss; status. A run that did not finish keeps only its initial sharpness (it was stopped before
    measuring more)."""
    rows = []
    for run in runs.sort_values(["lr", "seed"]).itertuples():
        ev = evaluations[evaluations["run_id"] == run.run_id].sort_values("step")
        sharp = ev.dropna(subset=["sharpness"])
        loss = steps[steps["run_id"] == run.run_id].sort_values("step")["loss"].to_numpy(float)
        threshold = 2.0 / run.lr
        finished = run.status == "FINISHED"
        reached = sharp[sharp["sharpness"] >= REACHED * threshold] if finished else sharp.iloc[0:0]
        after = sharp[sharp["step"] >= reached["step"].iloc[0]]["sharpness"] / threshold if len(reached) else None
        alpha = ev[ev["step"] >= reached["step"].iloc[0]]["alpha"].dropna() if len(reached) else ev.iloc[0:0]["alpha"]
        finite = loss[np.isfinite(loss)]
        rows.append(
            {
                "run_id": run.run_id,
                "lr": run.lr,
                "seed": int(run.seed),
                "two_over_eta": threshold,
                "status": run.status,
                "reason": run.failure_reason or "",
                "sharpness_initial": sharp["sharpness"].iloc[0] if len(sharp) else np.nan,
                "sharpness_max": sharp["sharpness"].max() if finished and len(sharp) else np.nan,
                "first_reach_step": int(reached["step"].iloc[0]) if len(reached) else np.nan,
                "edge_share": float(after.between(*EDGE).mean()) if after is not None else np.nan,
                "after_median_ratio": float(after.median()) if after is not None else np.nan,
                "last_ratio": sharp["sharpness"].iloc[-1] / threshold if finished and len(sharp) else np.nan,
                "alpha_after": float(alpha.median()) if len(alpha) else np.nan,
                "loss_increases": int((np.diff(finite) > 0).sum()) if len(finite) > 1 else 0,
                "steps": len(loss),
                "loss_initial": ev["train_loss"].iloc[0] if len(ev) else np.nan,
                "loss_final": ev["train_loss"].iloc[-1] if finished and len(ev) else np.nan,
            }
        )
    return pd.DataFrame(rows)


def stability_sentence(table: pd.DataFrame) -> str:
    """What the runs show, computed from the table (means over seeds per step size)."""
    if table.empty:
        return ""
    done = table[table["status"] == "FINISHED"]
    parts: list[str] = []
    settled: list[float] = []
    left: list[float] = []
    for lr, group in done.groupby("lr"):
        reach = group["first_reach_step"]
        if reach.isna().any():
            parts.append(
                f"η = {lr:g}: sharpness rose from {significant(group['sharpness_initial'].mean())} to at most "
                f"{significant(group['sharpness_max'].mean())}, below "
                f"{REACHED:g} × 2/η = {significant(REACHED * 2 / lr)} in "
                f"{int(reach.isna().sum())} of {len(group)} runs"
            )
            continue
        median, last, share = (
            group["after_median_ratio"].mean(),
            group["last_ratio"].mean(),
            group["edge_share"].mean(),
        )
        parts.append(
            f"η = {lr:g}: sharpness rose from {significant(group['sharpness_initial'].mean())} "
            f"to 2/η = {significant(2 / lr)} "
            f"by step {reach.max():.0f} and then spent {share:.0%} of the evaluations within "
            f"{EDGE[0]:g}-{EDGE[1]:g} × 2/η (median {median:.2f} × 2/η, last {last:.2f} × 2/η); the loss rose "
            f"at {group['loss_increases'].mean():.0f} of {group['steps'].mean():.0f} steps yet fell from "
            f"{significant(group['loss_initial'].mean())} to {significant(group['loss_final'].mean())}"
        )
        (settled if EDGE[0] <= median <= EDGE[1] else left).append(lr)
        if EDGE[0] <= median <= EDGE[1] and last < EDGE[0]:
            left.append(lr)
    text = ("; ".join(parts) + ".") if parts else "No run finished."
    failed = table[table["status"] != "FINISHED"]
    for lr, group in failed.groupby("lr"):
        reasons = "; ".join(sorted(set(group["reason"])))
        text += (
            f" η = {lr:g} (2/η = {significant(2 / lr)}, below the initial sharpness "
            f"{significant(group['sharpness_initial'].mean())}) {group['status'].iloc[0].lower()} in {len(group)} of "
            f"{len(table[table['lr'] == lr])} runs: {reasons}."
        )
    below = [lr for lr, group in done.groupby("lr") if group["first_reach_step"].isna().all()]
    plateau = done[done["lr"].isin(below)].groupby("lr")["sharpness_max"].mean().max() if below else None
    ambiguous = [lr for lr in settled if plateau is not None and 2 / lr >= EDGE[0] * plateau]
    capped = [lr for lr in settled if lr not in ambiguous]
    if capped:
        wobbly = [lr for lr in capped if (done.loc[done["lr"] == lr, "loss_increases"] > 0).all()]
        alphas = done[done["lr"].isin(capped)].groupby("lr")["alpha_after"].mean().dropna()
        text += (
            f" For η = {', '.join(f'{lr:g}' for lr in capped)} this is the edge of stability as Cohen et al. "
            f"describe it: sharpness rises to 2/η and hovers there while the loss keeps falling"
            + (
                f", not monotonically for η = {', '.join(f'{lr:g}' for lr in wobbly)} (it rose at some steps "
                f"in every run)"
                if wobbly
                else ""
            )
            + "."
        )
        if len(alphas):
            text += (
                " From there on the median step quality α is "
                + ", ".join(f"{a:+.2f} (η = {lr:g})" for lr, a in alphas.items())
                + " (0: a step lands on the local parabola's minimum, +1: on its far side at the starting height, "
                "-1: where it started)."
            )
        if plateau is not None:
            text += (
                f" Left alone (η = {', '.join(f'{lr:g}' for lr in below)}) "
                f"sharpness levels off at {significant(plateau)}, "
                f"above those plateaus: the step size sets them, not the network."
            )
    if ambiguous:
        text += (
            f" For η = {', '.join(f'{lr:g}' for lr in ambiguous)}, 2/η is about where sharpness levels off "
            f"anyway ({significant(plateau)}), so that run cannot tell the edge of stability from the plateau."
        )
    off = [lr for lr in left if lr not in settled]
    if off:
        text += (
            f" For η = {', '.join(f'{lr:g}' for lr in off)} sharpness reached 2/η but did not stay near it "
            f"(median outside {EDGE[0]:g}-{EDGE[1]:g} × 2/η after reaching it)."
        )
    late = [lr for lr in left if lr in settled]
    if late:
        text += (
            f" For η = {', '.join(f'{lr:g}' for lr in late)} sharpness left the edge late in training, ending "
            f"below {EDGE[0]:g} × 2/η as the loss approached 0."
        )
    return text


# ---- edge of stability: drawing --------------------------------------------------------------------

SHARPNESS, LOSS = "sharpness λ_max", "training loss (each step)"
SEED_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")


def stability_chart(evaluations: pd.DataFrame, steps: pd.DataFrame, table: pd.DataFrame, caption: str) -> Chart:
    """One column per step size: the sharpness at every evaluation against a dashed 2/eta (top) and the
    training loss at every step on a log axis (bottom), one line per seed; a diverged run's lines end
    where it was stopped."""
    rows = []
    status = table.set_index("run_id")["status"]
    for lr in sorted(table["lr"].unique()):
        column = f"η = {lr:g}" + (" (diverged)" if (table.loc[table["lr"] == lr, "status"] != "FINISHED").all() else "")
        for run in table[table["lr"] == lr].itertuples():
            key = f"seed {run.seed}"
            ev = evaluations[evaluations["run_id"] == run.run_id].dropna(subset=["sharpness"])
            rows += [
                {"panel": SHARPNESS, "eta": column, "step": s, "value": v, "key": key, "status": status[run.run_id]}
                for s, v in zip(ev["step"], ev["sharpness"])
            ]
            st = steps[steps["run_id"] == run.run_id]
            st = st[np.isfinite(st["loss"].astype(float)) & (st["loss"].astype(float) > 0)]
            rows += [
                {"panel": LOSS, "eta": column, "step": s, "value": v, "key": key, "status": status[run.run_id]}
                for s, v in zip(st["step"], st["loss"])
            ]
        last = max([r["step"] for r in rows if r["eta"] == column] or [1])
        rows += [
            {"panel": SHARPNESS, "eta": column, "step": s, "value": 2.0 / lr, "key": "2/η", "status": ""}
            for s in (0, last)
        ]
    data = pd.DataFrame(rows)
    keys = sorted(k for k in data["key"].unique() if k != "2/η")
    colours = {**dict(zip(keys, SEED_COLOURS * 4)), "2/η": "#000000"}
    return Chart(
        data,
        x="step",
        y="value",
        color="key",
        colors=colours,
        label="key",
        dash="key",
        dashes={"2/η": "dash"},
        row="panel",
        row_order=[SHARPNESS, LOSS],
        col="eta",
        col_order=[c for c in dict.fromkeys(data["eta"])],
        x_title="step",
        y_title={SHARPNESS: SHARPNESS, LOSS: LOSS},
        log_y={SHARPNESS: False, LOSS: True},
        hover=["status"],
        caption=caption,
    )


# ---- the section -----------------------------------------------------------------------------------


def build(store: Store, number: int = 8) -> Section:
    section = Section(
        number,
        TITLE,
        "What happens inside the optimization. Per strategy on the convergence "
        "workload: the gradient's size and noise (B_simple, GSNR) from per-sample gradients, the "
        "size of each update relative to the weights, the cosine between successive updates, the "
        "distance travelled, the curvature (sharpness, Hessian trace) and where each step lands "
        "on the local parabola (α). Then full-batch gradient descent at several step sizes: "
        "the edge of stability.",
    )
    add_diagnostics(section, store)
    add_stability(section, store)
    return section


def add_diagnostics(section: Section, store: Store) -> None:
    runs = store.runs(DIAGNOSTICS)
    if runs is None:
        section.add(not_run(DIAGNOSTICS))
        return
    runs = latest_attempts(runs[runs["status"] != "RUNNING"])
    frame = diagnostics_frame(store, runs)
    if frame.empty:
        section.add(
            Note(
                f"The runs of '{DIAGNOSTICS}' have no diagnostics: run it with diagnostics = \"full\".", kind="warning"
            )
        )
        return
    caption = runs_text(runs, DIAGNOSTICS) + f"; workload {', '.join(runs['workload'].astype(str).unique())}"
    samples = (
        pd.to_numeric(runs["diagnostics_samples"], errors="coerce").iloc[0] if "diagnostics_samples" in runs else 512
    )
    for chart in diagnostics_charts(
        frame,
        runs,
        "diagnostics over training, one panel per quantity, one line per "
        "strategy (mean over seeds, band: range over seeds), logged at every evaluation "
        "as MLflow metrics `diag/...`. Per-sample quantities use a fixed random subset of "
        f"{samples:.0f} training samples; |G|, sharpness and trace the whole training "
        f"set. {caption}.",
    ):
        section.add(chart)
    alphas = alpha_table(frame)
    if not alphas.empty:
        section.add(
            Table(
                alphas,
                "Step quality α (Cockpit: where on the parabola fitted along the last step it "
                "landed; −1 where it started, 0 its minimum, +1 the far side at the starting "
                f"height): quartiles over all evaluations and seeds. {caption}.",
            )
        )
    summary = diagnostics_summary(frame)
    shown = summary.copy()
    for column in shown.columns[1:]:
        shown[column] = shown[column].map(lambda v: "-" if pd.isna(v) else f"{significant(v)}")
    section.add(Table(shown, f"Each diagnostic's median over the second half of training, mean over seeds. {caption}."))
    failed = runs[runs["status"] != "FINISHED"]
    if len(failed):
        section.add(
            Note(
                f"{len(failed)} run(s) did not finish: "
                + "; ".join(
                    f"{r.strategy} seed {r.seed:g}: {r.failure_reason or r.status}" for r in failed.itertuples()
                ),
                kind="warning",
            )
        )


def add_stability(section: Section, store: Store) -> None:
    runs = store.runs(STABILITY)
    if runs is None:
        section.add(not_run(STABILITY))
        return
    runs = latest_attempts(runs[runs["status"] != "RUNNING"])
    evaluations, steps = stability_frames(store, runs)
    table = stability_table(runs, evaluations, steps)
    caption = runs_text(runs, STABILITY)
    section.add(
        stability_chart(
            evaluations,
            steps,
            table,
            "Edge of stability: full-batch gradient descent, one column per step size η. Top: "
            "the training loss's sharpness (top Hessian eigenvalue, Lanczos on the whole "
            "training set) at every evaluation, the dashed line at 2/η, where a quadratic with "
            "that curvature stops being stable. Bottom: the training loss at every step (log "
            "scale); a diverged run's line ends where it was stopped. "
            f"{caption}; workload {', '.join(runs['workload'].astype(str).unique())}.",
        )
    )
    ratio = lambda v: "-" if pd.isna(v) else f"{v:.2f}"
    number = lambda v: "-" if pd.isna(v) else f"{significant(v)}"
    shown = pd.DataFrame(
        {
            "η": table["lr"].map("{:g}".format),
            "seed": table["seed"],
            "2/η": table["two_over_eta"].map(number),
            "sharpness at start": table["sharpness_initial"].map(number),
            "max": table["sharpness_max"].map(number),
            f"first step ≥ {REACHED:g}·2/η": table["first_reach_step"].map(lambda v: "-" if pd.isna(v) else f"{v:.0f}"),
            f"then within {EDGE[0]:g}-{EDGE[1]:g}·2/η": table["edge_share"].map(
                lambda v: "-" if pd.isna(v) else f"{v:.0%}"
            ),
            "then median / (2/η)": table["after_median_ratio"].map(ratio),
            "last / (2/η)": table["last_ratio"].map(ratio),
            "then median α": table["alpha_after"].map(lambda v: "-" if pd.isna(v) else f"{v:+.2f}"),
            "loss rose at (steps)": table["loss_increases"].astype(str) + " / " + table["steps"].astype(str),
            "final train loss": table["loss_final"].map(lambda v: "-" if pd.isna(v) else f"{significant(v, 4)}"),
            "status": table["status"],
        }
    )
    section.add(
        Table(
            shown,
            f"Measured sharpness against 2/η per run. {caption}; workload "
            f"{', '.join(runs['workload'].astype(str).unique())}.",
        )
    )
    section.add(Note(stability_sentence(table)))
