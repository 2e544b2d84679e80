"""The adapter from torch.optim to a Strategy: exact (mini-)batch gradients, one optimizer step each.

Each first-order strategy is a few lines: a name, a description, a default learning rate and batch
size, and the torch.optim optimizer it builds (see optimizers.py).
"""

from __future__ import annotations

import torch

from optlab.strategies.base import Strategy
from optlab.strategies.schedules import make_scheduler


class TorchOptimStrategy(Strategy):
    family = "first-order"
    default_weight_decay = 0.0

    def build_optimizer(self, params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
        raise NotImplementedError

    def __init__(self, problem, params, config, plan):
        super().__init__(problem, params, config, plan)
        self.w = params.detach().clone()
        self.optimizer = self.build_optimizer([self.w], self.effective_lr(config))
        self.scheduler = make_scheduler(self.optimizer, config, plan.steps_per_epoch, plan.max_steps)
        self.sampler = problem.sampler(plan.batch_size, config.seed + 1) if plan.batch_size else None

    def next_batch(self):
        return self.problem.batch(self.sampler.next_indices() if self.sampler is not None else None)

    def gradient(self, batch) -> tuple[torch.Tensor | float, torch.Tensor]:
        """(loss, gradient) at the current point: exact here; estimates in zeroth-order subclasses."""
        return self.problem.loss_and_grad(self.w, batch)

    def step(self) -> dict[str, float]:
        lr = self.optimizer.param_groups[0]["lr"]
        loss, grad = self.gradient(self.next_batch())
        self.w.grad = grad
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return {"batch_loss": float(loss), "grad_norm": grad.norm().item(), "lr": lr}

    def params(self) -> torch.Tensor:
        return self.w.detach()

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]
