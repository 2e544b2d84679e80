"""Time to target with censoring: runs that never reach the target are counted, not dropped.

A run that reached the validation target at cost t is an event at t. A run that never reached it
(it used up its budget, or failed) is right-censored at the end of the observation window, the largest
cost observed on that axis, whatever cost it stopped at: under a fixed budget it never reaches the
target, so its time is larger than any observed. On the budget's own axis (steps, epochs) a miss stops at
the budget anyway; on wall time a miss may stop earlier than another run's hit, and censoring it there
would let the curve fall to 0 and close the interval, where the other axes of the same runs leave it open.
The Kaplan-Meier estimate (scipy.stats.ecdf on CensoredData) gives the fraction reached by each cost,
the median time to target (the smallest cost where at least half the runs have reached it; infinite
when fewer than half ever do) and its 95 % interval from the log-log confidence band of the survival
function (Brookmeyer-Crowley; where that band is undefined, at a survival of 0 or 1, it takes the
estimate's value, so with every run reaching the target the interval closes at the last hit).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from optlab.analysis.numbers import significant
from optlab.analysis.stats import CONFIDENCE


@dataclass(frozen=True)
class TimeToTarget:
    n: int  # runs
    reached: int  # runs that reached the target
    median: float  # Kaplan-Meier median cost to target (inf: fewer than half reach it)
    low: float  # its confidence interval (inf high: the interval is open above)
    high: float

    @property
    def fraction(self) -> float:
        return self.reached / self.n if self.n else math.nan

    def text(self, digits: int = 3) -> str:
        if self.n == 0:
            return "-"
        if not math.isfinite(self.median):
            return f"not reached ({self.reached}/{self.n})"
        low = significant(self.low, digits) if math.isfinite(self.low) else "-"
        return f"{significant(self.median, digits)} [{low}, {significant(self.high, digits)}]"


def time_to_target(hits, stopped, failed=None, confidence: float = CONFIDENCE) -> TimeToTarget:
    """`hits`: per run, the cost at which it first reached the target (NaN when it never did);
    `stopped`: per run, the cost at which it stopped (it bounds the observation window where every
    miss is censored); `failed`: per run, True when it failed (a miss, whatever it recorded)."""
    hits = np.asarray(hits, dtype=float)
    stopped = np.asarray(stopped, dtype=float)
    failed = np.zeros(len(hits), bool) if failed is None else np.asarray(failed, bool)
    reached = np.isfinite(hits) & ~failed
    n = len(hits)
    if n == 0:
        return TimeToTarget(0, 0, math.inf, math.inf, math.inf)
    observed = np.concatenate([hits[reached], stopped[np.isfinite(stopped)]])
    window = float(observed.max()) if len(observed) else 1.0
    censor = np.full(int((~reached).sum()), window)
    if not reached.any():
        return TimeToTarget(n, 0, math.inf, math.inf, math.inf)
    result = stats.ecdf(stats.CensoredData(uncensored=hits[reached], right=censor))
    sf = result.sf
    band = None
    if n >= 2:
        with warnings.catch_warnings():  # "undefined at some observations" where S is 0 or 1: NaN, handled below
            warnings.simplefilter("ignore", RuntimeWarning)
            band = sf.confidence_interval(confidence, method="log-log")
    times = sf.quantiles
    median = _first_at_or_below(times, sf.probabilities, 0.5)
    if band is None:
        return TimeToTarget(n, int(reached.sum()), median, math.nan, math.nan)
    # the log-log band is undefined where the estimate is 0 or 1: there it collapses onto the estimate
    estimate = sf.probabilities
    low = _first_at_or_below(times, np.where(np.isnan(band.low.probabilities), estimate, band.low.probabilities), 0.5)
    high = _first_at_or_below(
        times, np.where(np.isnan(band.high.probabilities), estimate, band.high.probabilities), 0.5
    )
    return TimeToTarget(n, int(reached.sum()), median, low, high)


def _first_at_or_below(times: np.ndarray, survival: np.ndarray, level: float) -> float:
    """The smallest time at which the survival curve is at or below `level` (inf when it never is)."""
    below = np.flatnonzero(survival <= level + 1e-12)
    return float(times[below[0]]) if len(below) else math.inf


def fraction_reached_by(hits, stopped, grid, failed=None) -> np.ndarray:
    """Kaplan-Meier fraction of runs that reached the target by each cost in `grid`."""
    hits = np.asarray(hits, dtype=float)
    stopped = np.asarray(stopped, dtype=float)
    failed = np.zeros(len(hits), bool) if failed is None else np.asarray(failed, bool)
    reached = np.isfinite(hits) & ~failed
    grid = np.asarray(grid, dtype=float)
    if not reached.any():
        return np.zeros_like(grid)
    window = float(np.nanmax(np.concatenate([hits[reached], stopped[np.isfinite(stopped)]])))
    censor = np.full(int((~reached).sum()), window)
    sf = stats.ecdf(stats.CensoredData(uncensored=hits[reached], right=censor)).sf
    return 1.0 - sf.evaluate(grid)
