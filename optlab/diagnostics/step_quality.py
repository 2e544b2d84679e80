"""Step quality alpha (Cockpit; Schneider, Dangel and Hennig 2021): where on the local parabola the
last step landed.

Along the step from w0 to w1 = w0 + t u (|u| = 1, t = the step's length), a parabola
q(tau) = c + b tau + a tau^2 is fitted to four observations: the loss at both ends and its directional
derivative along u at both ends, each weighted by the inverse variance of its estimate (Cockpit's
maximum-likelihood fit). With the minimum of the parabola at tau* = -b / (2a),
alpha = t / tau* - 1: -1 means the step stayed where it started (or the height of the start on the
near side), 0 that it landed on the minimum, +1 on the far side at the starting height (the
oscillation of gradient descent at the edge of stability), beyond +1 that it climbed above the start.
Here the observations are exact means over the whole training set, and their variances those of a
mean (per-sample variance / n) from the per-sample losses and directional derivatives, which one
forward-mode pass (torch.func.jvp of the vector of per-sample losses) gives together. On an exact
quadratic every weighting gives the same parabola, and alpha = -(d^T A d)/(g0^T d) - 1 for the step d.
When the fitted parabola has no minimum (a <= 0: the loss is concave along the step) alpha is
undefined and left out.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.func import jvp, vmap

from optlab.problem.problem import Batch, Problem


def fit_quadratic(
    t: float,
    fs: tuple[float, float],
    dfs: tuple[float, float],
    fs_var: tuple[float, float],
    dfs_var: tuple[float, float],
) -> np.ndarray:
    """(c, b, a) of q(tau) = c + b tau + a tau^2 from f(0), f(t), f'(0), f'(t), weighted least squares
    with weights 1/variance (a zero variance is an exact observation: weighted as the tightest given,
    times 1e6, or all equal when every variance is zero)."""
    design = np.array([[1.0, 0.0, 0.0], [1.0, t, t * t], [0.0, 1.0, 0.0], [0.0, 1.0, 2.0 * t]])
    observed = np.array([*fs, *dfs], dtype=np.float64)
    variances = np.array([*fs_var, *dfs_var], dtype=np.float64)
    positive = variances[variances > 0]
    floor = positive.min() * 1e-6 if positive.size else 1.0
    weights = 1.0 / np.sqrt(np.where(variances > 0, variances, floor))
    solution, *_ = np.linalg.lstsq(design * weights[:, None], observed * weights, rcond=None)
    return solution


def alpha_from_fit(coefficients: np.ndarray, t: float) -> float:
    """alpha = t / tau* - 1 with tau* = -b / (2a) the parabola's minimum; nan without a minimum."""
    _, b, a = (float(x) for x in coefficients)
    if not a > 0 or b == 0:
        return math.nan
    return t / (-b / (2.0 * a)) - 1.0


def _loss_and_slope(problem: Problem, w: torch.Tensor, direction: torch.Tensor):
    """Per-sample losses and their directional derivatives along `direction` at w, over the training
    set (one forward-mode pass), or the total loss and its derivative for a problem without samples."""
    batch = problem.batch()
    if batch is None:
        value, slope = jvp(lambda v: problem.objective(v, None), (w,), (direction,))[:2]  # (no aux output)
        return value.reshape(1), slope.reshape(1)

    network, cost = getattr(problem, "network", None), getattr(problem, "cost", None)
    if network is not None and cost is not None:
        # one forward pass over the batch, the cost per sample by vmap (vmapping the whole network per
        # sample would expand its weights once per sample: 5x slower on the reference net)
        def sample_losses(v):
            logits = network.forward(v, batch.x)
            return vmap(lambda z, y: cost(z.unsqueeze(0), y.unsqueeze(0)))(logits, batch.y)
    else:

        def sample_losses(v):
            return vmap(lambda x, y: problem.objective(v, Batch(x.unsqueeze(0), y.unsqueeze(0))))(batch.x, batch.y)

    return jvp(sample_losses, (w,), (direction,))


def step_alpha(problem: Problem, start: torch.Tensor, end: torch.Tensor) -> float:
    """alpha of the step from `start` to `end` on the training loss (nan for a zero or concave step)."""
    step = (end - start).detach()
    t = float(step.norm())
    if t == 0 or not math.isfinite(t):
        return math.nan
    direction = step / t

    def measured(point: torch.Tensor) -> tuple[float, float, float, float]:
        """Mean loss, mean slope and the variances of those means at `point`."""
        losses, slopes = (x.to(torch.float64) for x in _loss_and_slope(problem, point, direction))
        n = losses.numel()
        return (
            float(losses.mean()),
            float(slopes.mean()),
            float(losses.var()) / n if n > 1 else 0.0,
            float(slopes.var()) / n if n > 1 else 0.0,
        )

    (f0, df0, f0_var, df0_var), (f1, df1, f1_var, df1_var) = measured(start.detach()), measured(end.detach())
    return alpha_from_fit(fit_quadratic(t, (f0, f1), (df0, df1), (f0_var, f1_var), (df0_var, df1_var)), t)
