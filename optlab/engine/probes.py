"""Probes: named measurements the training loop takes at evaluation points, for every live run.

A probe reads one run's current parameters (and, if it asks, its most recent parameter updates),
does uncounted work on the run's problem (`problem.objective`, curvature operators: measurements, like
evaluation, are not work done by the strategy), and returns metrics the loop logs at the step, keeps in
the run's history and, for the last value of each, in `RunResult.probes` and the summary tags.
Probes measure; they never change the run. The loop runs them the same way whichever trainer steps
the run (a torch.optim strategy alone or a row of a stacked program).

Contract (what a new probe implements):
  - `name`: a short identifier, used in failure reasons ("probe curvature: ...");
  - `at`: "evaluations" (every evaluation point, the initial one included), "full_evaluations" (the
    points that also measure the training and test sets: every point unless `full_eval_every` is set;
    for measurements of the training set whose density may follow those curves) or "end" (once, at the
    final point of a run that finishes);
  - `updates`: how many of the run's most recent parameter updates it needs (w after a step minus w
    before it, oldest first). 0 costs nothing; n > 0 makes the loop keep a copy of every live row's
    parameters at each step, so ask only for what the measurement needs (2 for the cosine of successive
    updates, 1 for an update-to-weight ratio);
  - `measure(run: ProbeInput) -> dict[str, float]`.
One probe object is made per run (`probes_for`), so a probe may keep state across evaluation points
(a generator for its batches, a previous measurement).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from optlab.config import RunConfig
from optlab.problem import Problem


@dataclass(frozen=True)
class ProbeInput:
    """What a probe sees of one run at one evaluation point."""

    problem: Problem  # the run's problem (its data, labels and cost)
    config: RunConfig  # the run's resolved config
    step: int  # optimizer steps taken so far
    params: torch.Tensor  # the run's current flat parameters (a copy; never written back)
    updates: tuple[torch.Tensor, ...] = ()  # its most recent updates, oldest first (len <= the probe's `updates`)


class Probe:
    name: ClassVar[str]
    at: ClassVar[str] = "evaluations"  # "evaluations" | "full_evaluations" | "end"
    updates: ClassVar[int] = 0

    def measure(self, run: ProbeInput) -> dict[str, float]:
        raise NotImplementedError


class CurvatureProbe(Probe):
    """Sharpness at the final point: the loss Hessian's top eigenvalue (power iteration) and trace
    (Hutchinson) on the whole training set (`--probe-curvature`)."""

    name = "curvature"
    at = "end"

    def measure(self, run: ProbeInput) -> dict[str, float]:
        from optlab.strategies.second_order.curvature import probe_curvature

        return probe_curvature(run.problem, run.params)


class DiagnosticsProbe(Probe):
    """`--diagnostics cheap|full`: the in-training diagnostics (optlab.diagnostics) at every full evaluation
    point (every point unless `full_eval_every` is set), from the run's parameters and its last two updates."""

    name = "diagnostics"
    at = "full_evaluations"
    updates = 2  # the cosine of successive updates needs two; the ratios and alpha the last one

    def __init__(self, config: RunConfig):
        from optlab.diagnostics import Diagnostics

        self.diagnostics = Diagnostics(config.diagnostics, config.diagnostics_samples, config.seed)

    def measure(self, run: ProbeInput) -> dict[str, float]:
        return self.diagnostics.measure(run.problem, run.params, run.updates)


class NoiseScaleProbe(Probe):
    """The gradient noise scale's ingredients during training (`--probe-noise-scale`; McCandlish et al.
    2018, appendix A): mean |g_B|^2 over DRAWS mini-batches at B_SMALL and at B_BIG, drawn with
    replacement at the *same* current parameters, and the unbiased |G|^2 and tr(Sigma) from them.
    It measures at step 0 and then at the first evaluation at or after steps 10, 20, 40, 80, ... (a
    doubling schedule: dense early, where the scale changes fastest; ~10 points over thousands of
    steps), with its own generator seeded from the run's seed, so the run's batches are untouched."""

    name = "noise_scale"
    B_SMALL, B_BIG, DRAWS, FIRST = 32, 1024, 8, 10

    def __init__(self, seed: int):
        self.generator = torch.Generator().manual_seed(1_000_003 + seed)
        self.next_step = 0

    def measure(self, run: ProbeInput) -> dict[str, float]:
        from optlab.analysis.noise_scale import measure

        if run.step < self.next_step or not hasattr(run.problem, "n_train"):
            return {}
        self.next_step = max(self.FIRST, 2 * run.step)
        big = min(self.B_BIG, run.problem.n_train)
        sample = measure(run.problem, run.params, min(self.B_SMALL, big // 2), big, self.DRAWS, self.generator)
        return sample.as_metrics("noise_")


def probes_for(config: RunConfig) -> list[Probe]:
    """The probes a run's config asks for, one fresh object each (none: the loop pays nothing)."""
    probes: list[Probe] = [CurvatureProbe()] if config.probe_curvature else []
    if config.probe_noise_scale:
        probes.append(NoiseScaleProbe(config.seed))
    if config.diagnostics != "off":
        probes.append(DiagnosticsProbe(config))
    return probes
