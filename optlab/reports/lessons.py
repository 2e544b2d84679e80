"""Section: Lessons — the lecture's practical advice, each tested against a baseline on paired seeds.

Experiment `lessons` (experiments/lessons.toml): one baseline (the runs without a series tag) and one
series per change; every series runs on the baseline's seeds, so each comparison is paired by seed.
A comparison is made only between runs that hold everything fixed but the lesson's setting: each
condition must be one configuration over seeds, and two conditions may differ only in the lesson's
keys (`Lesson.changes`); for a change that is itself part of the workload (init, input standardization,
cost) the two workloads differ in that key alone, the data, network, budget and target being the same.
Anything else is refused with a note naming what differs.

Per lesson: a chart of its metric over training (mean over seeds with its 95 % bootstrap band,
optlab.analysis.curves), a table (mean with its 95 % bootstrap interval, wins per seed, two-sided
Wilcoxon signed-rank p and Holm's adjustment over the lesson's comparisons, optlab.analysis.stats) and
one sentence generated from that table, stating what the data show — including when they do not show
what the lecture claims. A claim counts as supported when the lecture's better condition is better on
average *and* its Holm-adjusted p < ALPHA; with n seeds the test cannot go below p = 2 / 2^n, which the
sentence says. Zero initialization "takes off" when its final test accuracy exceeds TAKE_OFF x chance.

Computation (`lesson_runs`, `comparable`, `lesson_curves`, `compare`, `sentence`) is kept apart from
drawing (`lesson_chart`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from optlab.analysis import stats
from optlab.analysis.curves import band
from optlab.analysis.numbers import significant
from optlab.config import RunConfig
from optlab.reports.chart import Chart
from optlab.reports.load import PARAM_COLUMNS, Store, latest_attempts, runs_text
from optlab.reports.model import Note, Section, Table, not_run

TITLE = "Lessons"
EXPERIMENT = "lessons"
BASELINE = "baseline"
ALPHA = 0.05  # on Holm-adjusted p-values, over the comparisons of one lesson
TAKE_OFF = 2.0  # x chance accuracy


@dataclass(frozen=True)
class Lesson:
    key: str
    title: str
    claim: str  # the lecture's claim, in its words
    conditions: dict[str, str]  # series name -> label (the baseline, BASELINE, is always included)
    baseline_label: str
    metric: str  # a logged evaluation metric
    metric_label: str
    at: str  # "final" or "epoch1": where the metric is compared
    better: str  # "higher" or "lower"
    recommended: str  # the series (or BASELINE) the lecture recommends
    warned: tuple[str, ...]  # the series (or BASELINE) it warns against, each tested against it;
    # any other condition is reported against the baseline, without a verdict
    changes: tuple[str, ...] = ()  # the run settings the lesson's series change (all else must be equal)


LESSONS = [
    Lesson(
        "order",
        "Shuffle the data",
        "class-sorted data breaks SGD: shuffle",
        {"sorted_by_class": "sorted by class"},
        "shuffled",
        "test_accuracy",
        "test accuracy",
        "final",
        "higher",
        BASELINE,
        ("sorted_by_class",),
        ("order",),
    ),
    Lesson(
        "init",
        "Initialize at the right scale",
        "zero init never takes off (symmetry is never broken); scale the initial weights by 1/sqrt(fan_in)",
        {
            "init_zeros": "zeros",
            "init_normal": "N(0, 1)",
            "init_fan_in_normal": "N(0, 1/fan_in) (LeCun)",
            "init_xavier": "Xavier",
            "init_he": "He",
        },
        "U(±1/sqrt(fan_in)) (torch default)",
        "test_accuracy",
        "test accuracy",
        "final",
        "higher",
        BASELINE,
        ("init_zeros", "init_normal"),
        ("init",),
    ),
    Lesson(
        "standardize",
        "Standardize the inputs",
        "standardized inputs train faster",
        {"standardized": "standardized"},
        "raw pixels in [0, 1]",
        "train_loss",
        "training loss",
        "epoch1",
        "lower",
        "standardized",
        (BASELINE,),
        ("standardize",),
    ),
    Lesson(
        "schedule",
        "Decay the learning rate",
        "a decaying learning rate helps at the end",
        {"cosine_decay": "cosine decay"},
        "constant",
        "train_loss",
        "training loss",
        "final",
        "lower",
        "cosine_decay",
        (BASELINE,),
        ("schedule",),
    ),
    Lesson(
        "cost",
        "Cross-entropy or squared error",
        "squared error on sigmoid outputs (3Blue1Brown's cost) learns "
        "slower than cross-entropy (Nielsen, chapter 3: the learning slowdown)",
        {"mse": "squared error on sigmoid outputs"},
        "cross-entropy",
        "test_accuracy",
        "test accuracy",
        "final",
        "higher",
        BASELINE,
        ("mse",),
        ("cost",),
    ),
]


# ---- computation -------------------------------------------------------------------------------------

# what defines a configuration (RunConfig fields): two runs of one condition differ only in their seed, two
# conditions of a lesson only in the lesson's keys. Measurement and naming settings are not compared.
# (as the loader names their columns: a user workload's reference is `workload_ref`)
CONFIG_KEYS = tuple(
    PARAM_COLUMNS.get(k, k) for k in RunConfig.fields_with_role("strategy", "problem", "budget", "target", "device")
)


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


def _settings(runs: pd.DataFrame) -> pd.DataFrame:
    keys = [k for k in CONFIG_KEYS if k in runs]
    blank = lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) or str(v) in ("nan", "None") else str(v)
    return runs[keys].apply(lambda column: column.map(blank)).astype(object)


def comparable(chosen: pd.DataFrame, lesson: Lesson) -> str | None:
    """None when every condition is one configuration over seeds and the conditions differ only in the
    lesson's keys (`lesson.changes`); else what differs, in words."""
    settings = _settings(chosen)
    problems, reference = [], None
    for name, group in settings.groupby(chosen["series_name"], sort=False):
        varying = [k for k in group if group[k].nunique() > 1]
        if varying:
            problems.append(f"{name} mixes configurations ({', '.join(varying)} vary over its runs)")
            continue
        if name == BASELINE:
            reference = group.iloc[0]
    if reference is not None:
        for name, group in settings.groupby(chosen["series_name"], sort=False):
            if name == BASELINE or group[[k for k in group]].nunique().max() > 1:
                continue
            other = group.iloc[0]
            differ = [k for k in settings if other[k] != reference[k] and k not in lesson.changes]
            if differ:
                problems.append(
                    f"{name} differs from the baseline in {', '.join(differ)}, not only in {' / '.join(lesson.changes)}"
                )
    if "workload_hash" in chosen and not set(lesson.changes) & set(RunConfig.workload_keys()):
        if chosen["workload_hash"].nunique() > 1:
            problems.append(f"its runs span {chosen['workload_hash'].nunique()} workloads")
    return "; ".join(problems) or None


