"""The diagnostics tiers: what `--diagnostics cheap|full` measures at an evaluation point of one run.

cheap: the full-training-set gradient norm, tr(Sigma), B_simple and the mean GSNR (per-sample
gradients on a fixed random subset of the training set), the last update's norm and its ratio to the
weights per layer, the cosine of the last two updates, the distance from the initial point;
full: cheap, plus sharpness and the Hessian trace on the whole training set, and the step quality
alpha of the last step.

Metric names carry the prefix `diag/`, which MLflow's run page uses to group them in one chart
section. A value that is undefined at a point (no update before the first step, a parabola without a
minimum) is left out rather than logged as nan.
"""

from __future__ import annotations

import math

import torch

from optlab.config import DIAGNOSTICS
from optlab.diagnostics.curvature import Sharpness
from optlab.diagnostics.gradients import full_gradient, gradient_noise, subset
from optlab.diagnostics.step_quality import step_alpha
from optlab.diagnostics.updates import layer_slices, update_metrics
from optlab.problem.problem import Problem

PREFIX = "diag/"
TIERS = tuple(DIAGNOSTICS)  # off, cheap, full
# metric (without the prefix) -> what it is; update_ratio_<layer> stands for one metric per layer
METRICS = {
    "grad_norm": "norm of the full-training-set gradient |G|",
    "trace_sigma": "trace of the per-sample gradient covariance tr(Sigma)",
    "b_simple": "gradient noise scale B_simple = tr(Sigma) / |G|^2 (McCandlish et al. 2018)",
    "gsnr": "mean gradient signal-to-noise ratio G_j^2 / Sigma_jj over parameters (Liu et al. 2020)",
    "update_norm": "norm of the last update (w after the step minus w before)",
    "update_ratio_<layer>": "norm of the last update over the norm of the layer's weights before it",
    "update_cosine": "cosine between the last two updates",
    "distance_from_init": "distance |w - w0| from the initial point",
    "sharpness": "top eigenvalue of the training loss's Hessian (full tier)",
    "hessian_trace": "trace of the training loss's Hessian (full tier)",
    "alpha": "step quality alpha of the last step (Cockpit): -1 start, 0 minimum, +1 far side (full tier)",
}


class Diagnostics:
    """One run's diagnostics, measured at each evaluation point; keeps the initial point, the
    per-sample subset and the last top eigenvector between points."""

    def __init__(self, tier: str, samples: int, seed: int):
        if tier not in TIERS or tier == "off":
            raise ValueError(f"diagnostics tier must be cheap or full, got {tier!r}")
        self.full = tier == "full"
        self.samples, self.seed = samples, seed
        self.initial: torch.Tensor | None = None
        self.indices: torch.Tensor | None = None
        self.layers: list[tuple[str, slice]] | None = None
        self.sharpness = Sharpness(seed=seed) if self.full else None

    def measure(self, problem: Problem, params: torch.Tensor, updates: tuple[torch.Tensor, ...]) -> dict[str, float]:
        if self.initial is None or self.layers is None:  # the loop's first evaluation is at step 0: the initial point
            self.initial = params.clone()
            self.layers = layer_slices(problem)
        values = update_metrics(params, updates, self.initial, self.layers)
        if getattr(problem, "has_accuracy", False):
            if self.indices is None:
                self.indices = subset(problem.n_train, self.samples, self.seed + 7919, params.device)
            noise = gradient_noise(problem, params, self.indices)
            values.update(
                grad_norm=noise.grad_norm, trace_sigma=noise.trace_sigma, b_simple=noise.b_simple, gsnr=noise.gsnr
            )
        else:
            values["grad_norm"] = float(full_gradient(problem, params).norm())
        if self.sharpness is not None:  # the full tier's
            values.update(self.sharpness.measure(problem, params))
            if updates:
                values["alpha"] = step_alpha(problem, params - updates[-1], params)
        return {PREFIX + key: float(value) for key, value in values.items() if math.isfinite(value)}
