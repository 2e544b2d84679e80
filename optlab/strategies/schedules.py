"""Learning-rate schedules, stepped once per optimizer step, in two forms that agree:

- `make_scheduler`: a `torch.optim.lr_scheduler` object on a torch.optim optimizer (the reference form);
- `Schedule.lr(step)`: the same learning rate in closed form, for the stacked trainer (no optimizer
  object, so no torch.optim import on that path); torch computes these recursively, so the two agree
  up to float rounding (tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from optlab.config import RunConfig
from optlab.errors import ConfigError


@dataclass(frozen=True)
class Schedule:
    """The learning rate of one run at each optimizer step (0 = the first step)."""

    base: float
    kind: str
    gamma: float = 1.0  # step: factor per period; exponential: factor per step
    period: int = 1  # step: steps between decays; cosine: T_max

    @classmethod
    def of(cls, config: RunConfig, lr: float, steps_per_epoch: float, max_steps: int | None) -> Schedule:
        per_epoch = max(steps_per_epoch, 1e-9)
        if config.schedule == "constant":
            return cls(lr, "constant")
        if config.schedule == "step":
            return cls(lr, "step", config.decay_rate, max(1, round(config.decay_every * per_epoch)))
        if config.schedule == "exponential":
            return cls(lr, "exponential", config.decay_rate ** (1.0 / per_epoch))
        if config.schedule == "cosine":
            if max_steps is None:
                raise ConfigError("schedule 'cosine' needs a step, epoch or evaluation budget, not only --seconds")
            return cls(lr, "cosine", period=max(1, max_steps))
        raise ConfigError(f"unknown schedule {config.schedule!r}")

    @property
    def constant(self) -> bool:
        return self.kind == "constant"

    def lr(self, step: int) -> float:
        if self.kind == "step":
            return self.base * self.gamma ** (step // self.period)
        if self.kind == "exponential":
            return self.base * self.gamma**step
        if self.kind == "cosine":
            return self.base * (1 + math.cos(math.pi * step / self.period)) / 2
        return self.base


def make_scheduler(optimizer, config: RunConfig, steps_per_epoch: float, max_steps: int | None):
    """The torch.optim.lr_scheduler for `config.schedule` (None when constant)."""
    schedule = Schedule.of(config, optimizer.param_groups[0]["lr"], steps_per_epoch, max_steps)
    if schedule.constant:
        return None
    import torch

    sched = torch.optim.lr_scheduler
    if schedule.kind == "step":
        return sched.StepLR(optimizer, step_size=schedule.period, gamma=schedule.gamma)
    if schedule.kind == "exponential":
        return sched.ExponentialLR(optimizer, gamma=schedule.gamma)
    return sched.CosineAnnealingLR(optimizer, T_max=schedule.period)
