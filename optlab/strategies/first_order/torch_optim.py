"""The adapter from torch.optim to a Strategy: exact (mini-)batch gradients, one optimizer step each.

Each first-order strategy is a few lines: a name, a description, a default learning rate and batch
size, and the update rule it applies (`rules.py`), which gives both its torch.optim optimizer and its
batched form. A subclass that estimates the gradient instead (spsa, fd) overrides `gradient`, and with
it loses the batched form: only exact gradients are computed by the stacked trainer.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from optlab.strategies.base import Strategy
from optlab.strategies.first_order.rules import UpdateRule
from optlab.strategies.schedules import make_scheduler


class TorchOptimStrategy(Strategy):
    family = "first-order"
    default_weight_decay = 0.0
    rule: ClassVar[UpdateRule]

    @classmethod
    def knobs(cls) -> frozenset[str]:
        return frozenset({"weight_decay", "momentum"} if cls.rule.uses_momentum else {"weight_decay"})

    @classmethod
    def batched_rule(cls) -> UpdateRule | None:
        """The rule, when the stacked trainer computes exactly what this strategy's own step does: exact
        gradients, the rule's optimizer, and a rule with a stacked kernel (`update`); else None, and the
        reference trainer steps it (a kernel is optional)."""
        exact = (
            cls.gradient is TorchOptimStrategy.gradient
            and cls.step is TorchOptimStrategy.step
            and cls.build_optimizer is TorchOptimStrategy.build_optimizer
        )
        has_kernel = type(cls.rule).update is not UpdateRule.update
        return cls.rule if exact and has_kernel else None

    def build_optimizer(self, params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
        momentum = self.config.momentum if self.config.momentum is not None else self.default_momentum
        decay = self.config.weight_decay if self.config.weight_decay is not None else self.default_weight_decay
        return self.rule.torch_optimizer(params, lr, momentum, decay)

    def __init__(self, problem, params, config, plan):
        super().__init__(problem, params, config, plan)
        self.w = params.detach().clone()
        self.optimizer = self.build_optimizer([self.w], self.effective_lr(config))
        self.scheduler = make_scheduler(self.optimizer, config, plan.steps_per_epoch, plan.max_steps)
        self.sampler = problem.sampler(plan.batch_size, config.seed + 1, config.order) if plan.batch_size else None

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
