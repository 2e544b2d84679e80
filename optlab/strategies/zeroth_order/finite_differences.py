"""`fd`: coordinate central finite differences, an exact-in-the-limit gradient from 2d function values.

g_j = (L(w + h e_j) - L(w - h e_j)) / (2h) for every coordinate j: 2d evaluations per gradient,
26,004 at the reference d = 13,002 -- the cost that makes zeroth-order methods expensive. The 2d
shifted points are evaluated in batched forward passes (`problem.losses`, `chunk` coordinates at a
time) and the estimate drives torch.optim.SGD. Refused above `max_params` with a pointer to spsa.
"""

from __future__ import annotations

import torch

from optlab.strategies.base import Option
from optlab.strategies.first_order import rules
from optlab.strategies.first_order.torch_optim import TorchOptimStrategy
from optlab.strategies.registry import register
from optlab.strategies.zeroth_order.common import Infeasible


@register
class FiniteDifferences(TorchOptimStrategy):
    name = "fd"
    description = "coordinate central finite differences (2d evaluations per gradient), gradient-descent update"
    family = "zeroth-order"
    default_lr, default_batch_size, default_momentum, default_weight_decay = 0.5, None, 0.0, 0.0
    rule = rules.SGD(momentum=True)
    options = {
        "h": Option(float, 1e-4, "finite-difference step (use dtype=float64 for accurate gradients)", greater_than=0),
        "max_params": Option(int, 2_000, "refuse problems with more parameters (2d evaluations per step)", at_least=1),
        "chunk": Option(
            int, 128, "coordinates per batched forward pass (2*chunk candidates)", at_least=1, at_most=65_536
        ),
    }

    @classmethod
    def check(cls, config, problem):
        limit, d = cls.resolve_options(config)["max_params"], problem.n_params
        if d > limit:
            raise Infeasible(
                f"fd needs 2d = {2 * d:,} function evaluations per gradient at d = {d:,} "
                f"(limit max_params={limit:,}); use spsa (2 evaluations per random direction)"
            )

    @classmethod
    def samples_per_step(cls, config, batch_size, problem):
        return (batch_size if batch_size is not None else problem.n_train) * 2 * problem.n_params

    @classmethod
    def whole_step_evaluations(cls, config, problem):
        return 2 * problem.n_params

    @torch.no_grad()
    def estimate_gradient(self, batch) -> tuple[float, torch.Tensor]:
        """(loss at w up to O(h^2), central-difference gradient); 2d counted evaluations."""
        h, chunk, d = self.opts["h"], self.opts["chunk"], self.w.numel()
        grad, loss_sum = torch.empty_like(self.w), 0.0
        for start in range(0, d, chunk):
            idx = torch.arange(start, min(start + chunk, d), device=self.w.device)
            m = len(idx)
            ws = self.w.repeat(2 * m, 1)
            rows = torch.arange(m, device=self.w.device)
            ws[rows, idx] += h
            ws[rows + m, idx] -= h
            values = self.problem.losses(ws, batch)
            grad[idx] = (values[:m] - values[m:]) / (2 * h)
            loss_sum += float((values[:m] + values[m:]).sum()) / 2
        return loss_sum / d, grad

    def gradient(self, batch):
        return self.estimate_gradient(batch)
