"""Section 3: batch-size effects (Shallue et al. 2019; McCandlish et al. 2018).

Steps to target vs batch size with the learning rate retuned per batch size, against perfect scaling;
the tuned learning rates; final accuracy; and the gradient noise scale B_simple = tr(Sigma)/|G|^2,
estimated from the mean squared mini-batch gradient norms at two batch sizes:
  |G|^2   ~ (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small)
  tr Sigma ~ (|G_small|^2 - |G_big|^2) / (1/B_small - 1/B_big)
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from optlab.reports import style
from optlab.reports.load import Store, runs_text
from optlab.reports.model import Figure, Note, Section, Table, not_run

TITLE = "Batch-size effects"
EXPERIMENT = "batch_size"
NOISE_WINDOW = 20  # early steps whose squared gradient norms are averaged (parameters still near init)
CONFOUNDED = "fixed lr (confounded, Keskar et al. 2017)"


def split(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(tuned series, all tuning trials, fixed-lr series)."""
    runs = runs[runs["batch_size"].notna() & runs["status"].isin(["FINISHED", "FAILED"])].copy()
    fixed = runs[runs["series"] == "fixed_lr"]
    rest = runs[runs["series"] != "fixed_lr"]
    selected = rest["selected"].str.lower() == "true"
    if (rest["role"] == "tuning").any():
        return rest[selected | (rest["role"] == "point")], rest[rest["role"] == "tuning"], fixed
    # no tuning tags: pick per batch size the lr with the fewest median steps to target
    score = rest.assign(cost=rest["final_steps_to_target"] if "final_steps_to_target" in rest else np.inf)
    score["cost"] = score["cost"].fillna(np.inf)
    best = score.groupby(["batch_size", "lr"])["cost"].median().reset_index()
    best = best.loc[best.groupby("batch_size")["cost"].idxmin(), ["batch_size", "lr"]]
    return rest.merge(best, on=["batch_size", "lr"]), rest, fixed


def per_batch(runs: pd.DataFrame) -> pd.DataFrame:
    steps = runs["final_steps_to_target"] if "final_steps_to_target" in runs else pd.Series(np.nan, index=runs.index)
    runs = runs.assign(steps=steps)
    return runs.groupby("batch_size").agg(
        steps=("steps", "median"), reached=("steps", lambda s: int(s.notna().sum())), runs=("run_id", "size"),
        lr=("lr", "median"), acc=("final_test_accuracy", "mean"), acc_sd=("final_test_accuracy", "std"),
    ).reset_index()


def mean_sq_grad(store: Store, runs: pd.DataFrame) -> pd.Series:
    """Mean |g_B|^2 over the first NOISE_WINDOW steps, averaged over each batch size's runs."""
    values = {}
    for run in runs.itertuples():
        g = store.metric(run.run_id, "grad_norm")
        if g.empty:
            continue
        early = g.sort_values("step").head(NOISE_WINDOW)["value"].to_numpy(float)
        values.setdefault(run.batch_size, []).append(np.mean(early ** 2))
    return pd.Series({b: float(np.mean(v)) for b, v in values.items()}).sort_index()


def noise_scale(sq: pd.Series) -> pd.DataFrame:
    """B_simple for every pair of batch sizes (rows with a non-positive |G|^2 or tr Sigma are invalid)."""
    rows = []
    for b_small, b_big in itertools.combinations(sq.index, 2):
        g_small, g_big = sq[b_small], sq[b_big]
        g2 = (b_big * g_big - b_small * g_small) / (b_big - b_small)
        trace = (g_small - g_big) / (1 / b_small - 1 / b_big)
        valid = g2 > 0 and trace > 0
        rows.append({"B_small": int(b_small), "B_big": int(b_big), "|G|^2": g2, "tr Sigma": trace,
                     "B_simple": trace / g2 if valid else np.nan})
    return pd.DataFrame(rows)


