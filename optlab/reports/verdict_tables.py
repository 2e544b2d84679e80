"""Verdicts in the report: per workload and metric, each strategy against the best on validation
(optlab.analysis.verdicts), the strategies grouped in tiers, sentences that state only what the verdicts
support, and `verdicts.csv` / `verdicts.json` beside the report.

Metrics compared (optlab.analysis.verdicts.METRICS):

- `test_accuracy`: final test accuracy, on workloads whose runs do not stop at the target; the best is
  the strategy with the highest mean final *validation* accuracy over its reruns.
- `time_to_target`: gradient equivalents until the validation accuracy first reaches the workload's
  target; a run that never reached it (or failed) is censored at the cost it stopped at. The best is the
  strategy that reached the target on the most seeds, then with the smallest mean cost — both validation
  measurements.

A workload's margins are the defaults unless its runs carry `optlab.margins` (declared in the sweep file).

Every comparison is within one workload of one sweep: each row of verdicts.csv names its `experiment`
(the sweep) beside its `workload`, since two sweeps may use one workload name (experiments/convergence.toml
and experiments/modern.toml both have `mnist5k-relu-ce` and `digits-relu-ce`); runs of two sweeps passed
as one workload are refused.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from optlab.analysis import stats, verdicts
from optlab.analysis.numbers import significant
from optlab.analysis.verdicts import METRICS, MetricSpec

COST_AXIS = "gradient_equivalents"


@dataclass
class WorkloadVerdicts:
    """The verdicts of one workload on one metric."""

    workload: str
    metric: MetricSpec
    best: str
    values: pd.DataFrame  # seeds x strategies
    rows: pd.DataFrame  # each strategy vs the best (verdicts.COLUMNS)
    pairs: pd.DataFrame | None = None  # every pair, when asked (--all-pairs)
    declared: bool = False  # the margin was declared in the sweep file
    censored: pd.DataFrame | None = None
    tiers: dict[str, str] = field(default_factory=dict)
    experiment: str = ""  # the sweep the runs come from

    @property
    def margin(self) -> float:
        return float(self.rows["margin"].iloc[0]) if len(self.rows) else math.nan

    @property
    def counts(self) -> dict[str, int]:
        return {v: int((self.rows["verdict"] == v).sum()) for v in verdicts.VERDICTS}


def declared_margins(runs: pd.DataFrame) -> dict[str, float]:
    """The margins the runs' sweep file declared for their workload (the `optlab.margins` tag)."""
    if "margins" not in runs:
        return {}
    texts = {t for t in runs["margins"].astype(str) if t and t != "nan"}
    out: dict[str, float] = {}
    for text in sorted(texts):
        try:
            out.update({k: float(v) for k, v in json.loads(text).items() if k in METRICS})
        except (ValueError, AttributeError):
            continue
    return out


def _finish(
    workload: str,
    metric: MetricSpec,
    values: pd.DataFrame,
    best: str,
    runs: pd.DataFrame,
    all_pairs: bool,
    censored: pd.DataFrame | None = None,
) -> WorkloadVerdicts:
    from optlab.reports.workloads import sweep_of

    experiment = sweep_of(runs)
    margins = declared_margins(runs)
    margin = margins.get(metric.name)

    def compare(every_pair: bool) -> pd.DataFrame:
        return verdicts.comparisons(
            values, metric, best, every_pair, margin, censored, workload=workload, experiment=experiment
        )

    rows = compare(False)
    pairs = compare(True) if all_pairs else None
    result = WorkloadVerdicts(
        workload, metric, best, values, rows, pairs, metric.name in margins, censored, experiment=experiment
    )
    result.tiers = verdicts.tiers(rows, best)
    return result


def accuracy_verdicts(runs: pd.DataFrame, all_pairs: bool = False) -> WorkloadVerdicts | None:
    """Final test accuracy of one workload's reported runs (label = strategy configuration); the best is
    chosen on final validation accuracy. None when fewer than two strategies have values."""
    done = runs[runs["status"] == "FINISHED"]
    if "final_test_accuracy" not in done or "final_val_accuracy" not in done:
        return None
    values = done.pivot_table(index="seed", columns="label", values="final_test_accuracy", aggfunc="first")
    validation = done.pivot_table(index="seed", columns="label", values="final_val_accuracy", aggfunc="first")
    if values.shape[1] < 2 or validation.dropna(how="all", axis=1).empty:
        return None
    best = verdicts.best_on(validation, larger_is_better=True)
    return _finish(str(runs["workload"].iloc[0]), METRICS["test_accuracy"], values, best, runs, all_pairs)


