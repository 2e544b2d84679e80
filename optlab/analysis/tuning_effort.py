"""Tuning effort (Dodge et al. 2019, "Show your work"): the expected best validation score after k
tuning trials, for k = 1 ... N, from the N trials a sweep ran.

Drawing k trials uniformly with replacement from the N observed scores v_(1) <= ... <= v_(N), the best
of the k is v_(i) with probability (i/N)^k - ((i-1)/N)^k (the empirical CDF to the k-th power), so

    E[max of k] = sum_i v_(i) * ((i/N)^k - ((i-1)/N)^k)

exactly, with no simulation. For a score where smaller is better the same holds for the minimum (the
scores are negated). A curve that is still rising at k = N says the strategy's verdict may change with a
bigger tuning budget; a curve flat from k = 1 says its grid hardly matters (Sivaprasad et al. 2020;
Choi et al. 2019: optimizer rankings depend on the tuning protocol).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def expected_best(scores, ks=None, larger_is_better: bool = True) -> np.ndarray:
    """E[best of k draws with replacement] for each k in `ks` (default 1 ... N), over the finite scores.
    A trial without a score (it diverged) is left out: the curve is over the trials that produced one."""
    v = np.asarray(scores, dtype=float)
    v = np.sort(v[np.isfinite(v)] if larger_is_better else -v[np.isfinite(v)])
    n = len(v)
    if n == 0:
        return np.full(len(ks) if ks is not None else 0, np.nan)
    ks = np.arange(1, n + 1) if ks is None else np.asarray(ks, dtype=float)
    cdf = np.arange(0, n + 1) / n  # F at v_(0) = 0, v_(1), ..., v_(n)
    weights = cdf[None, 1:] ** ks[:, None] - cdf[None, :-1] ** ks[:, None]
    best = weights @ v
    return best if larger_is_better else -best


def curves(trials: pd.DataFrame, group: str, score: str, larger_is_better: bool = True) -> pd.DataFrame:
    """One expected-best curve per `group` value: columns group, k, expected, trials (N). `trials` has one
    row per tuning trial with its `score` (already averaged over the tuning seeds)."""
    frames = []
    for name, own in trials.groupby(group, sort=False):
        values = own[score].to_numpy(float)
        n = int(np.isfinite(values).sum())
        if n == 0:
            continue
        ks = np.arange(1, n + 1)
        frames.append(
            pd.DataFrame({group: name, "k": ks, "expected": expected_best(values, ks, larger_is_better), "trials": n})
        )
    if not frames:
        return pd.DataFrame(columns=[group, "k", "expected", "trials"])
    return pd.concat(frames, ignore_index=True)
