"""Exact Newton: form the d x d Hessian, solve (H + damping I) p = -g, take a backtracked step.

Only for small problems (the 2-D test functions, tiny nets): forming H costs d Hessian-vector
products and O(d^2) memory, so above `max_params` the run is refused and newton_cg suggested.
Where H + damping I is not positive definite (saddles of a network's loss), the step uses |H|'s
eigenvalues instead ("saddle-free Newton", Dauphin et al. 2014), so it still goes downhill.
"""

from __future__ import annotations

import torch

from optlab.errors import ConfigError
from optlab.strategies.base import BudgetSpent, Option
from optlab.strategies.registry import register
from optlab.strategies.second_order.common import SecondOrderStrategy, backtrack
from optlab.strategies.second_order.curvature import hessian_matrix


@register
class Newton(SecondOrderStrategy):
    name = "newton"
    description = "exact Newton: solve (H + damping I) p = -g with the full Hessian (small problems only)"
    options = {
        "damping": Option(float, 0.0, "added to the Hessian's diagonal (0: pure Newton)", at_least=0),
        "line_search": Option(bool, True, "Armijo backtracking on the step (off: always the full lr * p)"),
        "max_params": Option(int, 2000, "refuse problems with more parameters (the Hessian is d x d)", at_least=1),
    }

    @classmethod
    def check(cls, config, problem):
        opts = cls.resolve_options(config)
        if problem.n_params > opts["max_params"]:
            raise ConfigError(
                f"newton forms the exact d x d Hessian and {problem.name} has d = {problem.n_params} parameters "
                f"(> max_params {opts['max_params']}): use strategy 'newton_cg' (Hessian-free)"
            )

    @classmethod
    def samples_per_step(cls, config, batch_size, problem):
        # a gradient, one Hessian-vector product per parameter, and the line search's first trial
        return (problem.n_params + 2) * (batch_size or problem.n_train)

    def __init__(self, problem, params, config, plan):
        super().__init__(problem, params, config, plan)
        self.damping = self.opts["damping"]

    def direction(self, h: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        eye = torch.eye(h.shape[0], dtype=h.dtype, device=h.device)
        damped = h + self.damping * eye
        factor, info = torch.linalg.cholesky_ex(damped)
        if int(info) == 0:
            return -torch.cholesky_solve(g.unsqueeze(1), factor).squeeze(1)
        values, vectors = torch.linalg.eigh(h)
        values = values.abs() + self.damping
        values = values.clamp_min(1e-8 * float(values.max().clamp_min(1e-30)))
        return -vectors @ ((vectors.T @ g) / values)

    def step(self) -> dict[str, float]:
        batch = self.problem.batch(self.next_indices())
        evaluation = self.size(batch)
        if not self.affords((self.w.numel() + 2) * evaluation, evaluations=2):
            raise BudgetSpent
        loss, g = self.problem.loss_and_grad(self.w, batch)
        h = hessian_matrix(self.problem, self.w, batch)
        self.problem.count_curvature(batch, self.w.numel())  # one Hessian-vector product per coordinate
        p = self.direction(h, g)
        step = self.step_size
        if self.opts["line_search"]:
            step, _, _ = backtrack(
                self.problem,
                self.w,
                p,
                batch,
                loss,
                torch.dot(g, p),
                step=step,
                affordable=lambda: self.affords(evaluation, 1),
            )
        self.w = self.w + step * p
        return {"batch_loss": float(loss), "grad_norm": float(g.norm()), "lr": step}