def time_verdicts(hit: pd.DataFrame, all_pairs: bool = False) -> WorkloadVerdicts | None:
    """Time to the validation target (gradient equivalents) of one workload, from `measures.hits` rows;
    a miss or failure is censored at the cost it stopped at."""
    if hit.empty or hit["target"].isna().all() or f"hit_{COST_AXIS}" not in hit:
        return None
    frame = hit.assign(reached=hit[f"hit_{COST_AXIS}"].notna() & ~hit["failed"])
    frame["cost"] = np.where(frame["reached"], frame[f"hit_{COST_AXIS}"], frame[f"stop_{COST_AXIS}"])
    values = frame.pivot_table(index="seed", columns="label", values="cost", aggfunc="first")
    reached = frame.pivot_table(index="seed", columns="label", values="reached", aggfunc="first")
    if values.shape[1] < 2:
        return None
    censored = ~reached.reindex_like(values).fillna(False).astype(bool)
    score = pd.DataFrame({"reached": reached.mean(), "cost": values.mean()})
    best = str(score.sort_values(["reached", "cost"], ascending=[False, True]).index[0])
    return _finish(str(hit["workload"].iloc[0]), METRICS["time_to_target"], values, best, hit, all_pairs, censored)


# ---- tables and sentences -----------------------------------------------------------------------------
def tier_table(result: WorkloadVerdicts) -> pd.DataFrame:
    """One row per strategy, grouped by tier (best, equivalent to best, undecided, worse) and only sorted
    by mean within a tier: the mean [95 % CI], and its verdict against the best with the difference."""
    rows = []
    by_a = result.rows.set_index("a")
    for label in result.values.columns:
        own = result.values[label].dropna()
        interval = stats.bootstrap_ci(own)
        row = {
            "tier": result.tiers.get(label, "undecided"),
            "strategy": label,
            result.metric.label: interval.text(3),
            "seeds": len(own),
        }
        if result.censored is not None:
            row["reached"] = f"{int((~result.censored[label].reindex(own.index)).sum())}/{len(own)}"
        if label == result.best:
            row.update(
                {
                    "vs best": "best on validation",
                    "difference [95 % CI]": "-",
                    "test": "-",
                    "Holm p": "-",
                    "seeds needed": "-",
                }
            )
        elif label in by_a.index:
            c = by_a.loc[label]
            row.update(
                {
                    "vs best": c["verdict"],
                    "difference [95 % CI]": f"{significant(c['mean_diff'], sign=True)} "
                    f"[{significant(c['ci_low'])}, {significant(c['ci_high'])}]",
                    "test": verdicts.test_name(c["test"]),
                    "Holm p": f"{significant(c['p_adjusted'], 2)}",
                    "seeds needed": _need(c["seeds_needed"]),
                }
            )
        rows.append(row | {"_mean": interval.estimate})
    frame = pd.DataFrame(rows)
    sign = -1 if result.metric.larger_is_better else 1
    frame["_tier"] = frame["tier"].map(verdicts.tier_order)
    frame = frame.sort_values(["_tier", "_mean"], key=lambda s: s * sign if s.name == "_mean" else s)
    return frame.drop(columns=["_tier", "_mean"]).reset_index(drop=True)


