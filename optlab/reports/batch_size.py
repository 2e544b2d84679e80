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

from optlab.analysis import stats
from optlab.analysis.noise_scale import b_simple_ci
from optlab.analysis.target import time_to_target
from optlab.reports import measures, noise, style, workloads
from optlab.reports.load import Store
from optlab.reports.model import Figure, Note, Section, Table, not_run

TITLE = "Batch-size effects"
EXPERIMENT = "batch_size"
CONFOUNDED = "fixed lr (confounded, Keskar et al. 2017)"
REGIMES = ((1.8, "near-perfect scaling"), (1.15, "diminishing returns"), (0.0, "no gain"))


def build(store: Store) -> Section:
    section = Section(4, TITLE, "Steps to the validation target against batch size with the learning rate retuned "
                      "per batch size (Shallue et al. 2019): perfect scaling halves the steps per doubling, then "
                      "returns diminish, then vanish. The gradient noise scale B_simple (McCandlish et al. 2018) "
                      "predicts where: batches much larger than it waste computation.")
    runs = store.runs(EXPERIMENT)
    if runs is None:
        return section.add(not_run(EXPERIMENT))
    everything = store.runs(EXPERIMENT, include_tuning=True)
    trials = everything[everything["role"] == "tuning"]
    runs = runs[runs["batch_size"].notna() & runs["status"].isin(["FINISHED", "FAILED"])]
    tuned, fixed = runs[runs["series"] != "fixed_lr"], runs[runs["series"] == "fixed_lr"]
    if tuned.empty:
        return section.add(Note("No finished batch-size runs with a batch size recorded.", kind="warning"))
    hist = store.history(runs, keys=("val_accuracy", "epoch", "samples_seen", "wall_time", "gradient_equivalents"),
                         label="batch-size histories")
    table = per_batch(measures.hits(tuned, hist), trials)
    fixed_table = per_batch(measures.hits(fixed, hist), None) if len(fixed) else None
    target = tuned["target"].dropna()
    target_text = f"{target.iloc[0]:g}" if len(target) else "(none recorded)"
    caption = f"Workload {tuned['workload'].iloc[0]}: {workloads.describe(tuned)}; {workloads.protocol(tuned)}"

    ends = noise_evolution(noise.at_init_and_end(store, tuned), "init/end")   # every rerun, at init and end
    at_target = ends[ends["point"] == "end"].iloc[0] if (ends["point"] == "end").any() else None
    probe = noise.from_probe(store, tuned)
    reference = reference_batch(probe)
    during = noise_evolution(probe[probe["batch_size"] == reference], "probe") if reference else ends.iloc[0:0]

    fig, axes = style.figure(1, 3, width=4.6, height=3.8)
    steps_panel(axes[0][0], table, fixed_table, at_target, target_text)
    trials_panel(axes[0][1], trials, table)
    noise_panel(axes[0][2], during, ends, reference)
    fig.tight_layout()
    noise_text = describe_noise(at_target)
    section.add(Figure(fig, f"Left: steps to validation accuracy {target_text} (Kaplan-Meier median over seeds, bars: "
                            f"95 % interval; misses counted), log-log, with the perfect-scaling line through the "
                            f"smallest batch size; {noise_text}. Middle: every tuning trial and the selected learning "
                            f"rate (red ring: at the edge of its grid). Right: B_simple during training"
                            + (f" of the B = {reference} reruns (measured by the noise-scale probe)" if reference else "")
                            + f", and over all reruns at initialization and where they stopped. {caption}; "
                            f"{len(trials)} tuning trials" + (f"; {len(fixed)} fixed-lr runs, labelled confounded"
                                                              if len(fixed) else "") + "."))
    section.add(Table(show(table), f"Per batch size, the tuned series (reruns of each selection). {caption}."))
    sentence = scaling_sentence(table, at_target)
    if sentence:
        section.add(Note(sentence))
    edges = table[table["edge"] != ""]
    if len(edges):
        section.add(Note(f"Selections at the edge of their learning-rate grid at B = "
                         f"{', '.join(str(int(b)) for b in edges['batch_size'])}: steps there may be the grid's "
                         f"limit, not the batch size's.", kind="warning"))
    evolution = pd.concat([ends, during], ignore_index=True)
    if len(evolution):
        section.add(Table(evolution_table(evolution, reference), f"Gradient noise scale B_simple = tr Σ / |G|² "
                                                                 f"(McCandlish et al. 2018, appendix A) from |g_B|² at B "
                                                                 f"= {noise.B_SMALL} and B = {noise.B_BIG} at the same "
                                                                 f"parameters ({noise.DRAWS} draws each), ratio of means "
                                                                 f"over runs with a 95 % bootstrap interval resampling "
                                                                 f"runs. {caption}."))
    if fixed_table is not None:
        section.add(Note("The fixed-learning-rate series keeps lr constant across batch sizes: its steps mix the "
                         "batch-size effect with an untuned learning rate (Keskar et al. 2017 confound), so it is "
                         "drawn dashed and labelled, and not used for conclusions.", kind="warning"))
    return section


