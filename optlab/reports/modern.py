"""Section 3: the newer optimizers of experiments/modern.toml (pytorch-optimizer's Lion, Prodigy,
Schedule-Free AdamW, SOAP, Muon, as `po:NAME`) against the two old baselines, AdamW and momentum.

Each workload is shown as in section 1 (curves, final table, tiers against the best on validation, the
verdict sentences, the paired-difference matrix), then one sentence computed from the same verdicts: is
any newer optimizer better than both baselines, equivalent to the better of them, worse, or undecided.
The verdicts compare each strategy with the best on validation only (Holm over k-1 comparisons), so a
newer optimizer is called better than both baselines only when it is the best on validation and both
baselines are decided worse than it; every other outcome says which comparison is missing.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from optlab.reports import convergence, verdict_tables, workloads
from optlab.reports.load import Store
from optlab.reports.model import Note, Section, Table, not_run

TITLE = "Newer optimizers against AdamW and momentum"
EXPERIMENT = "modern"
BASELINES = ("adamw", "momentum")  # the old optimizers; every other strategy of the experiment is a newer one
OUTCOMES = ("better", "equivalent", "worse", "undecided")


@dataclass
class Outcome:
    """Per workload: whether a newer optimizer beats both baselines, in one word and one sentence."""

    workload: str
    outcome: str  # one of OUTCOMES
    sentence: str
    best: str
    newer_by_tier: dict[str, list[str]]
    baselines_by_tier: dict[str, list[str]]


def split_labels(runs: pd.DataFrame, baselines=BASELINES) -> tuple[list[str], list[str]]:
    """The strategy labels of one workload's runs: (newer, baselines)."""
    pairs = runs[["label", "strategy"]].drop_duplicates()
    old = sorted(pairs.loc[pairs["strategy"].isin(baselines), "label"])
    new = sorted(pairs.loc[~pairs["strategy"].isin(baselines), "label"])
    return new, old