def build(store: Store) -> Section:
    section = Section(3, TITLE, "Steps to the target accuracy against batch size with the learning rate retuned "
                      "per batch size (Shallue et al. 2019): perfect scaling halves the steps per doubling, then "
                      "returns diminish, then vanish. The gradient noise scale B_simple (McCandlish et al. "
                      "2018) predicts where: batches much larger than it waste computation.")
    runs = store.runs(EXPERIMENT, include_tuning=True)
    if runs is None:
        return section.add(not_run(EXPERIMENT))
    tuned, trials, fixed = split(runs)
    if tuned.empty:
        return section.add(Note("No finished batch-size runs with a batch size recorded.", kind="warning"))
    table = per_batch(tuned)
    sq = mean_sq_grad(store, tuned)
    pairs = noise_scale(sq) if len(sq) >= 2 else pd.DataFrame()
    b_simple = float(pairs["B_simple"].median()) if len(pairs) and pairs["B_simple"].notna().any() else np.nan
    target = tuned["target"].dropna()
    target_text = f"{target.iloc[0]:g}" if len(target) else "(none recorded)"
    caption_runs = runs_text(tuned, EXPERIMENT)

    fig, axes = style.figure(1, 3, width=4.6, height=3.8)
    ax = axes[0][0]
    reached = table.dropna(subset=["steps"])
    ax.plot(reached["batch_size"], reached["steps"], "o-", color="C0", label="lr tuned per batch size")
    if len(reached):
        b0, s0 = reached["batch_size"].iloc[0], reached["steps"].iloc[0]
        bs = np.array(sorted(table["batch_size"]))
        ax.plot(bs, s0 * b0 / bs, ":", color="black", label="perfect scaling (steps ∝ 1/B)")
    if not fixed.empty:
        f = per_batch(fixed).dropna(subset=["steps"])
        ax.plot(f["batch_size"], f["steps"], "s--", color="grey", label=CONFOUNDED)
    if np.isfinite(b_simple):
        ax.axvline(b_simple, color="C3", ls="--", lw=1)
        ax.text(b_simple, 0.97, f" B_simple≈{b_simple:.3g}", color="C3", transform=ax.get_xaxis_transform(),
                va="top", fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    measured = pd.concat([reached["steps"], per_batch(fixed)["steps"] if not fixed.empty else pd.Series(dtype=float)])
    if measured.notna().any():  # keep the data readable: the scaling line may run far below it
        ax.set_ylim(measured.min() / 4, measured.max() * 2)
    ax.set_xlabel("batch size B")
    ax.set_ylabel(f"steps to test accuracy {target_text}")
    ax.set_title("steps to target")
    ax.legend(loc="lower left")

    ax = axes[0][1]
    if not trials.empty:
        ok = trials["final_steps_to_target"].notna() if "final_steps_to_target" in trials else trials["lr"].isna()
        ax.scatter(trials.loc[~ok, "batch_size"], trials.loc[~ok, "lr"], marker="x", color="lightgrey",
                   label="trial: target missed")
        ax.scatter(trials.loc[ok, "batch_size"], trials.loc[ok, "lr"], marker="o", facecolor="none",
                   edgecolor="grey", label="trial: target reached")
    ax.plot(table["batch_size"], table["lr"], "o-", color="C0", label="selected lr")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size B")
    ax.set_ylabel("learning rate")
    ax.set_title("tuned learning rate")
    ax.legend(loc="best")

    ax = axes[0][2]
    ax.errorbar(table["batch_size"], table["acc"], yerr=table["acc_sd"].fillna(0), fmt="o-", color="C0",
                capsize=3, label="lr tuned per batch size")
    if not fixed.empty:
        f = per_batch(fixed)
        ax.errorbar(f["batch_size"], f["acc"], yerr=f["acc_sd"].fillna(0), fmt="s--", color="grey", capsize=3,
                    label=CONFOUNDED)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size B")
    ax.set_ylabel("final test accuracy")
    ax.set_title("final accuracy")
    ax.legend(loc="best")
    fig.tight_layout()
    noise_text = (f"B_simple ≈ {b_simple:.3g} (median over {int(pairs['B_simple'].notna().sum())} valid batch-size "
                  f"pairs), from mean |g_B|² over the first {NOISE_WINDOW} steps" if np.isfinite(b_simple)
                  else "B_simple could not be estimated (needs grad_norm at two batch sizes with |G|² > 0)")
    section.add(Figure(fig, f"Left: median steps over seeds to test accuracy {target_text}, log-log, with the "
                            f"perfect-scaling line through the smallest batch size; {noise_text}. Middle: every "
                            f"tuning trial and the selected learning rate. Right: final test accuracy (mean ± sd). "
                            f"{caption_runs}; {len(trials)} tuning trials"
                            + (f"; {len(fixed)} fixed-lr runs, labelled confounded" if len(fixed) else "") + "."))
    shown = table.assign(steps=table["steps"].map(lambda v: "not reached" if pd.isna(v) else f"{v:.0f}"),
                         acc=table["acc"].map("{:.4f}".format), lr=table["lr"].map("{:g}".format))
    shown = shown.drop(columns=["acc_sd"]).rename(columns={"batch_size": "B", "steps": "steps to target (median)",
                                                           "reached": "seeds reached", "lr": "tuned lr",
                                                           "acc": "final test acc"})
    shown["B"] = shown["B"].astype(int)
    section.add(Table(shown, f"Per batch size, the tuned series. {caption_runs}."))
    if len(pairs):
        shown_pairs = pairs.copy()
        for col in ("|G|^2", "tr Sigma", "B_simple"):
            shown_pairs[col] = shown_pairs[col].map(lambda v: "invalid" if pd.isna(v) else f"{v:.4g}")
        section.add(Table(shown_pairs, "Gradient noise scale from each pair of batch sizes (McCandlish et al. "
                                       "2018, appendix A); pairs giving a non-positive |G|² or tr Σ are invalid. "
                                       f"{caption_runs}."))
    if not fixed.empty:
        section.add(Note("The fixed-learning-rate series keeps lr constant across batch sizes: its accuracy gap "
                         "mixes the batch-size effect with an untuned learning rate (Keskar et al. 2017 "
                         "confound), so it is drawn dashed and labelled, and not used for conclusions.",
                         kind="warning"))
    return section