def per_batch(hit: pd.DataFrame, trials: pd.DataFrame | None) -> pd.DataFrame:
    rows = []
    for batch, group in hit.groupby("batch_size", sort=True):
        ttt = time_to_target(group["hit_step"], group["stop_step"], group["failed"])
        first = group.iloc[0]
        trial = first.get("trial", "") or ""
        flags = workloads.edge_flags(trials, first.get("group", ""), trial, {"lr": first.get("lr")})
        acc = stats.bootstrap_ci(group.loc[group["status"] == "FINISHED", "final_test_accuracy"])
        rows.append({"batch_size": batch, "steps": ttt.median, "low": ttt.low, "high": ttt.high,
                     "reached": f"{ttt.reached}/{ttt.n}", "lr": first.get("lr"),
                     "trials": first.get("trials"), "edge": "; ".join(f.text() for f in flags),
                     "ttt": ttt.text(), "test_acc": acc.text(3)})
    return pd.DataFrame(rows)


def show(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"B": table["batch_size"].astype(int), "steps to target": table["ttt"],
                         "seeds reached": table["reached"], "tuned lr": table["lr"].map("{:g}".format),
                         "tuning trials": table["trials"].map(lambda v: "-" if pd.isna(v) else f"{int(v)}"),
                         "edge of grid": table["edge"].replace("", "-"), "final test acc": table["test_acc"]})


def reference_batch(probe: pd.DataFrame, points: int = 4):
    """The batch size whose probe measurements show the noise scale during training: the one closest to
    32 (a customary mini-batch) among those measured at `points` or more steps, else the most measured."""
    if probe.empty:
        return None
    counts = probe.groupby("batch_size")["step"].nunique()
    candidates = counts[counts >= points].index if (counts >= points).any() else counts[counts == counts.max()].index
    return int(min(candidates, key=lambda b: abs(np.log2(b / 32))))


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
        rows.append({"point": value, "epoch": float(here["epoch"].median()), "runs": len(per_run),
                     "b_simple": estimate, "low": low, "high": high})
    return pd.DataFrame(rows, columns=columns)


def evolution_table(evolution: pd.DataFrame, reference) -> pd.DataFrame:
    def interval(r):
        if not math.isfinite(r.b_simple):
            return "undefined (|G|² or tr Σ not positive)"
        if not (math.isfinite(r.low) and math.isfinite(r.high)):
            return f"{r.b_simple:.3g} [{r.low:.3g}, ∞]" if math.isfinite(r.low) else f"{r.b_simple:.3g}"
        return f"{r.b_simple:.3g} [{r.low:.3g}, {r.high:.3g}]"

    names = {"init": "initialization (all reruns)", "end": "where each rerun stopped (at the target)"}
    point = evolution["point"].map(lambda p: names.get(p, f"step {p} (B = {reference} reruns)"))
    return pd.DataFrame({"point of training": point, "epoch (median)": evolution["epoch"].map("{:.3g}".format),
                         "runs": evolution["runs"], "B_simple [95 % CI]": [interval(r) for r in evolution.itertuples()]})


