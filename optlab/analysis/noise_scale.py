"""The simple gradient noise scale B_simple = tr(Sigma) / |G|^2 (McCandlish et al. 2018, appendix A).

For a mini-batch of B samples drawn independently from the training set, E|g_B|^2 = |G|^2 + tr(Sigma)/B,
with G the full-batch gradient and Sigma the per-sample gradient covariance. Measuring |g_B|^2 at two
batch sizes *at the same parameters* gives unbiased estimates

    |G|^2   = (B_big |g_big|^2 - B_small |g_small|^2) / (B_big - B_small)
    tr Sigma = (|g_small|^2 - |g_big|^2) / (1/B_small - 1/B_big)

and B_simple is their ratio. Single measurements are noisy (|G|^2 may come out negative), so the
ratio is taken of means over many measurements (draws, evaluation points of one run, seeds), with a
bootstrap interval over seeds. `exact` computes both quantities from per-sample gradients, for checks
on small problems.

`measure` is a pure function of (problem, params, batch sizes, generator): the training loop calls it
at evaluation points as a probe; its work is a measurement (uncounted, untimed), like evaluation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from optlab.analysis.stats import CONFIDENCE, RESAMPLES, SEED


@dataclass(frozen=True)
class NoiseSample:
    """Mean squared mini-batch gradient norms at two batch sizes, at one set of parameters."""

    b_small: int
    b_big: int
    sq_small: float
    sq_big: float

    @property
    def g2(self) -> float:
        return (self.b_big * self.sq_big - self.b_small * self.sq_small) / (self.b_big - self.b_small)

    @property
    def trace(self) -> float:
        return (self.sq_small - self.sq_big) / (1 / self.b_small - 1 / self.b_big)

    @property
    def b_simple(self) -> float:
        g2 = self.g2
        return self.trace / g2 if g2 > 0 and self.trace > 0 else math.nan

    def as_metrics(self, prefix: str = "noise_") -> dict[str, float]:
        return {
            f"{prefix}sq_small": self.sq_small,
            f"{prefix}sq_big": self.sq_big,
            f"{prefix}g2": self.g2,
            f"{prefix}trace": self.trace,
        }


def mean_sq_grad_norm(problem, params: torch.Tensor, batch_size: int, draws: int, generator: torch.Generator) -> float:
    """Mean of |g_B|^2 over `draws` mini-batches of `batch_size` samples drawn with replacement
    (independent samples, as the estimator assumes), all at `params`. Uncounted."""
    total = 0.0
    w = params.detach()
    for _ in range(draws):
        idx = torch.randint(problem.n_train, (batch_size,), generator=generator)
        batch = problem.batch(idx.to(problem.device) if getattr(problem, "device", None) else idx)
        with torch.enable_grad():
            wg = w.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(problem.objective(wg, batch), wg)
        total += float(grad.double().pow(2).sum())
    return total / draws


def measure(
    problem, params: torch.Tensor, b_small: int, b_big: int, draws: int, generator: torch.Generator
) -> NoiseSample:
    """One measurement of both squared norms at the same parameters."""
    if not 0 < b_small < b_big:
        raise ValueError(f"need 0 < b_small < b_big, got {b_small}, {b_big}")
    return NoiseSample(
        b_small,
        b_big,
        mean_sq_grad_norm(problem, params, b_small, draws, generator),
        mean_sq_grad_norm(problem, params, b_big, draws, generator),
    )


def exact(problem, params: torch.Tensor, chunk: int = 512) -> tuple[float, float]:
    """(|G|^2, tr Sigma) from per-sample gradients over the whole training set (Sigma with 1/n, the
    covariance of one uniformly drawn sample's gradient)."""
    from torch.func import grad, vmap

    w = params.detach()
    n = problem.n_train
    full = problem.batch()

    def one(wv, x, y):
        return problem.objective(wv, type(full)(x[None], y[None]))

    per_sample = vmap(grad(one), in_dims=(None, 0, 0))
    mean = torch.zeros_like(w, dtype=torch.float64)
    sq = 0.0
    for start in range(0, n, chunk):
        g = per_sample(w, full.x[start : start + chunk], full.y[start : start + chunk]).double()
        mean += g.sum(0)
        sq += float(g.pow(2).sum())
    mean /= n
    g2 = float(mean.pow(2).sum())
    return g2, sq / n - g2


def ratio_of_means(samples: list[NoiseSample]) -> float:
    """B_simple from many measurements: mean tr Sigma over mean |G|^2 (NaN unless both are positive)."""
    if not samples:
        return math.nan
    g2 = np.mean([s.g2 for s in samples])
    trace = np.mean([s.trace for s in samples])
    return float(trace / g2) if g2 > 0 and trace > 0 else math.nan


def b_simple_ci(
    per_seed: dict, confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = SEED
) -> tuple[float, float, float]:
    """B_simple (ratio of means) with a bootstrap interval that resamples whole seeds (scipy.stats.bootstrap,
    paired: a seed's |G|^2 and tr Sigma stay together). `per_seed` maps a seed to its (g2, trace)
    measurements at one point of training (or over a window). A resample whose mean |G|^2 or tr Sigma is
    not positive has no finite ratio and counts as unbounded (the interval then opens to infinity).
    Returns (estimate, low, high); NaN where undefined."""
    from scipy import stats

    seeds = list(per_seed)
    if not seeds:
        return math.nan, math.nan, math.nan
    g2 = np.array([np.mean([m[0] for m in per_seed[s]]) for s in seeds])
    trace = np.array([np.mean([m[1] for m in per_seed[s]]) for s in seeds])

    def ratio(t, g, axis=-1):
        num, den = t.mean(axis=axis), g.mean(axis=axis)
        return np.where((num > 0) & (den > 0), num / np.where(den > 0, den, 1.0), np.inf)

    estimate = float(ratio(trace, g2))
    if not math.isfinite(estimate):
        return math.nan, math.nan, math.nan
    if len(seeds) < 2:
        return estimate, math.nan, math.nan
    result = stats.bootstrap(
        (trace, g2),
        ratio,
        paired=True,
        vectorized=True,
        confidence_level=confidence,
        n_resamples=resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return estimate, float(result.confidence_interval.low), float(result.confidence_interval.high)
