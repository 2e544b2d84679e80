"""Verdicts: every comparison of two strategies ends better, worse, equivalent (within a margin) or
undecided — and an undecided one says how many seeds would decide it.

The question a comparison answers is fixed before the data are seen: per workload and metric, each
strategy against the one that is best on *validation* (k - 1 comparisons, Holm's correction over
those); every pair on request. One comparison of strategy a with reference b over their shared seeds s:

- the paired differences d_s = m_a(s) - m_b(s), their mean with a 95 % bootstrap interval
  (scipy.stats.bootstrap over the differences, optlab.analysis.stats.bootstrap_ci);
- two paired tests, both reported: the exact two-sided Wilcoxon signed-rank test (scipy.stats.wilcoxon;
  no normality assumed, robust to the odd diverging seed) and the paired t-test (scipy.stats.ttest_rel).
  The Wilcoxon test decides, unless it cannot reach the Holm threshold at this n (its smallest p is
  2 / 2^n) while the differences look normal (Shapiro-Wilk p >= ALPHA): then the t-test decides. The
  chosen test and the reason are in every row (`test`, `why`);
- effect sizes: Cohen's d_z = mean(d) / sd(d) and the matched-pairs rank-biserial correlation;
- equivalence: two one-sided paired t-tests at the margin delta (TOST, statsmodels ttost_paired): the
  90 % interval of d inside (-delta, delta);
- for an undecided comparison, the seeds a paired t-test at the observed spread would need
  (statsmodels TTestPower.solve_power, power POWER): to show the observed difference at Holm's first-step
  level, or to show equivalence (one one-sided test at the distance between the difference and the margin),
  whichever is fewer.

Verdict rule (signs are from a's point of view; "better" respects whether the metric is larger-is-better):
equivalent when TOST holds (a difference may be detectable and still inside the margin); otherwise better
or worse when the deciding test's Holm-adjusted p <= ALPHA; otherwise undecided.

Margins (DEFAULT_MARGINS) are per metric and can be overridden per sweep or workload in the sweep file;
a relative margin is a fraction of the reference's mean (e.g. 10 % of its time to target).

Metrics with censored values (time to a target that a run never reached) pass a `censored` mask: a
censored value is a lower bound (the cost spent without reaching it). The direction of a difference is
then still known and the tests use it, but its size is not: such a pair can be better or worse, never
equivalent, and no seeds-needed figure is given for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sstats

from optlab.analysis import stats
from optlab.analysis.numbers import significant

ALPHA = stats.ALPHA
POWER = 0.8
VERDICTS = ("better", "worse", "equivalent", "undecided")
TIERS = ("best", "equivalent to best", "undecided", "worse")
COLUMNS = [
    "experiment",  # the sweep: two sweeps may use one workload name, and their runs are never compared
    "workload",
    "metric",
    "a",
    "b",
    "n",
    "mean_diff",
    "ci_low",
    "ci_high",
    "test",
    "p",
    "p_adjusted",
    "margin",
    "verdict",
    "seeds_needed",
    "effect_dz",
    "rank_biserial",
    "wilcoxon_p",
    "t_p",
    "tost_p",
    "wins",
    "losses",
    "censored",
    "why",
]


@dataclass(frozen=True)
class MetricSpec:
    """A compared metric: its column, whether larger is better, and its default equivalence margin."""

    name: str  # the key in sweep files and verdicts.csv ("test_accuracy", "time_to_target")
    label: str  # in words
    larger_is_better: bool
    margin: float  # default margin of practical equivalence
    relative: bool  # margin is a fraction of the reference's mean, not an absolute value
    unit: str = ""

    def margin_text(self, margin: float | None = None) -> str:
        m = self.margin if margin is None else margin
        return f"{m:.0%} of the best's mean" if self.relative else f"{m:g}{self.unit}"


METRICS = {
    "test_accuracy": MetricSpec("test_accuracy", "final test accuracy", True, 0.01, False, " (1 point = 0.01)"),
    "time_to_target": MetricSpec("time_to_target", "gradient equivalents to the validation target", False, 0.10, True),
}
DEFAULT_MARGINS = {name: m.margin for name, m in METRICS.items()}


def margins_text() -> str:
    """The defaults, stated once for captions and docs."""
    return "; ".join(f"{m.label}: {m.margin_text()}" for m in METRICS.values())


# ---- one comparison -----------------------------------------------------------------------------
def wilcoxon_p(d: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p of the differences d (exact for n <= 50 without ties; zero
    differences dropped). All-zero differences: 1."""
    if len(d) < 2 or np.all(d == 0):
        return 1.0
    return float(sstats.wilcoxon(d, alternative="two-sided").pvalue)