def describe_noise(at_target) -> str:
    if at_target is None or not math.isfinite(at_target["b_simple"]):
        return "B_simple could not be estimated at the same parameters (no measurable runs)"
    where = "where the reruns stopped (on reaching the target)"
    if math.isfinite(at_target["low"]) and math.isfinite(at_target["high"]):
        return (f"shaded: B_simple {where}, {at_target['b_simple']:.3g} with its 95 % interval "
                f"[{at_target['low']:.3g}, {at_target['high']:.3g}] over {int(at_target['runs'])} runs")
    return (f"B_simple {where} is {at_target['b_simple']:.3g} but its interval is unbounded, so it is not marked "
            f"on the curve")


def steps_panel(ax, table, fixed_table, at_target, target_text) -> None:
    reached = table[np.isfinite(table["steps"])]
    low = (reached["steps"] - reached["low"]).clip(lower=0)
    high = (reached["high"] - reached["steps"]).where(np.isfinite(reached["high"]), 0)
    ax.errorbar(reached["batch_size"], reached["steps"], yerr=[low.fillna(0), high.fillna(0)], fmt="o-", color="C0",
                capsize=3, label="lr tuned per batch size")
    edge = reached[reached["edge"] != ""]
    ax.scatter(edge["batch_size"], edge["steps"], s=90, facecolor="none", edgecolor="C3", lw=1.4,
               label="lr at the edge of its grid" if len(edge) else None)
    if len(reached):
        b0, s0 = reached["batch_size"].iloc[0], reached["steps"].iloc[0]
        bs = np.array(sorted(table["batch_size"]))
        ax.plot(bs, s0 * b0 / bs, ":", color="black", label="perfect scaling (steps ∝ 1/B)")
    if fixed_table is not None:
        f = fixed_table[np.isfinite(fixed_table["steps"])]
        ax.plot(f["batch_size"], f["steps"], "s--", color="grey", label=CONFOUNDED)
    if at_target is not None and math.isfinite(at_target["b_simple"]) and math.isfinite(at_target["low"]) \
            and math.isfinite(at_target["high"]):
        ax.axvspan(at_target["low"], at_target["high"], color="C3", alpha=0.15, lw=0,
                   label=f"B_simple 95 % CI [{at_target['low']:.3g}, {at_target['high']:.3g}]")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    measured = pd.concat([reached["steps"], fixed_table["steps"] if fixed_table is not None else pd.Series(dtype=float)])
    measured = measured[np.isfinite(measured)]
    if len(measured):
        ax.set_ylim(measured.min() / 4, measured.max() * 2)
    ax.set_xlabel("batch size B")
    ax.set_ylabel(f"steps to validation accuracy {target_text}")
    ax.set_title("steps to target")
    ax.legend(loc="lower left", fontsize=6)


def trials_panel(ax, trials: pd.DataFrame, table: pd.DataFrame) -> None:
    if not trials.empty:
        ok = trials["final_steps_to_target"].notna() if "final_steps_to_target" in trials else trials["lr"].isna()
        ax.scatter(trials.loc[~ok, "batch_size"], trials.loc[~ok, "lr"], marker="x", color="lightgrey",
                   label="trial: target missed")
        ax.scatter(trials.loc[ok, "batch_size"], trials.loc[ok, "lr"], marker="o", facecolor="none",
                   edgecolor="grey", label="trial: target reached")
    ax.plot(table["batch_size"], table["lr"], "o-", color="C0", label="selected lr")
    edge = table[table["edge"] != ""]
    ax.scatter(edge["batch_size"], edge["lr"], s=90, facecolor="none", edgecolor="C3", lw=1.4,
               label="at the edge of its grid" if len(edge) else None)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size B")
    ax.set_ylabel("learning rate")
    ax.set_title("tuned learning rate")
    ax.legend(loc="best", fontsize=6)


