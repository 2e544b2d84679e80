"""Section: Lessons — the lecture's practical advice, each tested against a baseline on paired seeds.

Experiment `lessons` (experiments/lessons.toml): one baseline (the runs without a series tag) and one
series per change; every series runs on the baseline's seeds, so each comparison is paired by seed.
Per lesson: one figure (its metric over training, mean ± sd over seeds, and the final values seed by
seed) and one sentence generated from the numbers, stating what the data show — including when they
do not show what the lecture claims. A claim counts as supported when the lecture's better condition
is better on average *and* a two-sided Wilcoxon signed-rank test over the paired seeds (scipy.stats)
gives p < 0.05; with n seeds that test cannot go below p = 2 / 2^n, which the sentence says.
Zero initialization "takes off" when its final test accuracy exceeds TAKE_OFF x chance.

Computation (`lesson_runs`, `lesson_curves`, `compare`, `sentence`) is kept apart from drawing
(`draw_lesson`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from optlab.reports import style
from optlab.reports.load import Store, latest_attempts, runs_text
from optlab.reports.model import Figure, Note, Section, not_run

TITLE = "Lessons"
EXPERIMENT = "lessons"
BASELINE = "baseline"
ALPHA = 0.05
TAKE_OFF = 2.0   # x chance accuracy


@dataclass(frozen=True)
class Lesson:
    key: str
    title: str
    claim: str                          # the lecture's claim, in its words
    conditions: dict[str, str]          # series name -> label (the baseline, BASELINE, is always included)
    baseline_label: str
    metric: str                         # a logged evaluation metric
    metric_label: str
    at: str                             # "final" or "epoch1": where the metric is compared
    better: str                         # "higher" or "lower"
    recommended: str                    # the series (or BASELINE) the lecture recommends
    warned: tuple[str, ...]             # the series (or BASELINE) it warns against, each tested against it;
                                        # any other condition is reported against the baseline, without a verdict


LESSONS = [
    Lesson("order", "Shuffle the data", "class-sorted data breaks SGD: shuffle",
           {"sorted_by_class": "sorted by class"}, "shuffled", "test_accuracy", "test accuracy", "final",
           "higher", BASELINE, ("sorted_by_class",)),
    Lesson("init", "Initialize at the right scale", "zero init never takes off (symmetry is never broken); "
           "scale the initial weights by 1/sqrt(fan_in)",
           {"init_zeros": "zeros", "init_normal": "N(0, 1)", "init_fan_in_normal": "N(0, 1/fan_in) (LeCun)",
            "init_xavier": "Xavier", "init_he": "He"},
           "U(±1/sqrt(fan_in)) (torch default)", "test_accuracy", "test accuracy", "final", "higher", BASELINE,
           ("init_zeros", "init_normal")),
    Lesson("standardize", "Standardize the inputs", "standardized inputs train faster",
           {"standardized": "standardized"}, "raw pixels in [0, 1]", "train_loss", "training loss", "epoch1",
           "lower", "standardized", (BASELINE,)),
    Lesson("schedule", "Decay the learning rate", "a decaying learning rate helps at the end",
           {"cosine_decay": "cosine decay"}, "constant", "train_loss", "training loss", "final", "lower",
           "cosine_decay", (BASELINE,)),
    Lesson("cost", "Cross-entropy or squared error", "squared error on sigmoid outputs (3Blue1Brown's cost) learns "
           "slower than cross-entropy (Nielsen, chapter 3: the learning slowdown)",
           {"mse": "squared error on sigmoid outputs"}, "cross-entropy", "test_accuracy", "test accuracy", "final",
           "higher", BASELINE, ("mse",)),
]


# ---- computation -------------------------------------------------------------------------------------

def labels_of(lesson: Lesson) -> dict[str, str]:
    return {BASELINE: lesson.baseline_label, **lesson.conditions}


def lesson_runs(runs: pd.DataFrame, lesson: Lesson) -> pd.DataFrame:
    """The baseline's and the lesson's series' runs, with a `condition` label."""
    series = runs["series"].replace("", BASELINE)
    labels = labels_of(lesson)
    chosen = runs[series.isin(labels)].copy()
    chosen["condition"] = series[chosen.index].map(labels)
    chosen["series_name"] = series[chosen.index]
    return chosen


