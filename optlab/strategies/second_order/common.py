"""What the second-order strategies share: a flat parameter vector, batches, curvature subsets, and
an Armijo backtracking line search whose evaluations are counted."""

from __future__ import annotations

from typing import ClassVar

import torch

from optlab.errors import ConfigError
from optlab.strategies.base import Strategy


class SecondOrderStrategy(Strategy):
    family = "second-order"
    default_lr = 1.0
    default_batch_size: ClassVar[int | None] = None  # full batch unless batch_size is given
    supports_schedule = False  # line searches and damping set the step; a learning-rate schedule would not

    @classmethod
    def validate(cls, config, problem):
        if config.schedule != "constant" and not cls.supports_schedule:
            raise ConfigError(
                f"{cls.name} sets its own step size (line search, damping); schedule "
                f"{config.schedule!r} applies to first-order strategies and kfac"
            )
        super().validate(config, problem)

    @classmethod
    def check_plan(cls, config, problem, plan):
        # a step's least work (samples_per_step) cannot be cut: a smaller epoch budget buys no step at all
        least = cls.samples_per_step(config, plan.batch_size, problem)
        epochs = config.budget.get("epochs")
        if epochs is not None and getattr(problem, "has_accuracy", False) and epochs * problem.n_train < least:
            raise ConfigError(
                f"epoch budget {epochs:g} is less than one step of {cls.name!r} on {problem.name} (at least "
                f"{least / problem.n_train:.2f} epochs); give more epochs or a smaller batch"
            )

    def __init__(self, problem, params, config, plan):
        super().__init__(problem, params, config, plan)
        self.w = params.detach().clone()
        sampler = getattr(problem, "sampler", None)
        self.sampler = sampler(plan.batch_size, config.seed + 1, config.order) if plan.batch_size and sampler else None
        self.generator = torch.Generator().manual_seed(config.seed + 2)
        self.step_size = self.effective_lr(config)

    def next_indices(self) -> torch.Tensor | None:
        return self.sampler.next_indices() if self.sampler is not None else None

    def subset(self, indices: torch.Tensor | None, size: int | None) -> torch.Tensor | None:
        """`size` samples of the gradient batch (already shuffled, or the whole training set)."""
        n = self.problem.n_train if indices is None else indices.numel()
        if size is None or size >= n or not getattr(self.problem, "has_accuracy", False):
            return indices
        if indices is None:
            return torch.randperm(n, generator=self.generator)[:size].to(self.w.device)
        return indices[:size]

    def size(self, batch) -> int:
        """The training samples one evaluation on `batch` goes through (as the problem counts them)."""
        return batch.size if batch is not None else 1

    def params(self) -> torch.Tensor:
        return self.w.detach()

    @property
    def lr(self) -> float:
        return self.step_size


def backtrack(problem, w, direction, batch, loss, slope, step=1.0, shrink=0.8, c=1e-2, max_tries=30, affordable=None):
    """Largest step = step * shrink^k (k < max_tries) with L(w + step d) <= L + c step slope (Armijo).
    `affordable()`, when given, is asked before each evaluation but the first (the run's budget).
    Returns (step, new_loss, first_loss): step 0.0 when none is accepted; first_loss is L at the full step."""
    first = None
    for k in range(max_tries):
        if k > 0 and affordable is not None and not affordable():
            break
        new = float(problem.loss(w + step * direction, batch))
        first = new if first is None else first
        if new == new and new <= float(loss) + c * step * float(slope):
            return step, new, first
        step *= shrink
    return 0.0, float(loss), first