def _need(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return "more than 10,000" if not math.isfinite(value) or value > 10_000 else f"{int(value)}"


def caption(result: WorkloadVerdicts) -> str:
    margin = (
        f"{significant(result.margin)} (declared in the sweep file)"
        if result.declared
        else f"{significant(result.margin)} (default: {result.metric.margin_text()})"
    )
    return (
        f"Tiers on {result.metric.label}, workload {result.workload}: each strategy against {result.best}, the "
        f"best on validation; mean [95 % bootstrap CI] over seeds; 'difference' is the paired mean difference "
        f"(strategy minus best) with its 95 % bootstrap interval; Holm's correction over the "
        f"{len(result.rows)} comparisons with the best; equivalence by TOST at margin {margin}. Strategies "
        f"are grouped by tier and sorted by mean only within a tier."
    )


def sentences(result: WorkloadVerdicts) -> list[str]:
    """What the verdicts support, in words: the tiers, then why each test was used."""
    by_tier: dict[str, list[str]] = {}
    for label, tier in result.tiers.items():
        by_tier.setdefault(tier, []).append(label)
    counts = result.counts
    m = result.metric
    out = [
        f"On {m.label}, {result.best} is best on validation; against it, {counts['better']} better, "
        f"{counts['equivalent']} equivalent, {counts['worse']} worse and {counts['undecided']} undecided "
        f"of {len(result.rows)} comparisons."
    ]
    equivalent = [s for s in by_tier.get("equivalent to best", [])]
    if equivalent:
        out.append(
            f"{', '.join(equivalent)} and {result.best} are equivalent within {significant(result.margin)} "
            f"({m.label}); their order within that tier is not a finding."
        )
    better = [s for s in by_tier.get("best", []) if s != result.best]
    if better:
        out.append(
            f"{', '.join(better)} did better than {result.best} on the compared metric although "
            f"{result.best} was best on validation."
        )
    worse = by_tier.get("worse", [])
    if worse:
        out.append(f"{', '.join(worse)} {'is' if len(worse) == 1 else 'are'} worse than {result.best}.")
    undecided = result.rows[result.rows["verdict"] == "undecided"]
    if len(undecided):
        parts = [
            f"{r.a} (about {_need(r.seeds_needed)} seeds)" if not r.censored else f"{r.a} (censored runs)"
            for r in undecided.itertuples()
        ]
        out.append(
            f"Undecided against {result.best}: {', '.join(parts)} — the seeds a paired t-test at the "
            f"observed spread would need (power {verdicts.POWER:g})."
        )
    tests = result.rows.drop_duplicates("test")
    out += [f"Deciding test: {r.why}." for r in tests.itertuples()]
    return out


# ---- machine-readable export -----------------------------------------------------------------------------
def export_frame(results: list[WorkloadVerdicts]) -> pd.DataFrame:
    """Every comparison made (vs the best, and every pair when asked) with a `scope` column."""
    frames = []
    for r in results:
        frames.append(r.rows.assign(scope="vs best"))
        if r.pairs is not None:
            frames.append(r.pairs.assign(scope="all pairs"))
    if not frames:
        return pd.DataFrame(columns=["scope", *verdicts.COLUMNS])
    frame = pd.concat(frames, ignore_index=True)
    return frame[["scope", *verdicts.COLUMNS]]


def write(results: list[WorkloadVerdicts], folder: str | Path, as_json: bool = False) -> list[Path]:
    """verdicts.csv (and verdicts.json) in `folder`."""
    folder = Path(folder)
    frame = export_frame(results)
    paths = [folder / "verdicts.csv"]
    frame.to_csv(paths[0], index=False)
    if as_json:
        paths.append(folder / "verdicts.json")
        clean = frame.astype(object).where(frame.notna(), None)
        clean = clean.map(lambda v: None if isinstance(v, float) and not math.isfinite(v) else v)
        paths[1].write_text(json.dumps(clean.to_dict("records"), indent=1, default=str))
    return paths


def pairs_table(result: WorkloadVerdicts) -> pd.DataFrame:
    """Every pair (`--all-pairs`): a vs b with the difference, the deciding test, Holm p and the verdict."""
    frame = result.pairs
    if frame is None:
        raise ValueError("pairs_table needs verdicts computed with all_pairs=True")
    return pd.DataFrame(
        {
            "a": frame["a"],
            "b": frame["b"],
            "seeds": frame["n"],
            "difference a - b [95 % CI]": [
                f"{significant(r.mean_diff, sign=True)} [{significant(r.ci_low)}, {significant(r.ci_high)}]"
                for r in frame.itertuples()
            ],
            "test": frame["test"].map(verdicts.test_name),
            "Holm p": frame["p_adjusted"].map(lambda p: significant(p, 2)),
            "verdict (a vs b)": frame["verdict"],
            "seeds needed": frame["seeds_needed"].map(_need),
        }
    )


def collect(store, experiments, all_pairs: bool = False) -> list[WorkloadVerdicts]:
    """Every workload's verdicts in the given experiments, one experiment (sweep) at a time so runs of two
    sweeps that use one workload name are never compared: final test accuracy where runs do not stop at
    the target, time to the validation target wherever there is one."""
    from optlab.reports import measures, workloads

    out = []
    for experiment in dict.fromkeys(experiments):
        runs, _ = workloads.gather(store, (experiment,))
        if runs is None:
            continue
        hit = measures.hits(runs, store.history(runs, label=f"{experiment} verdict histories"))
        for workload in workloads.ordered(runs):
            mine = runs[runs["workload"] == workload]
            if "runs stop at the target" not in workloads.describe(mine):
                accuracy = accuracy_verdicts(mine, all_pairs)
                if accuracy is not None:
                    out.append(accuracy)
            mine_hit = hit[hit["workload"] == workload]
            if not mine_hit["target"].isna().all():
                timed = time_verdicts(mine_hit, all_pairs)
                if timed is not None:
                    out.append(timed)
    return out