def lesson_curves(store: Store, runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """run_id, condition, seed, epoch, value: the metric at every evaluation."""
    hist = store.history(runs, keys=("epoch", metric))
    if metric not in hist:
        return pd.DataFrame(columns=["run_id", "condition", "seed", "epoch", "value"])
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
    signed-rank p (optlab.analysis.stats; nan with fewer than 2 seeds, 1 when every difference is 0) and the
    matched-pairs rank-biserial correlation, signed so that positive means first is better."""
    sign = 1.0 if lesson.better == "higher" else -1.0
    a = values[values["condition"] == first].set_index("seed")["value"]
    b = values[values["condition"] == second].set_index("seed")["value"]
    common = sorted(set(a.index) & set(b.index))
    x, y = a[common].to_numpy(float), b[common].to_numpy(float)
    diff = sign * (x - y)  # > 0: first is better
    p = stats.paired_p_value(x, y) if len(common) >= 2 else np.nan
    return {
        "paired": len(common),
        "wins": int((diff > 0).sum()),
        "p": p,
        "effect": sign * stats.rank_biserial(x, y) if len(common) else np.nan,
        "first_better": bool(np.mean(diff) > 0) if len(common) else False,
    }


def compare(values: pd.DataFrame, lesson: Lesson) -> pd.DataFrame:
    """One row per condition: mean with its 95 % bootstrap interval, sd and seeds; warned-against conditions
    tested against the recommended one (role "warned"), other conditions against the baseline (role
    "other"); `p_holm`: Holm's adjustment over the lesson's tests."""
    labels = labels_of(lesson)
    rows = []
    for name, label in labels.items():
        own = values[values["condition"] == label]["value"].to_numpy(float)
        if not len(own):
            continue
        interval = stats.bootstrap_ci(own) if len(own) >= 2 else None
        row = {
            "series": name,
            "condition": label,
            "mean": float(np.mean(own)),
            "low": interval.low if interval else np.nan,
            "high": interval.high if interval else np.nan,
            "sd": float(np.std(own, ddof=1)) if len(own) >= 2 else np.nan,
            "seeds": len(own),
            "role": "recommended"
            if name == lesson.recommended
            else "warned"
            if name in lesson.warned
            else "baseline"
            if name == BASELINE
            else "other",
        }
        if row["role"] == "warned":
            row.update(paired(values, labels[lesson.recommended], label, lesson))
        elif row["role"] == "other":
            row.update(paired(values, label, labels[BASELINE], lesson))
        rows.append(row)
    table = pd.DataFrame(rows)
    for column in ("paired", "wins", "p", "effect", "first_better"):
        if column not in table:
            table[column] = np.nan
    table["p_holm"] = np.nan
    tested = table["p"].notna()
    if tested.any():
        table.loc[tested, "p_holm"] = stats.holm(table.loc[tested, "p"].to_numpy(float))
    return table


def symmetry_kept(store: Store, runs: pd.DataFrame, tolerance: float = 1e-6) -> tuple[int, int]:
    """(runs whose hidden units are still identical in every hidden layer, runs checked), from the final
    parameters of the given runs: identical units mean the initial symmetry was never broken."""
    from optlab.problem import NetworkProblem, build_problem
    from optlab.tracking.recorder import load_config, load_params

    kept = checked = 0
    for run in runs.itertuples():
        try:
            config, w = load_config(run.run_id, store.uri), load_params(run.run_id, store.uri)
        except Exception:  # a run without artifacts cannot be checked: it is left out, not guessed
            continue
        problem = build_problem(config)
        if not isinstance(problem, NetworkProblem):  # a user workload or test function: no hidden units to compare
            continue
        spec = problem.network
        if spec.n_params != w.numel():
            continue
        layers = spec.unflatten(w.double())[:-1]  # the hidden layers' incoming weights and biases
        same = all(
            float((weight - weight[:1]).abs().max()) <= tolerance * max(float(weight.abs().max()), 1.0)
            and float((bias - bias[:1]).abs().max()) <= tolerance * max(float(bias.abs().max()), 1.0)
            for weight, bias in layers
        )
        kept += int(same)
        checked += 1
    return kept, checked


def _estimate(row) -> str:
    if pd.isna(row["low"]):
        return f"{significant(row['mean'], 4)}"
    return f"{significant(row['mean'], 4)} [{significant(row['low'], 4)}, {significant(row['high'], 4)}]"


def _seeds(row) -> str:
    p = "n/a" if pd.isna(row["p"]) else f"{significant(row['p'])}"
    holm = "" if pd.isna(row["p_holm"]) or row["p_holm"] == row["p"] else f", Holm {significant(row['p_holm'])}"
    return f"{int(row['wins'])} of {int(row['paired'])} seeds, Wilcoxon p = {p}{holm}"


def verdict(row, recommended: str) -> str:
    """For a warned-against condition: does the recommended one (its label) beat it?"""
    floor = stats.min_p_value(int(row["paired"]))
    decided = pd.notna(row["p_holm"]) and row["p_holm"] < ALPHA
    if row["first_better"] and decided:
        return f"as the lecture says ({recommended} is better in {_seeds(row)})"
    if row["first_better"]:
        return (
            f"in the lecture's direction but not conclusively ({recommended} is better in {_seeds(row)}; "
            f"with {int(row['paired'])} seeds p cannot go below {significant(floor)})"
        )
    if decided:
        return f"the opposite of the lecture's claim ({recommended} is better in only {_seeds(row)})"
    return f"which the data do not show ({recommended} is better in only {_seeds(row)})"


def sentence(
    table: pd.DataFrame, lesson: Lesson, chance: float | None = None, symmetry: tuple[int, int] | None = None
) -> str:
    """One sentence stating what the data show for the lesson (numbers from `table`)."""
    where = "after one epoch" if lesson.at == "epoch1" else "at the end"
    rec = table[table["role"] == "recommended"].iloc[0]
    text = (
        f"Lecture: {lesson.claim}. Data ({lesson.metric_label} {where}, mean [95 % CI] over seeds): "
        f"{rec['condition']} {_estimate(rec)}"
    )
    for _, row in table[table["role"] == "warned"].iterrows():
        text += f"; {row['condition']} {_estimate(row)}, {verdict(row, rec['condition'])}"
    others = table[table["role"] == "other"]
    if len(others):

        def other(row) -> str:
            decided = pd.notna(row["p_holm"]) and row["p_holm"] < ALPHA
            return (
                f"{row['condition']} {_estimate(row)} (better than the baseline in {_seeds(row)}: "
                f"{'significant' if decided else 'not significant'} at {ALPHA:g} after Holm)"
            )

        text += "; other choices against the baseline: " + ", ".join(other(row) for _, row in others.iterrows())
    if lesson.key == "init" and chance is not None:
        zero = table[table["series"] == "init_zeros"]
        if len(zero):
            took_off = zero["mean"].iloc[0] > TAKE_OFF * chance
            text += (
                f". Zero init {'does take off here' if took_off else 'never takes off'}: test accuracy "
                f"{zero['mean'].iloc[0]:.3f} against chance {chance:.2f} "
                f"({'above' if took_off else 'within'} {TAKE_OFF:g} × chance)"
            )
            if symmetry and symmetry[1]:
                kept, checked = symmetry
                symmetry_text = (
                    "never broken: every hidden layer acts as one unit" if kept == checked else "broken in some runs"
                )
                text += (
                    f", and its hidden units are still identical at the end in {kept} of {checked} runs "
                    f"(symmetry {symmetry_text})"
                )
    return text + "."


def statistics_table(table: pd.DataFrame, lesson: Lesson) -> pd.DataFrame:
    """The lesson's table as shown: one row per condition and, for a tested one, its paired comparison
    stated in words (who beat whom on how many seeds), the effect size and the test."""
    labels = labels_of(lesson)
    number = lambda v: "-" if pd.isna(v) else f"{significant(v)}"

    def comparison(row) -> str:
        if row["role"] == "warned":
            first, second = labels[lesson.recommended], row["condition"]
        elif row["role"] == "other":
            first, second = row["condition"], labels[BASELINE]
        else:
            return "-"
        return f"{first} better than {second} in {int(row['wins'])} of {int(row['paired'])} seeds"

    return pd.DataFrame(
        {
            "condition": table["condition"],
            "seeds": table["seeds"],
            f"{lesson.metric_label} (mean [95 % CI])": [_estimate(r) for _, r in table.iterrows()],
            "paired comparison": [comparison(r) for _, r in table.iterrows()],
            "rank-biserial (first vs second)": table["effect"].map(number),
            "Wilcoxon p": table["p"].map(number),
            "Holm p": table["p_holm"].map(number),
        }
    )


# ---- drawing -------------------------------------------------------------------------------------------

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def lesson_chart(curves: pd.DataFrame, lesson: Lesson, caption: str) -> Chart:
    """The lesson's metric over training: one line per condition, mean over seeds with its 95 % bootstrap band."""
    labels = [label for label in labels_of(lesson).values() if label in set(curves["condition"])]
    log = lesson.metric == "train_loss"
    frames = []
    for label in labels:
        own = curves[curves["condition"] == label]
        runs = [(g["epoch"].to_numpy(float), g["value"].to_numpy(float)) for _, g in own.groupby("run_id")]
        frame = band(runs)
        frames.append(frame.assign(condition=label))
    data = pd.concat(frames, ignore_index=True).dropna(subset=["mean"])
    if log:  # a band reaching 0 or below cannot be drawn on a log axis
        data = data[data["mean"] > 0]
    spans = (
        [{"low": 0.0, "high": 1.0, "label": "the first epoch (where it is compared)", "color": "#7f7f7f"}]
        if lesson.at == "epoch1"
        else []
    )
    return Chart(
        data,
        x="x",
        y="mean",
        low="low",
        high="high",
        color="condition",
        colors=dict(zip(labels, COLOURS * 2)),
        label="condition",
        dash=None,
        x_title="epoch",
        y_title=f"{lesson.metric_label} (mean, 95 % band)",
        log_y=log,
        hover=["n"],
        spans=spans,
        caption=caption,
    )


# ---- the section -----------------------------------------------------------------------------------------


def build(store: Store, number: int = 9) -> Section:
    from optlab.problem import load_dataset

    section = Section(
        number,
        TITLE,
        "The lecture's practical advice — shuffle, initialize at the right scale, "
        "standardize inputs, decay the learning rate, prefer cross-entropy to squared error on "
        "sigmoid outputs — each as a comparison with one baseline on the same seeds and the same "
        "data, network, budget and target, differing only in the lesson's setting. Statistics: "
        "means with 95 % bootstrap intervals, two-sided Wilcoxon signed-rank tests on the paired "
        "seeds with Holm's correction over each lesson's comparisons. Every sentence below is "
        "generated from the runs.",
    )
    runs = store.runs(EXPERIMENT)
    if runs is None:
        return section.add(not_run(EXPERIMENT))
    runs = latest_attempts(runs[runs["status"].isin(["FINISHED", "FAILED"])])
    datasets = set(runs["dataset"].astype(str))
    chance = 1.0 / load_dataset(datasets.pop()).n_classes if len(datasets) == 1 else None
    failed = runs[runs["status"] != "FINISHED"]
    if len(failed):
        section.add(
            Note(
                f"{len(failed)} run(s) failed and enter their lesson with their last evaluation: "
                + "; ".join(f"{r.series or BASELINE} seed {r.seed:g}: {r.failure_reason}" for r in failed.itertuples()),
                kind="warning",
            )
        )
    for lesson in LESSONS:
        chosen = lesson_runs(runs, lesson)
        present = set(chosen["series_name"])
        if BASELINE not in present or not present & set(lesson.conditions):
            section.add(Note(f"{lesson.title}: no runs of its series in '{EXPERIMENT}'.", kind="warning"))
            continue
        problem = comparable(chosen, lesson)
        if problem:
            section.add(
                Note(
                    f"{lesson.title}: not compared, the runs do not hold everything else fixed: {problem}.",
                    kind="warning",
                )
            )
            continue
        curves = lesson_curves(store, chosen, lesson.metric)
        if curves.empty:
            section.add(Note(f"{lesson.title}: its runs logged no {lesson.metric}.", kind="warning"))
            continue
        values = values_at(curves, lesson.at)
        table = compare(values, lesson)
        symmetry = None
        if lesson.key == "init":
            symmetry = symmetry_kept(store, chosen[chosen["series_name"] == "init_zeros"])
        text = sentence(table, lesson, chance, symmetry)
        where = "after one epoch" if lesson.at == "epoch1" else "at the end"
        workloads = chosen["workload"].astype(str).unique()
        scope = (
            f"workload {workloads[0]}"
            if len(workloads) == 1
            else f"workloads {', '.join(workloads)} (the same but for {' / '.join(lesson.changes)})"
        )
        caption = f"{runs_text(chosen, EXPERIMENT)}; {scope}"
        section.add(
            lesson_chart(
                curves,
                lesson,
                f"{lesson.title}: {lesson.metric_label} over training (mean over "
                f"seeds, 95 % bootstrap band). {caption}.",
            )
        )
        section.add(
            Table(
                statistics_table(table, lesson),
                f"{lesson.title}: {lesson.metric_label} {where}, paired by seed. {caption}.",
            )
        )
        section.add(Note(f"{lesson.title}. {text}"))
    return section
