"""Section 4: random-label memorization (Zhang et al. 2017; Arpit et al. 2017), small vs wide network."""

from __future__ import annotations

import numpy as np
import pandas as pd

from optlab.analysis import stats
from optlab.analysis.numbers import significant
from optlab.reports import plots, style
from optlab.reports.chart import Chart
from optlab.reports.load import Store, runs_text
from optlab.reports.model import Note, Section, Table, not_run

TITLE = "Random-label memorization"
EXPERIMENT = "memorization"
FIT = 0.95  # train accuracy that counts as "fitted"
VARIANT_NAMES = {"random_pixels": "random pixels", "gaussian": "Gaussian inputs", "shuffled_pixels": "shuffled pixels"}


def condition(row) -> str:
    if row.get("variant") not in (None, "", "none") and isinstance(row.get("variant"), str):
        return VARIANT_NAMES.get(row["variant"], row["variant"])
    p = row.get("label_noise")
    return f"p={0.0 if pd.isna(p) else p:g}"


def net_name(row) -> str:
    hidden = str(row.get("hidden") or "?")
    n = row.get("n_params")
    return f"hidden {hidden}" + (f" ({int(n):,} params)" if pd.notna(n) else "")


METRICS = (("train_accuracy", "train accuracy"), ("test_accuracy", "test accuracy"))


def curves_chart(hist: pd.DataFrame, nets: list[str], colors: dict, caption: str) -> Chart:
    frames = []
    for net in nets:
        for metric, label in METRICS:
            for condition_, band in plots.bands(hist[hist["net"] == net], "epoch", metric, "condition").items():
                frames.append(band.assign(condition=condition_, net=net, metric=label))
    data = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["x", "mean", "low", "high", "n", "condition", "net", "metric"])
    )
    dashes = {c: ("solid" if c.startswith("p=") else "dash") for c in colors}
    return Chart(
        data,
        x="x",
        y="mean",
        low="low",
        high="high",
        color="condition",
        colors=colors,
        label="condition",
        dash="condition",
        dashes=dashes,
        row="net",
        col="metric",
        row_order=nets,
        col_order=[label for _, label in METRICS],
        x_title="epoch",
        y_title={net: f"{net}: accuracy" for net in nets},
        hover=["n"],
        caption=caption,
    )


def summary_chart(fits: pd.DataFrame, nets: list[str], caption: str) -> Chart:
    net_colors = style.palette(nets)
    panels = (f"epochs to train accuracy ≥ {FIT:g}", "final test error", "final train accuracy")
    rows = []
    for net, group in fits.dropna(subset=["p"]).groupby("net"):
        agg = (
            group.groupby("p")
            .agg(
                fit=("epochs_to_fit", "median"),
                err=("final_test_acc", lambda a: 1 - a.mean()),
                train=("final_train_acc", "mean"),
                seeds=("final_test_acc", "size"),
            )
            .reset_index()
        )
        for r in agg.itertuples():
            for panel, value in zip(panels, (r.fit, r.err, r.train)):
                if pd.notna(value):
                    rows.append({"net": net, "panel": panel, "p": r.p, "value": value, "seeds": int(r.seeds)})
    for p in sorted({r["p"] for r in rows}):
        rows.append({"net": "chance (90 % error)", "panel": panels[1], "p": p, "value": 0.9, "seeds": 0})
    colors = {**net_colors, "chance (90 % error)": "#888888"}
    data = pd.DataFrame(rows, columns=["net", "panel", "p", "value", "seeds"])
    return Chart(
        data,
        x="p",
        y="value",
        color="net",
        colors=colors,
        label="net",
        dash="net",
        dashes={"chance (90 % error)": "dot"},
        col="panel",
        col_order=list(panels),
        mode="lines+markers",
        x_title="label noise p",
        y_title={panel: panel for panel in panels},
        hover=["seeds"],
        caption=caption,
    )


