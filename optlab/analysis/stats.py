"""Seed statistics: bootstrap confidence intervals and paired tests between strategies.

Every interval is a 95 % bootstrap confidence interval over seeds (scipy.stats.bootstrap, BCa,
9,999 resamples, a fixed generator so a report is reproducible). With the handful of seeds a sweep
affords, bootstrap intervals are approximate (they tend to undercover below about 10 seeds); captions
say how many seeds each interval rests on.

Paired tests over seeds (the same seed, so the same initialization and batch order, for both
strategies), Holm's correction and the matched-pairs rank-biserial correlation are the building blocks
of the verdicts (optlab.analysis.verdicts). With n seeds no exact sign-based test can go below
p = 2 / 2^n: `min_p_value` says so in numbers.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from optlab.analysis.numbers import significant

CONFIDENCE = 0.95
RESAMPLES = 9999
SEED = 0  # the bootstrap's generator: the same data gives the same interval
ALPHA = 0.05
TESTS = ("wilcoxon", "permutation", "t")


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval (low/high are NaN when it cannot be computed)."""

    estimate: float
    low: float
    high: float
    n: int
    confidence: float = CONFIDENCE

    def text(self, digits: int = 3) -> str:
        if not math.isfinite(self.estimate):
            return "-"
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return f"{significant(self.estimate, digits)} (n={self.n})"
        if self.low == self.high == self.estimate:
            return f"{significant(self.estimate, digits)} (no spread over {self.n} seeds)"
        return (
            f"{significant(self.estimate, digits)} [{significant(self.low, digits)}, {significant(self.high, digits)}]"
        )

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def bootstrap_ci(
    values,
    statistic=np.mean,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    method: str = "BCa",
) -> Interval:
    """Bootstrap CI of `statistic` over the finite entries of `values` (scipy.stats.bootstrap).
    One value: the estimate without an interval; identical values: a zero-width interval."""
    x = np.sort(np.asarray(values, dtype=float))  # sorted: the interval does not depend on the data's order
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return Interval(math.nan, math.nan, math.nan, 0, confidence)
    estimate = float(statistic(x))
    if len(x) == 1:
        return Interval(estimate, math.nan, math.nan, 1, confidence)
    if np.ptp(x) == 0:
        return Interval(estimate, estimate, estimate, len(x), confidence)
    low, high = _bootstrap(x[None, :], statistic, confidence, resamples, seed, method)
    return Interval(estimate, float(low[0]), float(high[0]), len(x), confidence)


def bootstrap_band(
    matrix, confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = SEED, method: str = "BCa"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over rows (runs) of an (n_runs, n_points) matrix and its pointwise bootstrap CI: the band of
    a curve over seeds on a common x grid. Columns where all runs agree get a zero-width band."""
    m = np.sort(np.asarray(matrix, dtype=float), axis=0)  # per column, as bootstrap_ci sorts
    mean = m.mean(axis=0)
    low, high = np.full_like(mean, np.nan), np.full_like(mean, np.nan)
    if m.shape[0] < 2:
        return mean, low, high
    spread = np.ptp(m, axis=0) > 0
    low[~spread], high[~spread] = mean[~spread], mean[~spread]
    if spread.any():
        lo, hi = _bootstrap(m[:, spread].T, np.mean, confidence, resamples, seed, method)
        low[spread], high[spread] = lo, hi
    return mean, low, high


def _bootstrap(rows: np.ndarray, statistic, confidence, resamples, seed, method):
    """One vectorized scipy.stats.bootstrap over the last axis of `rows` (one CI per row)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BCa warns on near-degenerate rows; we fall back below
        result = stats.bootstrap(
            (rows,),
            lambda x, axis: statistic(x, axis=axis),
            axis=-1,
            vectorized=True,
            confidence_level=confidence,
            n_resamples=resamples,
            method=method,
            rng=np.random.default_rng(seed),
        )
        low, high = np.atleast_1d(result.confidence_interval.low), np.atleast_1d(result.confidence_interval.high)
        bad = ~(np.isfinite(low) & np.isfinite(high))
        if bad.any() and method != "percentile":
            fallback = stats.bootstrap(
                (rows[bad],),
                lambda x, axis: statistic(x, axis=axis),
                axis=-1,
                vectorized=True,
                confidence_level=confidence,
                n_resamples=resamples,
                method="percentile",
                rng=np.random.default_rng(seed),
            )
            low[bad] = np.atleast_1d(fallback.confidence_interval.low)
            high[bad] = np.atleast_1d(fallback.confidence_interval.high)
    return low, high


# ---- paired comparisons ------------------------------------------------------------------------
def paired_p_value(x, y, test: str = "wilcoxon") -> float:
    """Two-sided p-value of a paired test of x against y (same length, paired by position).
    All-equal pairs give p = 1 (no evidence of a difference)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; choose from {', '.join(TESTS)}")
    d = x - y
    if len(d) < 2 or np.all(d == 0):
        return 1.0
    if test == "wilcoxon":
        return float(stats.wilcoxon(x, y, alternative="two-sided", method="auto").pvalue)
    if test == "permutation":
        result = stats.permutation_test(
            (x, y),
            lambda a, b, axis: np.mean(a - b, axis=axis),
            permutation_type="samples",
            alternative="two-sided",
            vectorized=True,
            n_resamples=np.inf if len(d) <= 16 else 99999,
            rng=np.random.default_rng(SEED),
        )
        return float(result.pvalue)
    return float(stats.ttest_rel(x, y).pvalue)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (statsmodels.stats.multitest.multipletests)."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=float)
    if len(p) == 0:
        return p
    return multipletests(p, method="holm")[1]


def rank_biserial(x, y) -> float:
    """Matched-pairs rank-biserial correlation (Kerby 2014): (W+ - W-) / (W+ + W-) over the non-zero
    paired differences x - y; +1 when x is larger on every seed, -1 when smaller, 0 when balanced."""
    d = np.asarray(x, dtype=float) - np.asarray(y, dtype=float)
    d = d[d != 0]
    if len(d) == 0:
        return 0.0
    ranks = stats.rankdata(np.abs(d))
    return float((ranks[d > 0].sum() - ranks[d < 0].sum()) / ranks.sum())


def min_p_value(n: int) -> float:
    """Smallest two-sided p-value an exact sign-based paired test (Wilcoxon, sign-flip permutation)
    can reach with n pairs: 2 / 2^n."""
    return 2.0 / 2**n if n > 0 else 1.0
