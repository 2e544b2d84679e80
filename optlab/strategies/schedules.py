"""Learning-rate schedules as torch.optim.lr_scheduler objects, stepped once per optimizer step."""

from __future__ import annotations

import torch

from optlab.config import RunConfig
from optlab.errors import ConfigError


def make_scheduler(optimizer: torch.optim.Optimizer, config: RunConfig, steps_per_epoch: float,
                   max_steps: int | None):
    sched = torch.optim.lr_scheduler
    per_epoch = max(steps_per_epoch, 1e-9)
    if config.schedule == "constant":
        return None
    if config.schedule == "step":
        return sched.StepLR(optimizer, step_size=max(1, round(config.decay_every * per_epoch)),
                            gamma=config.decay_rate)
    if config.schedule == "exponential":
        return sched.ExponentialLR(optimizer, gamma=config.decay_rate ** (1.0 / per_epoch))
    if config.schedule == "cosine":
        if max_steps is None:
            raise ConfigError("schedule 'cosine' needs a step, epoch or evaluation budget, not only --seconds")
        return sched.CosineAnnealingLR(optimizer, T_max=max(1, max_steps))
    raise ConfigError(f"unknown schedule {config.schedule!r}")
