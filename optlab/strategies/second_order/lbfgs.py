"""L-BFGS (torch.optim.LBFGS) with the strong-Wolfe line search, full batch or large mini-batches.

Every closure call is one counted loss-and-gradient evaluation, line-search evaluations included.
torch's LBFGS re-evaluates the loss at the start of each `step()`, at the point the previous line
search already evaluated; a one-entry cache keyed on the exact point and batch serves that call,
so a full-batch run pays for each distinct evaluation once. With mini-batches the curvature pairs
mix two batches at each step boundary (the usual caveat of stochastic L-BFGS): use large batches.
"""

from __future__ import annotations

import torch

from optlab.strategies.base import Option
from optlab.strategies.registry import register
from optlab.strategies.second_order.common import SecondOrderStrategy


@register
class LBFGS(SecondOrderStrategy):
    name = "lbfgs"
    description = "L-BFGS (torch.optim.LBFGS) with strong-Wolfe line search; full batch by default"
    options = {
        "history_size": Option(int, 20, "curvature pairs kept", at_least=1, at_most=10_000),
        "iterations_per_step": Option(
            int, 1, "L-BFGS iterations on each batch (one engine step)", at_least=1, at_most=10_000
        ),
        "max_line_search": Option(int, 25, "function evaluations allowed per line search", at_least=1, at_most=10_000),
    }

    def __init__(self, problem, params, config, plan):
        super().__init__(problem, params, config, plan)
        self.w.requires_grad_(False)
        self.optimizer = torch.optim.LBFGS(
            [self.w],
            lr=self.step_size,
            max_iter=self.opts["iterations_per_step"],
            # torch caps each line search at max_eval minus the evaluations already made in step()
            max_eval=1 + self.opts["iterations_per_step"] * self.opts["max_line_search"],
            history_size=self.opts["history_size"],
            line_search_fn="strong_wolfe",
        )
        self._cache = None  # (indices, point, loss, grad) of the last evaluation

    def step(self) -> dict[str, float]:
        indices = self.next_indices()
        batch = self.problem.batch(indices)
        observed: dict[str, float] = {}

        def closure():
            cached = self._cache
            if cached is not None and _same(cached[0], indices) and torch.equal(cached[1], self.w):
                loss, grad = cached[2], cached[3]
            else:
                loss, grad = self.problem.loss_and_grad(self.w, batch)
                self._cache = (indices, self.w.detach().clone(), loss, grad)
            if "batch_loss" not in observed:
                observed.update(batch_loss=float(loss), grad_norm=float(grad.norm()))
            self.w.grad = grad.clone()
            return loss

        self.optimizer.step(closure)
        state = self.optimizer.state[self.w]
        observed["lr"] = float(state.get("t", self.step_size))
        return observed


def _same(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))