def t_p(d: np.ndarray) -> float:
    """Two-sided paired t-test p (scipy.stats.ttest_rel on d against zero); constant d: 0 when it is not 0."""
    if len(d) < 2:
        return math.nan
    if np.ptp(d) == 0:
        return 1.0 if d[0] == 0 else 0.0
    return float(sstats.ttest_1samp(d, 0.0).pvalue)


def tost_p(x: np.ndarray, y: np.ndarray, margin: float) -> float:
    """TOST p (statsmodels ttost_paired) that x - y lies within (-margin, margin); small p: equivalent."""
    from statsmodels.stats.weightstats import ttost_paired

    d = x - y
    if len(d) < 2 or margin <= 0:
        return 1.0
    if np.ptp(d) == 0:
        return 0.0 if abs(d[0]) < margin else 1.0
    return float(ttost_paired(x, y, -margin, margin)[0])


def choose_test(d: np.ndarray, threshold: float) -> tuple[str, str]:
    """("wilcoxon" | "t", why): Wilcoxon unless it cannot reach `threshold` with n pairs and d looks normal."""
    n = int(np.count_nonzero(d))
    floor = stats.min_p_value(n)
    if floor <= threshold:
        return "wilcoxon", (
            f"exact Wilcoxon signed-rank: no normality assumed, and with {n} non-zero pairs its "
            f"smallest p ({significant(floor, 2)}) can reach the Holm threshold {significant(threshold, 2)}"
        )
    normal_p = sstats.shapiro(d).pvalue if len(d) >= 3 and np.ptp(d) > 0 else 0.0
    if normal_p >= ALPHA:
        return "t", (
            f"paired t-test: with {n} non-zero pairs the Wilcoxon test cannot go below p = {significant(floor, 2)} "
            f"(threshold {significant(threshold, 2)}), and the differences "
            f"look normal (Shapiro-Wilk p = {significant(normal_p, 2)})"
        )
    return "wilcoxon", (
        f"exact Wilcoxon signed-rank: the differences do not look normal (Shapiro-Wilk p = "
        f"{significant(normal_p, 2)}), so no t-test; with {n} non-zero "
        f"pairs it cannot go below p = {significant(floor, 2)}"
    )


def effect_dz(d: np.ndarray) -> float:
    """Cohen's d_z: mean paired difference over its standard deviation (inf when every difference is equal)."""
    if len(d) < 2:
        return math.nan
    sd = float(np.std(d, ddof=1))
    if sd == 0:
        return 0.0 if d[0] == 0 else math.copysign(math.inf, d[0])
    return float(np.mean(d) / sd)


def seeds_for_difference(d: np.ndarray, alpha: float, power: float = POWER) -> float:
    """Seeds a two-sided paired t-test at level `alpha` needs to detect the observed mean difference at
    the observed spread with probability `power` (statsmodels TTestPower.solve_power); inf for no difference."""
    dz = abs(effect_dz(d))
    if not math.isfinite(dz):
        return 2.0 if dz > 0 else math.inf
    if dz == 0:
        return math.inf
    return solve_seeds(dz, alpha, power, "two-sided")