def lesson_curves(store: Store, runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """run_id, condition, seed, epoch, value: the metric at every evaluation."""
    hist = store.history(runs, keys=("epoch", metric))
    hist = hist.merge(runs[["run_id", "condition"]], on="run_id", how="left")
    return hist.rename(columns={metric: "value"})[["run_id", "condition", "seed", "epoch", "value"]].dropna()


def values_at(curves: pd.DataFrame, at: str) -> pd.DataFrame:
    """One value per run: the last evaluation ("final") or the first at or after epoch 1 ("epoch1")."""
    ordered = curves.sort_values("epoch")
    if at == "epoch1":
        ordered = ordered[ordered["epoch"] >= 1.0 - 1e-9]
        picked = ordered.groupby("run_id").head(1)
    else:
        picked = ordered.groupby("run_id").tail(1)
    return picked[["run_id", "condition", "seed", "value"]]


def paired(values: pd.DataFrame, first: str, second: str, lesson: Lesson) -> dict:
    """first against second on the seeds both have: how many seeds first is better, the two-sided Wilcoxon
    signed-rank p (nan when every difference is 0 or fewer than 2 seeds)."""
    from scipy.stats import wilcoxon

    sign = 1.0 if lesson.better == "higher" else -1.0
    a = values[values["condition"] == first].set_index("seed")["value"]
    b = values[values["condition"] == second].set_index("seed")["value"]
    common = sorted(set(a.index) & set(b.index))
    diff = sign * (a[common].to_numpy(float) - b[common].to_numpy(float))      # > 0: first is better
    p = float(wilcoxon(diff, alternative="two-sided").pvalue) if len(common) >= 2 and np.any(diff != 0) else np.nan
    return {"paired": len(common), "wins": int((diff > 0).sum()), "p": p,
            "first_better": bool(np.mean(diff) > 0) if len(common) else False}


def compare(values: pd.DataFrame, lesson: Lesson) -> pd.DataFrame:
    """One row per condition: mean, sd and seeds; warned-against conditions tested against the recommended
    one (role "warned"), other conditions against the baseline (role "other")."""
    labels = labels_of(lesson)
    rows = []
    for name, label in labels.items():
        own = values[values["condition"] == label]["value"]
        row = {"series": name, "condition": label, "mean": own.mean(), "sd": own.std(ddof=1), "seeds": len(own),
               "role": "recommended" if name == lesson.recommended else "warned" if name in lesson.warned
               else "baseline" if name == BASELINE else "other"}
        if row["role"] == "warned":
            row.update(paired(values, labels[lesson.recommended], label, lesson))
        elif row["role"] == "other":
            row.update(paired(values, label, labels[BASELINE], lesson))
        rows.append(row)
    return pd.DataFrame(rows)


def symmetry_kept(store: Store, runs: pd.DataFrame, tolerance: float = 1e-6) -> tuple[int, int]:
    """(runs whose hidden units are still identical in every hidden layer, runs checked), from the final
    parameters of the given runs: identical units mean the initial symmetry was never broken."""
    from optlab.problem import build_problem
    from optlab.tracking.recorder import load_config, load_params

    kept = checked = 0
    for run in runs.itertuples():
        try:
            config, w = load_config(run.run_id, store.uri), load_params(run.run_id, store.uri)
        except Exception:   # a run without artifacts cannot be checked: it is left out, not guessed
            continue
        spec = build_problem(config).network
        if spec.n_params != w.numel():
            continue
        layers = spec.unflatten(w.double())[:-1]          # the hidden layers' incoming weights and biases
        same = all(float((weight - weight[:1]).abs().max()) <= tolerance * max(float(weight.abs().max()), 1.0)
                   and float((bias - bias[:1]).abs().max()) <= tolerance * max(float(bias.abs().max()), 1.0)
                   for weight, bias in layers)
        kept += int(same)
        checked += 1
    return kept, checked


def _seeds(row) -> str:
    p = "n/a (no difference)" if pd.isna(row["p"]) else f"{row['p']:.3g}"
    return f"{int(row['wins'])} of {int(row['paired'])} seeds, Wilcoxon p = {p}"


def verdict(row, recommended: str) -> str:
    """For a warned-against condition: does the recommended one (its label) beat it?"""
    floor = 2.0 / 2 ** int(row["paired"]) if row["paired"] else 1.0
    if row["first_better"] and row["p"] < ALPHA:
        return f"as the lecture says ({recommended} is better in {_seeds(row)})"
    if row["first_better"]:
        return (f"in the lecture's direction but not conclusively ({recommended} is better in {_seeds(row)}; "
                f"with {int(row['paired'])} seeds p cannot go below {floor:.3g})")
    if row["p"] < ALPHA:
        return f"the opposite of the lecture's claim ({recommended} is better in only {_seeds(row)})"
    return f"which the data do not show ({recommended} is better in only {_seeds(row)})"


def sentence(table: pd.DataFrame, lesson: Lesson, chance: float | None = None,
             symmetry: tuple[int, int] | None = None) -> str:
    """One sentence stating what the data show for the lesson (numbers from `table`)."""
    where = "after one epoch" if lesson.at == "epoch1" else "at the end"
    rec = table[table["role"] == "recommended"].iloc[0]
    text = (f"Lecture: {lesson.claim}. Data ({lesson.metric_label} {where}, mean ± sd over seeds): "
            f"{rec['condition']} {rec['mean']:.4g} ± {rec['sd']:.2g}")
    for _, row in table[table["role"] == "warned"].iterrows():
        text += f"; {row['condition']} {row['mean']:.4g} ± {row['sd']:.2g}, {verdict(row, rec['condition'])}"
    others = table[table["role"] == "other"]
    if len(others):
        direction = "higher" if lesson.better == "higher" else "lower"
        text += "; other choices against the baseline: " + ", ".join(
            f"{row['condition']} {row['mean']:.4g} ± {row['sd']:.2g} ({direction} in {_seeds(row)})"
            for _, row in others.iterrows())
    if lesson.key == "init" and chance is not None:
        zero = table[table["series"] == "init_zeros"]
        if len(zero):
            took_off = zero["mean"].iloc[0] > TAKE_OFF * chance
            text += (f". Zero init {'does take off here' if took_off else 'never takes off'}: test accuracy "
                     f"{zero['mean'].iloc[0]:.3f} against chance {chance:.2f} "
                     f"({'above' if took_off else 'within'} {TAKE_OFF:g} × chance)")
            if symmetry and symmetry[1]:
                kept, checked = symmetry
                text += (f", and its hidden units are still identical at the end in {kept} of {checked} runs "
                         f"(symmetry {'never broken: every hidden layer acts as one unit' if kept == checked else 'broken in some runs'})")
    return text + "."


# ---- drawing -------------------------------------------------------------------------------------------

def draw_lesson(curves: pd.DataFrame, values: pd.DataFrame, lesson: Lesson, palette: dict):
    import seaborn as sns

    fig, grid = style.figure(1, 2, width=5.2, height=3.4)
    order = [c for c in palette if c in set(curves["condition"])]
    sns.lineplot(data=curves, x="epoch", y="value", hue="condition", hue_order=order, palette=palette,
                 errorbar="sd", estimator="mean", ax=grid[0][0], linewidth=1.3)
    if lesson.metric == "train_loss":
        grid[0][0].set_yscale("log")
    if lesson.at == "epoch1":
        grid[0][0].axvline(1.0, color="grey", ls=":", lw=1)
    grid[0][0].set_ylabel(lesson.metric_label)
    grid[0][0].set_title("over training (mean ± sd over seeds)", fontsize=9)
    grid[0][0].legend(fontsize=7, loc="best")
    ax = grid[0][1]
    for seed, group in values.groupby("seed"):
        group = group.set_index("condition").reindex(order)
        ax.plot(range(len(order)), group["value"], color="lightgrey", lw=0.8, zorder=1)
    sns.stripplot(data=values, x="condition", y="value", order=order, hue="condition", hue_order=order,
                  palette=palette, ax=ax, size=5, jitter=False, legend=False, zorder=2)
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels([label.replace(" (", "\n(") for label in order], rotation=20, fontsize=7, ha="right")
    ax.set_xlabel("")
    ax.set_ylabel(lesson.metric_label + (" after one epoch" if lesson.at == "epoch1" else " at the end"))
    ax.set_title("each seed (grey lines join one seed)", fontsize=9)
    if lesson.metric == "train_loss":
        ax.set_yscale("log")
    fig.tight_layout()
    return fig


# ---- the section -----------------------------------------------------------------------------------------

def build(store: Store, number: int = 8) -> Section:
    from optlab.problem import load_dataset

    section = Section(number, TITLE, "The lecture's practical advice — shuffle, initialize at the right scale, "
                      "standardize inputs, decay the learning rate, prefer cross-entropy to squared error on "
                      "sigmoid outputs — each as a comparison with one baseline on the same seeds. Every sentence "
                      "below is generated from the runs.")
    runs = store.runs(EXPERIMENT)
    if runs is None:
        return section.add(not_run(EXPERIMENT))
    runs = latest_attempts(runs[runs["status"].isin(["FINISHED", "FAILED"])])
    datasets = set(runs["dataset"].astype(str))
    chance = 1.0 / load_dataset(datasets.pop()).n_classes if len(datasets) == 1 else None
    failed = runs[runs["status"] != "FINISHED"]
    if len(failed):
        section.add(Note(f"{len(failed)} run(s) failed and enter their lesson with their last evaluation: " + "; ".join(
            f"{r.series or BASELINE} seed {r.seed:g}: {r.failure_reason}" for r in failed.itertuples()), kind="warning"))
    for lesson in LESSONS:
        chosen = lesson_runs(runs, lesson)
        present = set(chosen["series_name"])
        if BASELINE not in present or not present & set(lesson.conditions):
            section.add(Note(f"{lesson.title}: no runs of its series in '{EXPERIMENT}'.", kind="warning"))
            continue
        curves = lesson_curves(store, chosen, lesson.metric)
        values = values_at(curves, lesson.at)
        table = compare(values, lesson)
        labels = list(labels_of(lesson).values())
        palette = dict(zip(labels, style.palette(range(len(labels))).values()))
        symmetry = None
        if lesson.key == "init":
            symmetry = symmetry_kept(store, chosen[chosen["series_name"] == "init_zeros"])
        text = sentence(table, lesson, chance, symmetry)
        where = "after one epoch" if lesson.at == "epoch1" else "at the end"
        section.add(Figure(draw_lesson(curves, values, lesson, palette),
                           f"{lesson.title}: {lesson.metric_label} over training (mean ± sd over seeds) and "
                           f"{where}, seed by seed. {runs_text(chosen, EXPERIMENT)}."))
        section.add(Note(f"{lesson.title}. {text}"))
    return section