def noise_panel(ax, during: pd.DataFrame, ends: pd.DataFrame, reference) -> None:
    def draw(frame, x, fmt, color, label):
        ok = frame[np.isfinite(frame["b_simple"].astype(float))]
        if ok.empty:
            return False
        low = (ok["b_simple"] - ok["low"]).where(np.isfinite(ok["low"]), 0)
        high = (ok["high"] - ok["b_simple"]).where(np.isfinite(ok["high"]), 0)
        ax.errorbar(x(ok), ok["b_simple"], yerr=[low, high], fmt=fmt, color=color, capsize=3, label=label)
        return True

    drawn = draw(during, lambda f: f["point"].astype(float) + 1, "o-", "C3",
                 f"B = {reference} reruns, during training") if len(during) else False
    if len(ends):
        last = float(during["point"].max()) + 1 if len(during) else 1.0
        xs = {"init": 1.0, "end": last * 1.5}
        drawn |= draw(ends, lambda f: f["point"].map(xs), "s", "C0", "all reruns: init, and where they stopped")
    if not drawn:
        ax.text(0.5, 0.5, "no valid estimate", ha="center", va="center", transform=ax.transAxes, color="grey")
        return
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("step + 1")
    ax.set_ylabel("B_simple (95 % CI)")
    ax.set_title("noise scale during training")
    ax.legend(loc="best", fontsize=6)


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
    perfect = int(np.flatnonzero(per_doubling >= REGIMES[0][0])[-1])   # index 0 always qualifies
    # no gain from b[i] on: no larger batch needs 15 % fewer steps per doubling than b[i] does
    flat = next(i for i in range(len(s)) if (s[i + 1:] >= s[i] * (1 - 0.15) ** np.log2(b[i + 1:] / b[i])).all())
    parts = [f"steps to target fall from {s[0]:.3g} at B = {b[0]:.0f}"]
    if perfect > 0:
        parts.append(f"to {s[perfect]:.3g} at B = {b[perfect]:.0f} (÷{s[0] / s[perfect]:.2g} over "
                     f"{doublings[perfect]:.0f} doublings, ÷{per_doubling[perfect]:.2g} per doubling: near-perfect "
                     f"scaling)")
    if flat > perfect:
        d = np.log2(b[flat] / b[perfect])
        parts.append(f"then to {s[flat]:.3g} at B = {b[flat]:.0f} (÷{(s[perfect] / s[flat]) ** (1 / d):.2g} per "
                     f"doubling: diminishing returns)")
    text = "Measured (Kaplan-Meier medians): " + ", ".join(parts) + "."
    if flat < len(s) - 1:
        text += (f" Beyond B = {b[flat]:.0f} no larger batch needs 15 % fewer steps per doubling (medians "
                 f"{s[flat + 1:].min():.3g}-{s[flat + 1:].max():.3g}): no gain.")
    if at_target is not None and math.isfinite(at_target["b_simple"]) and math.isfinite(at_target["low"]) \
            and math.isfinite(at_target["high"]):
        inside = at_target["low"] <= b[flat] <= at_target["high"]
        text += (f" The noise scale where the runs reached the target, B_simple = {at_target['b_simple']:.3g} "
                 f"[{at_target['low']:.3g}, {at_target['high']:.3g}], {'contains' if inside else 'does not contain'} "
                 f"that batch size (McCandlish et al. predict the gains to fade around B_simple).")
    missed = table[~np.isfinite(table["steps"])]
    if len(missed):
        text += f" Not reached by most seeds at B = {', '.join(str(int(x)) for x in missed['batch_size'])}."
    return text
