"""Section 2: time and steps to the target accuracy, and an AlgoPerf-style performance profile.

Performance profile (Dolan & Moré; AlgoPerf): for each workload w and strategy s, t(s, w) is the median
over seeds of the cost to reach the target (infinite if never reached); rho_s(tau) is the fraction of
workloads on which t(s, w) <= tau * min_s' t(s', w). Higher and further left is better.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

from optlab.reports import convergence, style
from optlab.reports.load import Store, runs_text
from optlab.reports.model import Figure, Note, Section, Table, not_run

TITLE = "Time to target"
WORKLOAD_KEYS = ("experiment", "dataset", "hidden", "variant", "label_noise", "target")
COSTS = [("wall_time", "wall time"), ("gradient_equivalents", "gradient equivalents")]


def hits(runs: pd.DataFrame, hist: pd.DataFrame, default_target: float) -> pd.DataFrame:
    """Per run: the target used and the first evaluation at which test accuracy reached it."""
    runs = runs.copy()
    runs["target"] = runs["target"].fillna(default_target)
    rows = []
    for run in runs.itertuples():
        h = hist[hist["run_id"] == run.run_id].sort_values("step")
        row = {"run_id": run.run_id, "target": run.target}
        reached = h[h["test_accuracy"] >= run.target] if "test_accuracy" in h else h.iloc[0:0]
        if len(reached):
            first = reached.iloc[0]
            for key in ("step", "epoch", "wall_time", "gradient_equivalents", "evaluations"):
                row[key] = first.get(key, np.nan)
        rows.append(row)
    out = pd.DataFrame(rows)
    for key in ("step", "epoch", "wall_time", "gradient_equivalents", "evaluations"):
        if key not in out:
            out[key] = np.nan
    return runs.drop(columns=["target"]).merge(out, on="run_id")


def summary_table(hit: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for label, group in hit.groupby("label", sort=True):
        done = group.dropna(subset=["step"])
        med = lambda key, fmt: fmt.format(done[key].median()) if len(done) else "not reached"
        rows.append({"strategy": label, "family": group["family"].iloc[0],
                     "target acc": f"{group['target'].iloc[0]:g}",
                     "reached": f"{len(done)}/{len(group)}", "steps (median)": med("step", "{:.0f}"),
                     "time s (median)": med("wall_time", "{:.3g}"), "epochs (median)": med("epoch", "{:.3g}"),
                     "grad. equiv. (median)": med("gradient_equivalents", "{:.3g}")})
    return pd.DataFrame(rows)


def profile(hit: pd.DataFrame, cost: str) -> tuple[pd.DataFrame, int]:
    """rho(tau) per strategy on a log grid of tau, and the number of workloads."""
    hit = hit.copy()
    for key in WORKLOAD_KEYS:
        hit[key] = hit[key].astype(str) if key in hit else ""
    per = (hit.groupby([*WORKLOAD_KEYS, "strategy", "label"], dropna=False)[cost]
              .apply(lambda v: v.median() if v.notna().sum() * 2 > len(v) else np.inf)  # most seeds must reach
              .groupby(level=[*range(len(WORKLOAD_KEYS)), len(WORKLOAD_KEYS)]).min()      # best config per strategy
              .unstack("strategy"))
    best = per.min(axis=1).replace(0, np.nan)
    ratios = per.div(best, axis=0).replace(np.nan, np.inf)
    taus = np.geomspace(1, max(4.0, float(np.nanmax(ratios.replace(np.inf, np.nan).to_numpy(), initial=1)) * 1.2),
                        200)
    rows = [{"tau": tau, "strategy": s, "rho": float((ratios[s] <= tau).mean())}
            for s in ratios.columns for tau in taus]
    return pd.DataFrame(rows), len(per)


def build(store: Store, experiments=("convergence", "second_order", "zeroth_order"),
          default_target: float = 0.9) -> Section:
    section = Section(2, TITLE, "Steps, training wall time, epochs and gradient equivalents until the test "
                      "accuracy first reaches the target (the run's own `target`, else "
                      f"{default_target:g}), then a performance profile over workloads (AlgoPerf style).")
    runs, missing = convergence.gather(store, experiments)
    if runs is None:
        return section.add(not_run(experiments[0]))
    hist = store.history(runs, label="time-to-target histories")
    hit = hits(runs, hist, default_target)
    caption_runs = runs_text(runs)
    section.add(Table(summary_table(hit), f"Cost to reach the target test accuracy, median over the seeds that "
                                          f"reached it. {caption_runs}."))
    fig, axes = style.figure(1, len(COSTS), width=5.2, height=3.6)
    colors = style.palette(sorted(hit["strategy"].unique()))
    n_workloads = 0
    for ax, (cost, cost_label) in zip(axes[0], COSTS):
        prof, n_workloads = profile(hit, cost)
        for strategy, group in prof.groupby("strategy"):
            ax.step(group["tau"], group["rho"], where="post", label=strategy, color=colors[strategy], lw=1.6)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator([1, 1.25, 1.5, 2, 3, 4, 6, 10, 20, 50, 100]))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel(f"τ (ratio to the best {cost_label})")
        ax.set_ylabel("fraction of workloads within τ")
        ax.set_title(f"by {cost_label}")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, title="strategy")
    fig.tight_layout()
    section.add(Figure(fig, f"Performance profiles over {n_workloads} workload(s) (experiment × dataset × network × "
                            f"data variant × label noise × target); a strategy's cost on a workload is its median "
                            f"over seeds (infinite unless most seeds reach the target), best configuration per "
                            f"strategy. {caption_runs}."))
    if n_workloads < 3:
        section.add(Note(f"Only {n_workloads} workload(s) recorded: the profile is a step at each strategy's cost "
                         "ratio; more experiments make it informative.", kind="info"))
    return section
