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
    conditions: dict[str, str]          # series name -> label (the baseline is always included)
    baseline_label: str
    metric: str                         # a logged evaluation metric
    metric_label: str
    at: str                             # "final" or "epoch1": where the metric is compared
    better: str                         # "higher" or "lower"
    claimed_better: str                 # the series (or BASELINE) the lecture says wins


LESSONS = [
    Lesson("order", "Shuffle the data", "class-sorted data breaks SGD: shuffle",
           {"sorted_by_class": "sorted by class"}, "shuffled", "test_accuracy", "test accuracy", "final",
           "higher", BASELINE),
    Lesson("init", "Initialize at the right scale", "zero init never takes off (symmetry is never broken); "
           "scale the initial weights by 1/sqrt(fan_in)",
           {"init_zeros": "zeros", "init_normal": "N(0, 1)", "init_fan_in_normal": "N(0, 1/fan_in) (LeCun)",
            "init_xavier": "Xavier", "init_he": "He"},
           "U(±1/sqrt(fan_in)) (torch default)", "test_accuracy", "test accuracy", "final", "higher", BASELINE),
    Lesson("standardize", "Standardize the inputs", "standardized inputs train faster",
           {"standardized": "standardized"}, "raw pixels in [0, 1]", "train_loss", "training loss", "epoch1",
           "lower", "standardized"),
    Lesson("schedule", "Decay the learning rate", "a decaying learning rate helps at the end",
           {"cosine_decay": "cosine decay"}, "constant", "train_loss", "training loss", "final", "lower",
           "cosine_decay"),
    Lesson("cost", "Cross-entropy or squared error", "squared error on sigmoid outputs (3Blue1Brown's cost) learns "
           "slower than cross-entropy (Nielsen, chapter 3: the learning slowdown)",
           {"mse": "squared error on sigmoid outputs"}, "cross-entropy", "test_accuracy", "test accuracy", "final",
           "higher", BASELINE),
]


# ---- computation -------------------------------------------------------------------------------------

def lesson_runs(runs: pd.DataFrame, lesson: Lesson) -> pd.DataFrame:
    """The baseline's and the lesson's series' runs, with a `condition` label."""
    series = runs["series"].replace("", BASELINE)
    labels = {BASELINE: lesson.baseline_label, **lesson.conditions}
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


def compare(values: pd.DataFrame, lesson: Lesson) -> pd.DataFrame:
    """Per condition against the lecture's claimed-better condition: mean, sd, seeds, paired wins and the
    two-sided Wilcoxon signed-rank p over the seeds both have."""
    from scipy.stats import wilcoxon

    labels = {BASELINE: lesson.baseline_label, **lesson.conditions}
    reference = labels[lesson.claimed_better]
    sign = 1.0 if lesson.better == "higher" else -1.0
    ref = values[values["condition"] == reference].set_index("seed")["value"]
    rows = []
    for label in labels.values():
        own = values[values["condition"] == label].set_index("seed")["value"]
        row = {"condition": label, "mean": own.mean(), "sd": own.std(ddof=1), "seeds": len(own),
               "reference": label == reference, "wins": np.nan, "paired": 0, "p": np.nan}
        if label != reference:
            common = sorted(set(own.index) & set(ref.index))
            diff = sign * (ref[common].to_numpy(float) - own[common].to_numpy(float))   # > 0: reference better
            row["paired"], row["wins"] = len(common), int((diff > 0).sum())
            if len(common) >= 2 and np.any(diff != 0):
                row["p"] = float(wilcoxon(diff, alternative="two-sided").pvalue)
        rows.append(row)
    return pd.DataFrame(rows)


def _verdict(row, lesson: Lesson, reference_mean: float) -> str:
    better = (reference_mean > row["mean"]) if lesson.better == "higher" else (reference_mean < row["mean"])
    floor = 2.0 / 2 ** row["paired"] if row["paired"] else 1.0
    if better and row["p"] < ALPHA:
        return f"as the lecture says (better in {row['wins']} of {row['paired']} seeds, Wilcoxon p = {row['p']:.3g})"
    if better:
        return (f"in the lecture's direction but not conclusively (better in {row['wins']} of {row['paired']} seeds, "
                f"Wilcoxon p = {row['p']:.3g}; with {row['paired']} seeds p cannot go below {floor:.3g})")
    return (f"which the data do not show: the lecture's choice is better in only {row['wins']} of {row['paired']} "
            f"seeds (Wilcoxon p = {row['p']:.3g})")


def sentence(table: pd.DataFrame, lesson: Lesson, chance: float | None = None) -> str:
    """One sentence stating what the data show for the lesson (numbers from `table`)."""
    where = "after one epoch" if lesson.at == "epoch1" else "at the end"
    ref = table[table["reference"]].iloc[0]
    text = f"Lecture: {lesson.claim}. Data ({lesson.metric_label} {where}, mean ± sd over seeds): "
    parts = [f"{ref['condition']} {ref['mean']:.4g} ± {ref['sd']:.2g}"]
    for row in table[~table["reference"]].itertuples():
        parts.append(f"{row.condition} {row.mean:.4g} ± {row.sd:.2g}, {_verdict(row._asdict(), lesson, ref['mean'])}")
    text += "; ".join(parts)
    if lesson.key == "init" and chance is not None:
        zero = table[table["condition"] == lesson.conditions["init_zeros"]]
        if len(zero):
            took_off = zero["mean"].iloc[0] > TAKE_OFF * chance
            text += (f". Zero init {'does take off here' if took_off else 'never takes off'}: test accuracy "
                     f"{zero['mean'].iloc[0]:.3f} against chance {chance:.2f} "
                     f"({'above' if took_off else 'within'} {TAKE_OFF:g} × chance)")
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
    section = Section(number, TITLE, "The lecture's practical advice — shuffle, initialize at the right scale, "
                      "standardize inputs, decay the learning rate, prefer cross-entropy to squared error on "
                      "sigmoid outputs — each as a comparison with one baseline on the same seeds. Every sentence "
                      "below is generated from the runs.")
    runs = store.runs(EXPERIMENT)
    if runs is None:
        return section.add(not_run(EXPERIMENT))
    runs = latest_attempts(runs[runs["status"].isin(["FINISHED", "FAILED"])])
    chance = None
    if "n_params" in runs and len(runs):
        chance = 0.1     # the lessons run on 10-class digits
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
        labels = [lesson.baseline_label, *lesson.conditions.values()]
        palette = dict(zip(labels, style.palette(range(len(labels))).values()))
        text = sentence(table, lesson, chance)
        section.add(Figure(draw_lesson(curves, values, lesson, palette),
                           f"{lesson.title}. {text} {runs_text(chosen, EXPERIMENT)}."))
        section.add(Note(f"{lesson.title}: {text}"))
    return section
