"""Hessian-free optimization (Martens 2010): truncated CG on a damped curvature model each step.

Each step: gradient on the batch; curvature products (Gauss-Newton by default, or the Hessian) on a
`curvature_batch`-sample subset of it; CG on (B + lambda I) p = -g started from the previous
solution times `cg_decay`; Armijo backtracking along p; Levenberg-Marquardt damping adapted by the
reduction ratio rho = (L(w + p) - L(w)) / q(p): lambda *= 2/3 when rho > 3/4, *= 3/2 when rho < 1/4.
"""

from __future__ import annotations

import torch

from optlab.errors import ConfigError
from optlab.strategies.base import BudgetSpent, Option
from optlab.strategies.registry import register
from optlab.strategies.second_order.common import SecondOrderStrategy, backtrack
from optlab.strategies.second_order.curvature import conjugate_gradient, counted, make_operator

CURVATURES = ("auto", "gauss_newton", "hessian")


@register
class NewtonCG(SecondOrderStrategy):
    name = "newton_cg"
    description = (
        "Hessian-free Newton-CG (Martens 2010): truncated CG on Gauss-Newton or Hessian products, "
        "Levenberg-Marquardt damping"
    )
    options = {
        "curvature": Option(
            str, "auto", "gauss_newton | hessian | auto (Gauss-Newton on networks, else Hessian)", choices=CURVATURES
        ),
        "damping": Option(float, 0.1, "initial Levenberg-Marquardt damping lambda", greater_than=0),
        "cg_iters": Option(int, 20, "maximum CG iterations (curvature products) per step", at_least=1, at_most=100_000),
        "cg_tol": Option(float, 1e-4, "stop CG at this residual relative to the gradient", greater_than=0),
        "cg_decay": Option(
            float, 0.95, "CG starts from this times the previous step's solution (0: from 0)", at_least=0, less_than=1
        ),
        "curvature_batch": Option(int, 500, "samples of the gradient batch used for curvature products", at_least=1),
        "min_damping": Option(float, 1e-6, "lower bound on lambda", greater_than=0),
    }

    @classmethod
    def check(cls, config, problem):
        opts = cls.resolve_options(config)
        if opts["curvature"] == "gauss_newton" and getattr(problem, "network", None) is None:
            raise ConfigError(
                f"newton_cg curvature 'gauss_newton' needs a network, {problem.name!r} has none; "
                f"use -o curvature=hessian"
            )

    @classmethod
    def samples_per_step(cls, config, batch_size, problem):
        # gradient + one line-search evaluation + at least one product; CG usually does more, and the
        # engine's sample budget stops the run exactly, so this lower estimate only sets the step cap
        batch = batch_size or problem.n_train
        return 2 * batch + min(cls.resolve_options(config)["curvature_batch"], batch)

    def __init__(self, problem, params, config, plan):
        super().__init__(problem, params, config, plan)
        kind = self.opts["curvature"]
        self.kind = kind if kind != "auto" else ("gauss_newton" if getattr(problem, "network", None) else "hessian")
        self.damping = self.opts["damping"]
        self.previous = torch.zeros_like(self.w)

    def step(self) -> dict[str, float]:
        indices = self.next_indices()
        batch = self.problem.batch(indices)
        curvature_batch = self.problem.batch(self.subset(indices, self.opts["curvature_batch"]))
        evaluation, product = self.size(batch), self.size(curvature_batch)
        # the least useful step: its gradient, one curvature product and one trial of the line search
        if not self.affords(2 * evaluation + product, evaluations=2):
            raise BudgetSpent
        loss, g = self.problem.loss_and_grad(self.w, batch)
        # each further product must leave room for the line search's first trial
        more_products = lambda: self.affords(product + evaluation, evaluations=1)
        operator = counted(
            self.problem, curvature_batch, make_operator(self.kind, self.problem, self.w, curvature_batch)
        )
        damping = self.damping
        damped = lambda v: operator(v) + damping * v
        p, model_decrease, products = conjugate_gradient(
            damped,
            -g,
            x0=self.opts["cg_decay"] * self.previous,
            max_iters=self.opts["cg_iters"],
            tol=self.opts["cg_tol"],
            affordable=more_products,
        )
        slope = torch.dot(g, p)
        if slope >= 0:  # not a descent direction (only possible off the Gauss-Newton model): restart CG
            p, model_decrease, more = conjugate_gradient(
                damped, -g, max_iters=self.opts["cg_iters"], tol=self.opts["cg_tol"], affordable=more_products
            )
            products += more
            slope = torch.dot(g, p)
        alpha = self.step_size
        step, _, full_loss = backtrack(
            self.problem, self.w, alpha * p, batch, loss, alpha * slope, affordable=lambda: self.affords(evaluation, 1)
        )
        # rho: actual change at the full step over the damped model's, q(a p) = a g.p + a^2 (phi - g.p)
        predicted = alpha * float(slope) + alpha**2 * (model_decrease - float(slope))
        rho = (full_loss - float(loss)) / predicted if predicted < 0 else -1.0
        if rho > 0.75:
            self.damping = max(self.damping * 2 / 3, self.opts["min_damping"])
        elif rho < 0.25:
            self.damping = self.damping * 1.5
        if step > 0:
            self.w = self.w + step * self.step_size * p
            self.previous = p
        else:
            self.previous = torch.zeros_like(p)
        return {
            "batch_loss": float(loss),
            "grad_norm": float(g.norm()),
            "lr": step * self.step_size,
            "damping": damping,
            "cg_products": products,
            "reduction_ratio": rho,
        }