def fit_table(runs: pd.DataFrame, hist: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for run in runs.itertuples():
        h = hist[hist["run_id"] == run.run_id].sort_values("step")
        if h.empty:
            continue
        fitted = h[h["train_accuracy"] >= FIT]
        best = (
            h.loc[h["val_accuracy"].idxmax()]
            if "val_accuracy" in h and h["val_accuracy"].notna().any()
            else h.loc[h["test_accuracy"].idxmax()]
        )
        rows.append(
            {
                "run_id": run.run_id,
                "net": run.net,
                "condition": run.condition,
                "p": run.p,
                "seed": run.seed,
                "epochs_to_fit": fitted["epoch"].iloc[0] if len(fitted) else np.nan,
                "last_epoch": h["epoch"].iloc[-1],
                "final_train_acc": h["train_accuracy"].iloc[-1],
                "final_test_acc": h["test_accuracy"].iloc[-1],
                "best_val_acc": best.get("val_accuracy", np.nan),
                "best_val_epoch": best["epoch"],
            }
        )
    return pd.DataFrame(rows)


def summary_table(fits: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (net, cond), group in fits.groupby(["net", "condition"], sort=False):
        fit = group["epochs_to_fit"]
        rows.append(
            {
                "net": net,
                "condition": cond,
                "seeds": len(group),
                "final train acc": stats.bootstrap_ci(group["final_train_acc"]).text(3),
                "final test acc": stats.bootstrap_ci(group["final_test_acc"]).text(3),
                "peak val acc": stats.bootstrap_ci(group["best_val_acc"]).text(3),
                "epoch of peak": f"{significant(group['best_val_epoch'].median())}",
                f"epochs to train acc ≥ {FIT:g}": (
                    f"{significant(fit.median())} ({fit.notna().sum()}/{len(group)} fitted)"
                    if fit.notna().sum() * 2 > len(group)
                    else f"not within {significant(group['last_epoch'].max())} "
                    f"({fit.notna().sum()}/{len(group)} fitted)"
                ),
            }
        )
    return pd.DataFrame(rows)


def memorization_sentences(fits: pd.DataFrame, nets: list[str]) -> list[str]:
    """What the data say about fitting random labels, per network (only what the numbers support)."""
    out = []
    for net in nets:
        random = fits[(fits["net"] == net) & (fits["p"] == 1.0)]
        clean = fits[(fits["net"] == net) & (fits["p"] == 0.0)]
        if random.empty:
            continue
        train = stats.bootstrap_ci(random["final_train_acc"])
        test = stats.bootstrap_ci(random["final_test_acc"])
        fitted = train.estimate >= FIT
        text = (
            f"{net}, all labels random (p = 1): final train accuracy {train.text(3)}, test accuracy "
            f"{test.text(3)} (chance: 0.1) — it {'fits' if fitted else 'does not fit'} the random labels "
            f"(train accuracy {'≥' if fitted else '<'} {FIT:g})."
        )
        if (
            not clean.empty
            and fitted
            and clean["epochs_to_fit"].notna().all()
            and random["epochs_to_fit"].notna().all()
        ):
            ratio = random["epochs_to_fit"].median() / clean["epochs_to_fit"].median()
            text += (
                f" Fitting random labels took {significant(ratio, 2)}x the epochs of true labels (medians over seeds)."
            )
        out.append(text)
    return out


def build(store: Store) -> Section:
    section = Section(
        4,
        TITLE,
        "Labels replaced at random with probability p, plus random-pixel and Gaussian "
        "inputs. Expected (Zhang et al. 2017): with enough capacity training accuracy still reaches "
        "~100 %, more slowly as p grows; test error rises towards 90 % at p = 1; with partial noise "
        "validation accuracy peaks before the noisy labels are fitted (Arpit et al. 2017). The "
        "small and the wide network show capacity at work. Each network x labels/inputs condition is its "
        "own workload; every number is a mean over seeds with a 95 % bootstrap interval.",
    )
    runs = store.runs(EXPERIMENT)
    if runs is None:
        return section.add(not_run(EXPERIMENT))
    runs = runs[runs["status"].isin(["FINISHED", "FAILED"])].copy()
    runs["condition"] = [condition(r) for r in runs.to_dict("records")]
    runs["net"] = [net_name(r) for r in runs.to_dict("records")]
    is_variant = ~runs["condition"].str.startswith("p=")
    runs["p"] = np.where(is_variant, np.nan, runs["label_noise"].fillna(0.0))
    hist = store.history(
        runs, keys=("train_accuracy", "val_accuracy", "test_accuracy", "epoch"), label="memorization histories"
    )
    hist = hist.merge(runs[["run_id", "condition", "net"]], on="run_id")
    caption_runs = (
        f"{runs['workload'].nunique()} workloads, one per network × labels/inputs condition (e.g. "
        f"'{runs['workload'].iloc[0]}'), each curve or row one workload; {runs_text(runs, EXPERIMENT)}"
    )

    ps = sorted(runs.loc[~is_variant, "p"].unique())
    colors = dict(zip([f"p={p:g}" for p in ps], style.sequential(len(ps))))
    for name, color in zip(sorted(runs.loc[is_variant, "condition"].unique()), ("#d62728", "#ff7f0e", "#8c564b")):
        colors[name] = color
    nets = sorted(runs["net"].unique(), key=lambda n: runs.loc[runs["net"] == n, "n_params"].max())
    section.add(
        curves_chart(
            hist,
            nets,
            colors,
            f"Train and test accuracy against epochs for each label-noise "
            f"probability p and for random-pixel / Gaussian inputs (dashed); "
            f"one row per network; {plots.BAND_TEXT}. {caption_runs}.",
        )
    )
    fits = fit_table(runs, hist)
    section.add(
        summary_chart(
            fits,
            nets,
            f"Left: epochs until train accuracy ≥ {FIT:g} (median over seeds; a "
            f"condition not fitted by its last epoch has no point, see the table). "
            f"Middle: final test error (mean over seeds) with chance level. Right: "
            f"final train accuracy. {caption_runs}.",
        )
    )
    order = {c: i for i, c in enumerate(colors)}  # p ascending, then the input variants
    fits = fits.assign(_net=fits["net"].map({n: i for i, n in enumerate(nets)}), _cond=fits["condition"].map(order))
    fits = fits.sort_values(["_net", "_cond"])
    summary = summary_table(fits)
    section.add(
        Table(
            summary,
            f"Per network and condition: mean [95 % bootstrap CI] over seeds; peak validation "
            f"accuracy and its epoch (median); widths tried: {', '.join(nets)}. {caption_runs}.",
        )
    )
    for sentence in memorization_sentences(fits, nets):
        section.add(Note(sentence))
    if len(nets) < 2:
        section.add(
            Note(
                "Only one network width recorded: the capacity comparison needs the small and the wide "
                "net (both are in experiments/memorization.toml).",
                kind="info",
            )
        )
    return section
