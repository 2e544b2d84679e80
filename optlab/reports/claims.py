"""Sentences that state results, generated from the numbers they describe.

Every function here takes the computed statistics and returns text; a claim the data does not
support is not written (e.g. "A beats B" only when Holm-corrected p <= 0.05).
"""

from __future__ import annotations

import math

import pandas as pd

from optlab.analysis import stats


def ci(interval: stats.Interval, digits: int = 3) -> str:
    return interval.text(digits)


def leader(values: pd.DataFrame, metric_name: str, larger_is_better: bool, pairs: pd.DataFrame) -> str:
    """Who has the best mean `metric_name` on this workload, and whether that lead is significant
    against the runner-up and against each other strategy (values: seeds x strategies)."""
    means = values.mean().dropna()
    if len(means) < 2:
        return ""
    order = means.sort_values(ascending=not larger_is_better).index.tolist()
    best, second = order[0], order[1]
    best_ci, second_ci = stats.bootstrap_ci(values[best]), stats.bootstrap_ci(values[second])
    n = int(values[[best, second]].dropna().shape[0])
    text = (f"Best mean {metric_name}: {best} {ci(best_ci)}, then {second} {ci(second_ci)} "
            f"(95 % bootstrap CIs over {n} paired seeds).")
    pair = _pair(pairs, best, second)
    if pair is not None and n >= 2 and math.isfinite(pair["p_holm"]):
        if pair["verdict"] == "n.s.":
            text += (f" The difference is not significant (Wilcoxon signed-rank, Holm-corrected p = "
                     f"{pair['p_holm']:.3g}; {best} better on {_wins(pair, best)} of {pair['n']} seeds).")
        else:
            text += f" The difference is significant (Holm-corrected p = {pair['p_holm']:.3g})."
    beaten = [other for other in order[1:] if (p := _pair(pairs, best, other)) is not None
              and p["verdict"] == ("a" if p["a"] == best else "b")]
    if beaten:
        text += f" {best} is significantly better than {', '.join(beaten)}."
    return text


def _pair(pairs: pd.DataFrame, a: str, b: str):
    match = pairs[((pairs["a"] == a) & (pairs["b"] == b)) | ((pairs["a"] == b) & (pairs["b"] == a))]
    return None if match.empty else match.iloc[0]


def _wins(pair, who: str) -> int:
    return int(pair["wins"] if pair["a"] == who else pair["losses"])


def power(n_seeds: int, n_strategies: int) -> str:
    """What the seed count allows: the smallest attainable p and the seeds Holm's first step needs."""
    pairs = n_strategies * (n_strategies - 1) // 2
    if pairs == 0 or n_seeds < 2:
        return ""
    floor = stats.min_p_value(n_seeds)
    need = stats.seeds_needed(pairs)
    if floor <= stats.ALPHA / pairs:
        return (f"With {n_seeds} seeds an exact paired test can reach p = {floor:.2g}, enough for Holm's "
                f"correction over {pairs} pairs.")
    return (f"With {n_seeds} seeds no exact paired test can go below p = {floor:.2g}, while Holm's correction "
            f"over {pairs} pairs asks for p <= {stats.ALPHA / pairs:.2g} at its first step: no pair can be declared "
            f"different here; that needs at least {need} seeds. Effect sizes and intervals still show the size and "
            f"direction of each difference.")


def fmt(value: float, digits: int = 3) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"