def _by_tier(tiers: dict[str, str], labels: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for label in labels:
        out.setdefault(tiers.get(label, "undecided"), []).append(label)
    return out


def _names(labels: list[str]) -> str:
    if not labels:
        return "none"
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def outcome(result: verdict_tables.WorkloadVerdicts, newer: list[str], baselines: list[str]) -> Outcome:
    """Whether any newer optimizer is better than both baselines on the compared metric, from the verdicts
    against the best on validation (never from means alone)."""
    tiers, best, metric = result.tiers, result.best, result.metric.label
    new = _by_tier(tiers, [n for n in newer if n in tiers])
    old = _by_tier(tiers, [b for b in baselines if b in tiers])
    margin = f"{result.margin:.3g}"
    old_close = [*old.get("best", []), *old.get("equivalent to best", [])]
    prefix = f"Workload {result.workload}, newer vs {_names(baselines)} on {metric}"
    if best in newer:
        if set(old.get("worse", [])) == set(baselines):
            kind = "better"
            text = (
                f"a newer optimizer is better than both: {best} is best on validation and "
                f"{_names(baselines)} {'are both' if len(baselines) > 1 else 'is'} worse than it"
            )
        elif old_close:
            kind = "equivalent"
            text = (
                f"no newer optimizer is better than both: {best} is best on validation, but "
                f"{_names(old_close)} {'is' if len(old_close) == 1 else 'are'} equivalent to it within {margin}"
            )
        else:
            kind = "undecided"
            text = (
                f"not decided: {best} is best on validation, but {_names(old.get('undecided', []))} "
                f"{'is' if len(old.get('undecided', [])) == 1 else 'are'} neither shown worse nor equivalent"
            )
    else:
        rest = [n for n in newer if n in tiers]
        if new.get("best"):
            kind = "undecided"
            text = (
                f"not decided: {best} (a baseline) is best on validation, yet {_names(new['best'])} did "
                f"better than it on test; against the other baseline no test was made"
            )
        elif new.get("equivalent to best"):
            kind = "equivalent"
            text = (
                f"no newer optimizer is better than both: the best on validation is {best}, a baseline, and "
                f"{_names(new['equivalent to best'])} {'is' if len(new['equivalent to best']) == 1 else 'are'} "
                f"equivalent to it within {margin}"
            )
        elif rest and set(new.get("worse", [])) == set(rest):
            kind = "worse"
            text = (
                f"every newer optimizer is worse: the best on validation is {best}, a baseline, and "
                f"{_names(rest)} {'is' if len(rest) == 1 else 'are all'} worse than it"
            )
        else:
            kind = "undecided"
            text = (
                f"no newer optimizer is shown better: the best on validation is {best}, a baseline; "
                f"{_names(new.get('undecided', []))} undecided against it"
            )
    worse = [n for n in new.get("worse", []) if kind != "worse"]
    if worse:
        text += f"; worse than {best}: {_names(worse)}"
    return Outcome(result.workload, kind, f"{prefix}: {text}.", best, new, old)


def outcome_table(outcomes: list[Outcome]) -> pd.DataFrame:
    """One row per workload: the best on validation, the outcome, and where each newer optimizer landed."""
    rows = []
    for o in outcomes:
        rows.append(
            {
                "workload": o.workload,
                "best on validation": o.best,
                "newer better than both baselines?": o.outcome,
                **{
                    f"newer: {tier}": ", ".join(o.newer_by_tier.get(tier, [])) or "-"
                    for tier in ("best", "equivalent to best", "undecided", "worse")
                },
                "baselines": "; ".join(f"{t}: {', '.join(ls)}" for t, ls in o.baselines_by_tier.items()) or "-",
            }
        )
    return pd.DataFrame(rows)


OUTCOME_CAPTION = (
    "Per workload, whether a newer optimizer is better than both baselines, computed from the verdicts "
    "against the best on validation (final test accuracy): 'better' only when a newer optimizer is the best "
    "on validation and both baselines are decided worse than it; 'equivalent' when the best newer and the "
    "best baseline are within the equivalence margin; 'worse' when a baseline is best and every newer "
    "optimizer is decided worse; 'undecided' otherwise. Tiers: best, equivalent to best, undecided, worse."
)


def results(store: Store) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The experiment's reported runs and tuning trials (None when it was not run)."""
    runs, _ = workloads.gather(store, (EXPERIMENT,))
    trials, _ = workloads.gather(store, (EXPERIMENT,), include_tuning=True)
    return runs, trials


def workload_outcomes(runs: pd.DataFrame, trials) -> list[tuple[convergence.WorkloadResult, Outcome | None]]:
    """Each workload's numbers (as in section 1) and its newer-vs-baselines outcome."""
    out = []
    for workload in workloads.ordered(runs):
        mine = runs[runs["workload"] == workload]
        result = convergence.workload_result(mine, trials)
        out.append((result, _outcome_of(result, mine)))
    return out


def _outcome_of(result: convergence.WorkloadResult, runs: pd.DataFrame) -> Outcome | None:
    if result.verdicts is None:
        return None
    newer, baselines = split_labels(runs)
    return outcome(result.verdicts, newer, baselines) if newer and baselines else None


def build(store: Store, number: int = 3, all_pairs: bool = False) -> Section:
    section = Section(
        number,
        TITLE,
        "The newer optimizers of the pytorch-optimizer package (po:NAME: Lion, Prodigy, Schedule-Free AdamW, "
        "SOAP, Muon) against two old ones, AdamW and heavy-ball momentum, on the workloads of "
        "experiments/modern.toml. Each strategy's learning rate was tuned per workload on a small grid "
        "around its known-good value, selected on validation loss, then rerun on fresh seeds; only the "
        "reruns are shown. Per workload: curves, final results in tiers against the best on validation, "
        "and one sentence on whether any newer optimizer is better than both old ones.",
    )
    runs, trials = results(store)
    if runs is None:
        section.add(not_run(EXPERIMENT))
        return section
    outcomes = []
    for workload in workloads.ordered(runs):
        mine = runs[runs["workload"] == workload]
        result = convergence.add_workload(section, store, mine, trials, workload, all_pairs)
        found = _outcome_of(result, mine)
        if found is not None:
            section.add(Note(found.sentence))
            outcomes.append(found)
    if outcomes:
        section.add(Table(outcome_table(outcomes), OUTCOME_CAPTION))
    return section
