"""Performance profiles over a set of workloads (Dolan & Moré 2002; AlgoPerf, Dahl et al. 2023).

For workload w and strategy s, t(s, w) is the cost to reach w's validation target (the median over
seeds, infinite when missed, failed or absent). The ratio r(s, w) = t(s, w) / min_s' t(s', w);
rho_s(tau) is the fraction of workloads with r(s, w) <= tau. The score is AlgoPerf's normalized area
(1 / (tau_max - 1)) * integral from 1 to tau_max of rho_s(tau) d tau with tau_max = 4: 1 means fastest
on every workload, 0 means never within 4x of the fastest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TAU_MAX = 4.0


def ratios(costs: pd.DataFrame) -> pd.DataFrame:
    """Cost ratios to the best strategy per workload (rows: workloads, columns: strategies).
    NaN (absent) and non-finite costs count as infinite; a workload nobody finished is all infinite."""
    c = costs.astype(float).where(np.isfinite(costs.astype(float)), np.inf)
    best = c.min(axis=1)
    out = c.div(best.where(np.isfinite(best) & (best > 0)), axis=0)
    zero = best == 0  # a zero cost (reached at the first evaluation): only the zero costs are "best"
    if zero.any():
        out.loc[zero] = np.where(c.loc[zero] == 0, 1.0, np.inf)
    return out.where(np.isfinite(out), np.inf).fillna(np.inf)


def rho(ratio: pd.DataFrame, taus) -> pd.DataFrame:
    """rho_s(tau) for each tau (rows) and strategy (columns)."""
    taus = np.asarray(taus, dtype=float)
    r = ratio.to_numpy(float)
    values = (r[None, :, :] <= taus[:, None, None]).mean(axis=1)
    return pd.DataFrame(values, index=pd.Index(taus, name="tau"), columns=ratio.columns)


def score(ratio: pd.DataFrame, tau_max: float = TAU_MAX) -> pd.Series:
    """AlgoPerf's normalized area under rho from 1 to tau_max, exact for the step function:
    each workload with ratio r <= tau_max adds (tau_max - max(r, 1)) / (tau_max - 1) / n_workloads."""
    r = ratio.to_numpy(float)
    inside = np.where(r <= tau_max, (tau_max - np.maximum(r, 1.0)) / (tau_max - 1.0), 0.0)
    return pd.Series(inside.mean(axis=0), index=ratio.columns, name="score")


def taus(tau_max: float = TAU_MAX, points: int = 400) -> np.ndarray:
    return np.linspace(1.0, tau_max, points)