def seeds_for_equivalence(d: np.ndarray, margin: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """Seeds TOST would need at the observed mean difference and spread: the harder of its one-sided tests,
    at effect (margin - |mean d|) / sd (statsmodels TTestPower, alternative 'larger'); inf when the observed
    difference is not inside the margin."""
    if len(d) < 2:
        return math.inf
    gap = margin - abs(float(np.mean(d)))
    sd = float(np.std(d, ddof=1))
    if gap <= 0:
        return math.inf
    if sd == 0:
        return 2.0
    return solve_seeds(gap / sd, alpha, power, "larger")


def solve_seeds(effect: float, alpha: float, power: float, alternative: str) -> float:
    """statsmodels TTestPower.solve_power for the number of pairs; an effect so large that 2 pairs already
    have the power (the solver then finds no root) gives 2."""
    import warnings

    from statsmodels.stats.power import TTestPower

    solver = TTestPower()
    if solver.power(effect_size=effect, nobs=2, alpha=alpha, alternative=alternative) >= power:
        return 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        n = float(solver.solve_power(effect_size=effect, alpha=alpha, power=power, alternative=alternative))
    return n if math.isfinite(n) else math.inf


def compare(
    x, y, margin: float, larger_is_better: bool, threshold: float = ALPHA, censored_x=None, censored_y=None
) -> dict:
    """One paired comparison of a (values x) with b (values y), paired by position, NaNs already removed.
    `threshold`: the Holm level the deciding test must reach (chooses the test; the verdict comes from
    `decide` once every comparison's p is known). Returns the row's numbers (no verdict yet)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    d = x - y
    sign = 1.0 if larger_is_better else -1.0
    censored = bool(np.any(censored_x) or np.any(censored_y)) if censored_x is not None else False
    test, why = choose_test(d, threshold) if len(d) >= 2 else ("wilcoxon", "fewer than 2 paired seeds")
    if censored and test == "t":
        test, why = "wilcoxon", "exact Wilcoxon signed-rank: some values are censored (only their order is known)"
    interval = stats.bootstrap_ci(d)
    row = {
        "n": len(d),
        "mean_diff": interval.estimate,
        "ci_low": interval.low,
        "ci_high": interval.high,
        "wilcoxon_p": wilcoxon_p(d),
        "t_p": math.nan if censored else t_p(d),
        "effect_dz": math.nan if censored else effect_dz(d),
        "rank_biserial": sign * stats.rank_biserial(x, y),
        "wins": int((sign * d > 0).sum()),
        "losses": int((sign * d < 0).sum()),
        "margin": margin,
        "tost_p": 1.0 if censored else tost_p(x, y, margin),
        "test": test,
        "why": why,
        "censored": censored,
    }
    row["p"] = row["wilcoxon_p"] if test == "wilcoxon" else row["t_p"]
    row["_d"] = d
    return row


def decide(rows: list[dict], larger_is_better: bool, alpha: float = ALPHA) -> list[dict]:
    """Holm over the rows' deciding p-values, then each row's verdict and, if undecided, seeds needed."""
    p = np.array([r["p"] if r["n"] >= 2 and math.isfinite(r["p"]) else 1.0 for r in rows], dtype=float)
    adjusted = stats.holm(p) if len(p) else p
    first_step = alpha / max(len(rows), 1)
    sign = 1.0 if larger_is_better else -1.0
    for row, p_adj in zip(rows, adjusted):
        d = row.pop("_d")
        row["p_adjusted"] = float(p_adj)
        if row["n"] >= 2 and row["tost_p"] <= alpha:
            row["verdict"] = "equivalent"
        elif row["n"] >= 2 and p_adj <= alpha and row["mean_diff"] != 0:
            row["verdict"] = "better" if sign * row["mean_diff"] > 0 else "worse"
        else:
            row["verdict"] = "undecided"
        row["seeds_needed"] = math.nan
        if row["verdict"] == "undecided" and not row["censored"] and row["n"] >= 2:
            need = min(seeds_for_difference(d, first_step), seeds_for_equivalence(d, row["margin"], alpha))
            row["seeds_needed"] = math.ceil(need) if math.isfinite(need) else math.inf
    return rows


# ---- a workload's comparisons -----------------------------------------------------------------------
def best_on(validation: pd.DataFrame, larger_is_better: bool) -> str:
    """The strategy (column) with the best mean validation score (seeds x strategies)."""
    means = validation.mean().dropna()
    if means.empty:
        raise ValueError("no validation scores to select the best strategy from")
    return str(means.idxmax() if larger_is_better else means.idxmin())


def resolve_margin(metric: MetricSpec, margin: float | None, reference: np.ndarray) -> float:
    value = metric.margin if margin is None else float(margin)
    return value * abs(float(np.nanmean(reference))) if metric.relative else value


def comparisons(
    values: pd.DataFrame,
    metric: MetricSpec,
    best: str,
    all_pairs: bool = False,
    margin: float | None = None,
    censored: pd.DataFrame | None = None,
    workload: str = "",
    alpha: float = ALPHA,
    experiment: str = "",
) -> pd.DataFrame:
    """Each strategy (column of `values`, seeds x strategies) against `best` — or, with `all_pairs`, every
    pair — on the seeds both have, Holm over the comparisons made. One row per comparison (COLUMNS)."""
    columns = [c for c in values.columns if values[c].notna().any()]
    if all_pairs:
        pairs = [(a, b) for i, a in enumerate(columns) for b in columns[i + 1 :]]
    else:
        pairs = [(a, best) for a in columns if a != best]
    threshold = alpha / max(len(pairs), 1)
    rows = []
    for a, b in pairs:
        both = values[[a, b]].dropna()
        cx = censored.loc[both.index, a].to_numpy(bool) if censored is not None else None
        cy = censored.loc[both.index, b].to_numpy(bool) if censored is not None else None
        delta = resolve_margin(metric, margin, values[b].to_numpy(float))
        row = compare(
            both[a].to_numpy(float), both[b].to_numpy(float), delta, metric.larger_is_better, threshold, cx, cy
        )
        rows.append({"experiment": experiment, "workload": workload, "metric": metric.name, "a": a, "b": b, **row})
    rows = decide(rows, metric.larger_is_better, alpha)
    return pd.DataFrame(rows, columns=COLUMNS)


def tiers(verdicts: pd.DataFrame, best: str) -> dict[str, str]:
    """Strategy -> tier from its verdict against the best: the best itself (and any strategy better than it)
    'best', then 'equivalent to best', 'undecided', 'worse'."""
    out = {best: "best"}
    for row in verdicts[verdicts["b"] == best].itertuples():
        out[row.a] = {"better": "best", "equivalent": "equivalent to best", "worse": "worse"}.get(
            row.verdict, "undecided"
        )
    return out


def tier_order(tier: str) -> int:
    return TIERS.index(tier) if tier in TIERS else len(TIERS)


def verdict_text(row, metric: MetricSpec) -> str:
    """The comparison in words, never stating an order the verdict does not support."""
    a, b = row["a"], row["b"]
    low, high = significant(row["ci_low"]), significant(row["ci_high"])
    diff = f"mean difference {significant(row['mean_diff'], sign=True)} [{low}, {high}]"
    margin = f"{significant(row['margin'])}"
    if row["verdict"] == "equivalent":
        tost = significant(row["tost_p"], 2)
        return f"{a} and {b} are equivalent within {margin} on {metric.label} ({diff}, TOST p = {tost})"
    if row["verdict"] in ("better", "worse"):
        return (
            f"{a} is {row['verdict']} than {b} on {metric.label} ({diff}; {row['wins']} wins / {row['losses']} "
            f"losses of {row['n']} seeds; {test_name(row['test'])} Holm p = {significant(row['p_adjusted'], 2)})"
        )
    need = row["seeds_needed"]
    need_text = (
        ""
        if not isinstance(need, (int, float)) or not math.isfinite(need) or row["censored"]
        else f"; a paired test at this spread would need about {int(need)} seeds to decide"
    )
    return (
        f"{a} vs {b} on {metric.label} is undecided with {row['n']} seeds ({diff}, neither different after "
        f"Holm nor equivalent within {margin}{need_text})"
    )


def test_name(test: str) -> str:
    return "Wilcoxon" if test == "wilcoxon" else "paired t"
