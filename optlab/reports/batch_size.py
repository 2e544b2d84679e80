"""Section 4: batch-size effects (Shallue et al. 2019; McCandlish et al. 2018).

Steps to the validation target against batch size, the learning rate retuned per batch size (fresh-seed
reruns of each selection; Kaplan-Meier medians with 95 % intervals, misses counted), against perfect
scaling; the tuning trials and selections, edge-of-grid selections marked; the fixed-learning-rate
series drawn dashed and labelled confounded (Keskar et al. 2017); and the gradient noise scale
B_simple measured at the same parameters for both batch sizes (optlab.reports.noise), with a 95 %
interval over runs, marked on the steps curve only with that interval.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from optlab import palette
from optlab.analysis import stats
from optlab.analysis.noise_scale import b_simple_ci
from optlab.analysis.numbers import significant
from optlab.analysis.target import time_to_target
from optlab.reports import measures, noise, workloads
from optlab.reports.chart import Chart
from optlab.reports.load import Store
from optlab.reports.model import Note, Section, Table, not_run

TITLE = "Batch-size effects"
EXPERIMENT = "batch_size"
CONFOUNDED = "fixed lr (confounded, Keskar et al. 2017)"
REGIMES = ((1.8, "near-perfect scaling"), (1.15, "diminishing returns"), (0.0, "no gain"))


def build(store: Store) -> Section:
    section = Section(
        4,
        TITLE,
        "Steps to the validation target against batch size with the learning rate retuned "
        "per batch size (Shallue et al. 2019): perfect scaling halves the steps per doubling, then "
        "returns diminish, then vanish. The gradient noise scale B_simple (McCandlish et al. 2018) "
        "predicts where: batches much larger than it waste computation.",
    )
    runs = store.runs(EXPERIMENT)
    if runs is None:
        return section.add(not_run(EXPERIMENT))
    everything = store.runs(EXPERIMENT, include_tuning=True)
    if everything is None:  # the experiment has runs, so it exists: only a store changed meanwhile gets here
        return section.add(not_run(EXPERIMENT))
    trials = everything[everything["role"] == "tuning"]
    runs = runs[runs["batch_size"].notna() & runs["status"].isin(["FINISHED", "FAILED"])]
    tuned, fixed = runs[runs["series"] != "fixed_lr"], runs[runs["series"] == "fixed_lr"]
    if tuned.empty:
        return section.add(Note("No finished batch-size runs with a batch size recorded.", kind="warning"))
    hist = store.history(
        runs,
        keys=("val_accuracy", "epoch", "samples_seen", "wall_time", "gradient_equivalents"),
        label="batch-size histories",
    )
    table = per_batch(measures.hits(tuned, hist), trials)
    fixed_table = per_batch(measures.hits(fixed, hist), None) if len(fixed) else None
    target = tuned["target"].dropna()
    target_text = f"{target.iloc[0]:g}" if len(target) else "(none recorded)"
    caption = f"Workload {tuned['workload'].iloc[0]}: {workloads.describe(tuned)}; {workloads.protocol(tuned)}"

    ends = noise_evolution(noise.at_init_and_end(store, tuned), "init/end")  # every rerun, at init and end
    at_target = ends[ends["point"] == "end"].iloc[0] if (ends["point"] == "end").any() else None
    probe = noise.from_probe(store, tuned)
    reference = reference_batch(probe)
    during = noise_evolution(probe[probe["batch_size"] == reference], "probe") if reference else ends.iloc[0:0]

    per_sample = per_sample_noise(store, tuned, reference)
    noise_text = describe_noise(at_target)
    section.add(
        figure(
            table,
            fixed_table,
            at_target,
            during,
            reference,
            target_text,
            f"Left: steps to validation accuracy {target_text} (Kaplan-Meier median over seeds, band: "
            f"95 % interval; misses counted), log-log, with the perfect-scaling line through the "
            f"smallest batch size; {noise_text}. Middle: the selected learning rate per batch size "
            f"(hover: its tuning trials and whether it sits at the edge of its grid; every trial is in "
            f"the learning-rate sensitivity section). Right: B_simple during training"
            + (f" of the B = {reference} reruns (measured by the noise-scale probe)" if reference else "")
            + " with its 95 % interval"
            + (
                f", and B_simple from per-sample gradients (the reruns' `diag/b_simple`, cheap diagnostics; "
                f"B = {int(per_sample['batch_size'].iloc[0])}, mean over {int(per_sample['runs'].max())} runs, band: "
                f"their range)"
                if len(per_sample)
                else ""
            )
            + f"; at initialization and where every rerun stopped in the table "
            f"below. {caption}; {len(trials)} tuning trials"
            + (f"; {len(fixed)} fixed-lr runs, labelled confounded" if len(fixed) else "")
            + ".",
            per_sample,
        )
    )
    section.add(Table(show(table), f"Per batch size, the tuned series (reruns of each selection). {caption}."))
    sentence = scaling_sentence(table, at_target)
    if sentence:
        section.add(Note(sentence))
    edges = table[table["edge"] != ""]
    if len(edges):
        section.add(
            Note(
                f"Selections at the edge of their learning-rate grid at B = "
                f"{', '.join(str(int(b)) for b in edges['batch_size'])}: steps there may be the grid's "
                f"limit, not the batch size's.",
                kind="warning",
            )
        )
    evolution = pd.concat([ends, during], ignore_index=True)
    if len(evolution):
        section.add(
            Table(
                evolution_table(evolution, reference),
                f"Gradient noise scale B_simple = tr Σ / |G|² "
                f"(McCandlish et al. 2018, appendix A) from |g_B|² at B "
                f"= {noise.B_SMALL} and B = {noise.B_BIG} at the same "
                f"parameters ({noise.DRAWS} draws each), ratio of means "
                f"over runs with a 95 % bootstrap interval resampling "
                f"runs. {caption}.",
            )
        )
    if fixed_table is not None:
        section.add(
            Note(
                "The fixed-learning-rate series keeps lr constant across batch sizes: its steps mix the "
                "batch-size effect with an untuned learning rate (Keskar et al. 2017 confound), so it is "
                "drawn dashed and labelled, and not used for conclusions.",
                kind="warning",
            )
        )
    return section


def per_batch(hit: pd.DataFrame, trials: pd.DataFrame | None) -> pd.DataFrame:
    rows = []
    for batch, group in hit.groupby("batch_size", sort=True):
        ttt = time_to_target(group["hit_step"], group["stop_step"], group["failed"])
        first = group.iloc[0]
        trial = first.get("trial", "") or ""
        experiment = str(first.get("experiment", "") or "")
        flags = workloads.edge_flags(trials, first.get("group", ""), trial, {"lr": first.get("lr")}, experiment)
        acc = stats.bootstrap_ci(group.loc[group["status"] == "FINISHED", "final_test_accuracy"])
        rows.append(
            {
                "batch_size": batch,
                "steps": ttt.median,
                "low": ttt.low,
                "high": ttt.high,
                "reached": f"{ttt.reached}/{ttt.n}",
                "lr": first.get("lr"),
                "trials": workloads.trial_count(trials, experiment, first.get("group", ""), first.get("trials")),
                "edge": "; ".join(f.text() for f in flags),
                "ttt": ttt.text(),
                "test_acc": acc.text(3),
            }
        )
    return pd.DataFrame(rows)


def show(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "B": table["batch_size"].astype(int),
            "steps to target": table["ttt"],
            "seeds reached": table["reached"],
            "tuned lr": table["lr"].map("{:g}".format),
            "tuning trials": table["trials"].map(lambda v: "-" if pd.isna(v) else f"{int(v)}"),
            "edge of grid": table["edge"].replace("", "-"),
            "final test acc": table["test_acc"],
        }
    )


def reference_batch(probe: pd.DataFrame, points: int = 4):
    """The batch size whose probe measurements show the noise scale during training: the one closest to
    32 (a customary mini-batch) among those measured at `points` or more steps, else the most measured."""
    if probe.empty:
        return None
    counts = probe.groupby("batch_size")["step"].nunique()
    candidates = counts[counts >= points].index if (counts >= points).any() else counts[counts == counts.max()].index
    return int(min(candidates, key=lambda b: abs(np.log2(b / 32))))


def per_sample_noise(store: Store, runs: pd.DataFrame, reference) -> pd.DataFrame:
    """B_simple from per-sample gradients (metric diag/b_simple, logged by the diagnostics at every full
    evaluation point) of the reruns at one batch size (the probe's reference, else the one closest to 32): per
    step, the mean over runs and their range."""
    columns = ["step", "b_simple", "low", "high", "runs", "batch_size"]
    sizes = runs["batch_size"].dropna().unique()
    if reference is None and len(sizes):
        reference = int(min(sizes, key=lambda b: abs(np.log2(b / 32))))
    chosen = runs[runs["batch_size"] == reference]
    hist = store.history(chosen, keys=("diag/b_simple",), label="per-sample noise scale") if len(chosen) else None
    if hist is None or "diag/b_simple" not in hist:
        return pd.DataFrame(columns=columns)
    values = hist.dropna(subset=["diag/b_simple"])
    values = values[values["diag/b_simple"] > 0]
    table = values.groupby("step")["diag/b_simple"].agg(["mean", "min", "max", "size"]).reset_index()
    return pd.DataFrame(
        {
            "step": table["step"],
            "b_simple": table["mean"],
            "low": table["min"],
            "high": table["max"],
            "runs": table["size"],
            "batch_size": int(reference),
        },
        columns=columns,
    )


def noise_evolution(measured: pd.DataFrame, source: str) -> pd.DataFrame:
    """B_simple with its interval at each point of training (probe: per measured step; else init/end)."""
    columns = ["point", "epoch", "runs", "b_simple", "low", "high"]
    if measured.empty:
        return pd.DataFrame(columns=columns)
    key = "step" if source == "probe" else "point"
    values = measured[key].unique()
    order = sorted(values) if key == "step" else sorted(values, key=lambda v: v != "init")
    rows = []
    for value in order:
        here = measured[measured[key] == value]
        per_run = {r: list(zip(g["g2"], g["trace"])) for r, g in here.groupby("run_id")}
        estimate, low, high = b_simple_ci(per_run)
        rows.append(
            {
                "point": value,
                "epoch": float(here["epoch"].median()),
                "runs": len(per_run),
                "b_simple": estimate,
                "low": low,
                "high": high,
            }
        )
    return pd.DataFrame(rows, columns=columns)


def evolution_table(evolution: pd.DataFrame, reference) -> pd.DataFrame:
    def interval(r):
        if not math.isfinite(r.b_simple):
            return "undefined (|G|² or tr Σ not positive)"
        if not (math.isfinite(r.low) and math.isfinite(r.high)):
            return (
                f"{significant(r.b_simple)} [{significant(r.low)}, ∞]"
                if math.isfinite(r.low)
                else f"{significant(r.b_simple)}"
            )
        return f"{significant(r.b_simple)} [{significant(r.low)}, {significant(r.high)}]"

    names = {"init": "initialization (all reruns)", "end": "where each rerun stopped (at the target)"}
    point = evolution["point"].map(lambda p: names.get(p, f"step {p} (B = {reference} reruns)"))
    return pd.DataFrame(
        {
            "point of training": point,
            "epoch (median)": evolution["epoch"].map(significant),
            "runs": evolution["runs"],
            "B_simple [95 % CI]": [interval(r) for r in evolution.itertuples()],
        }
    )


def describe_noise(at_target) -> str:
    if at_target is None or not math.isfinite(at_target["b_simple"]):
        return "B_simple could not be estimated at the same parameters (no measurable runs)"
    where = "where the reruns stopped (on reaching the target)"
    if math.isfinite(at_target["low"]) and math.isfinite(at_target["high"]):
        return (
            f"shaded: B_simple {where}, {significant(at_target['b_simple'])} with its 95 % interval "
            f"[{significant(at_target['low'])}, {significant(at_target['high'])}] over {int(at_target['runs'])} runs"
        )
    return (
        f"B_simple {where} is {significant(at_target['b_simple'])} but its interval is unbounded, so it is not marked "
        f"on the curve"
    )


STEPS, LR, NOISE = "steps to target", "tuned learning rate", "noise scale during training"
PER_SAMPLE = "B_simple (per-sample gradients)"
REFERENCE_COLOURS = {"perfect scaling (steps ∝ 1/B)": "#000000", CONFOUNDED: "#888888"}


def figure(
    table: pd.DataFrame,
    fixed_table,
    at_target,
    during: pd.DataFrame,
    reference,
    target_text: str,
    caption: str,
    per_sample: pd.DataFrame | None = None,
) -> Chart:
    """Steps to target, the tuned learning rate and the noise scale, as one chart of three panels."""
    strategy = "minibatch"
    rows = []

    def add(panel, label, x, y, low=np.nan, high=np.nan, colour_key=None, **hover):
        rows.append(
            {
                "panel": panel,
                "label": label,
                "x": float(x),
                "y": float(y),
                "low": low,
                "high": high,
                "key": colour_key or strategy,
                "note": "",
                **hover,
            }
        )

    reached = table[np.isfinite(table["steps"])]
    for r in reached.itertuples():
        add(
            STEPS,
            "lr tuned per batch size",
            r.batch_size,
            r.steps,
            r.low if np.isfinite(r.low) else r.steps,
            r.high if np.isfinite(r.high) else r.steps,
            note=f"{r.reached} seeds reached" + (f"; lr at the edge of its grid: {r.edge}" if r.edge else ""),
        )
    if len(reached):
        b0, s0 = reached["batch_size"].iloc[0], reached["steps"].iloc[0]
        for b in sorted(table["batch_size"]):
            add(STEPS, "perfect scaling (steps ∝ 1/B)", b, s0 * b0 / b, colour_key="perfect scaling (steps ∝ 1/B)")
    if fixed_table is not None:
        for r in fixed_table[np.isfinite(fixed_table["steps"])].itertuples():
            add(STEPS, CONFOUNDED, r.batch_size, r.steps, colour_key=CONFOUNDED, note=f"{r.reached} seeds reached")
    for r in table.itertuples():
        if pd.notna(r.lr):
            trials = "-" if pd.isna(r.trials) else f"{int(r.trials)}"
            add(LR, "selected lr", r.batch_size, r.lr, note=f"{trials} trials" + (f"; {r.edge}" if r.edge else ""))
    for r in during[np.isfinite(during["b_simple"].astype(float))].itertuples():
        add(
            NOISE,
            f"B_simple of the B = {reference} reruns",
            float(r.point) + 1,
            r.b_simple,
            r.low if np.isfinite(r.low) else r.b_simple,
            r.high if np.isfinite(r.high) else r.b_simple,
            colour_key="B_simple",
            note=f"{r.runs} runs",
        )
    if per_sample is not None:
        for r in per_sample.itertuples():
            add(
                NOISE,
                f"B_simple from per-sample gradients, B = {r.batch_size} reruns",
                float(r.step) + 1,
                r.b_simple,
                r.low,
                r.high,
                colour_key=PER_SAMPLE,
                note=f"{r.runs} runs",
            )
    data = pd.DataFrame(rows)
    spans = []
    if at_target is not None and all(math.isfinite(at_target[k]) for k in ("b_simple", "low", "high")):
        spans.append(
            {
                "col": STEPS,
                "low": at_target["low"],
                "high": at_target["high"],
                "color": "#d62728",
                "label": "B_simple at the target, 95 % CI "
                f"[{significant(at_target['low'])}, {significant(at_target['high'])}]",
            }
        )
    colours = {strategy: palette.color(strategy), **REFERENCE_COLOURS, "B_simple": "#d62728", PER_SAMPLE: "#9467bd"}
    dashes = {CONFOUNDED: "dash", "perfect scaling (steps ∝ 1/B)": "dot"}
    return Chart(
        data,
        x="x",
        y="y",
        low="low",
        high="high",
        color="key",
        colors=colours,
        label="label",
        dash="key",
        dashes=dashes,
        col="panel",
        col_order=[STEPS, LR, NOISE],
        mode="lines+markers",
        x_title={STEPS: "batch size B", LR: "batch size B", NOISE: "training step (log scale, counted from 1)"},
        y_title={
            STEPS: f"steps to validation accuracy {target_text}",
            LR: "learning rate",
            NOISE: "B_simple (95 % CI)",
        },
        log_x=True,
        log_y=True,
        hover=["note"],
        spans=spans,
        caption=caption,
    )


NO_GAIN = 0.15  # a doubling that saves less than this fraction of the steps is no gain


def step_factors(b: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Per neighbouring pair of batch sizes, the factor the steps fall by per doubling (s[i] / s[i+1])
    ** (1 / log2(b[i+1] / b[i]))."""
    return (s[:-1] / s[1:]) ** (1 / np.log2(b[1:] / b[:-1]))


def scaling_sentence(table: pd.DataFrame, at_target=None) -> str:
    """The scaling regimes the medians show, with the thresholds stated: near-perfect scaling while the
    average fall per doubling from the smallest batch size stays >= 1.8x; no gain from the smallest batch
    size beyond which no larger one needs 15 % fewer steps per doubling; diminishing returns in between."""
    reached = table[np.isfinite(table["steps"])].sort_values("batch_size")
    if len(reached) < 3:
        return ""
    b, s = reached["batch_size"].to_numpy(float), reached["steps"].to_numpy(float)
    doublings = np.log2(b / b[0])
    per_doubling = np.where(doublings > 0, (s[0] / s) ** (1 / np.where(doublings > 0, doublings, 1)), np.inf)
    perfect = int(np.flatnonzero(per_doubling >= REGIMES[0][0])[-1])  # index 0 always qualifies
    # no gain from b[i] on: no larger batch needs 15 % fewer steps per doubling than b[i] does, nor than
    # the batch size before it (a reader compares neighbouring rows of the table)
    step = step_factors(b, s)
    flat = next(
        i
        for i in range(len(s))
        if (s[i + 1 :] >= s[i] * (1 - NO_GAIN) ** np.log2(b[i + 1 :] / b[i])).all()
        and (step[i:] < 1 / (1 - NO_GAIN)).all()
    )
    parts = [f"steps to target fall from {significant(s[0])} at B = {b[0]:.0f}"]
    if perfect > 0:
        parts.append(
            f"to {significant(s[perfect])} at B = {b[perfect]:.0f} (÷{significant(s[0] / s[perfect], 2)} over "
            f"{doublings[perfect]:.0f} doublings, ÷{significant(per_doubling[perfect], 2)} per doubling: near-perfect "
            f"scaling)"
        )
    if flat > perfect:
        d = np.log2(b[flat] / b[perfect])
        local = step[perfect:flat]
        spread = (
            f"; from one batch size to the next ÷{significant(local.min(), 2)} "
            f"to ÷{significant(local.max(), 2)} per doubling"
            if len(local) > 1 and f"{significant(local.min(), 2)}" != f"{significant(local.max(), 2)}"
            else ""
        )
        parts.append(
            f"then to {significant(s[flat])} at B = {b[flat]:.0f} "
            f"(÷{significant((s[perfect] / s[flat]) ** (1 / d), 2)} per "
            f"doubling on average{spread}: diminishing returns)"
        )
    text = "Measured (Kaplan-Meier medians): " + ", ".join(parts) + "."
    if flat < len(s) - 1:
        text += (
            f" Beyond B = {b[flat]:.0f} no larger batch needs {NO_GAIN * 100:.0f} % fewer steps per doubling (medians "
            f"{significant(s[flat + 1 :].min())}-{significant(s[flat + 1 :].max())}): no gain."
        )
    if (
        at_target is not None
        and math.isfinite(at_target["b_simple"])
        and math.isfinite(at_target["low"])
        and math.isfinite(at_target["high"])
    ):
        inside = at_target["low"] <= b[flat] <= at_target["high"]
        text += (
            f" The noise scale where the runs reached the target, B_simple = {significant(at_target['b_simple'])} "
            f"[{significant(at_target['low'])}, {significant(at_target['high'])}], "
            f"{'contains' if inside else 'does not contain'} "
            f"that batch size (McCandlish et al. predict the gains to fade around B_simple)."
        )
    missed = table[~np.isfinite(table["steps"])]
    if len(missed):
        text += f" Not reached by most seeds at B = {', '.join(str(int(x)) for x in missed['batch_size'])}."
    return text
