"""torch.optim's update rules applied to K stacked parameter vectors, each row with its own hyper-parameters.

Each rule follows the single-tensor implementation in torch/optim (SGD, Adam, AdamW, RMSprop, Adagrad
with their default betas/eps/alpha), with lr, momentum (beta1) and weight decay as (K, 1) columns, so
row k moves exactly as a torch.optim optimizer would move run k alone, up to float rounding.
Learning rates come from a (steps, K) table precomputed with torch's own schedulers (see `lr_table`).
"""

from __future__ import annotations

import torch

from optlab.config import RunConfig
from optlab.strategies.schedules import make_scheduler

# strategy name -> (update rule, uses momentum as SGD momentum / beta1)
RULES = {
    "gd": "sgd", "sgd": "sgd", "minibatch": "sgd", "momentum": "sgd", "nesterov": "sgd",
    "adam": "adam", "adamw": "adamw", "rmsprop": "rmsprop", "adagrad": "adagrad",
}
ADAM_BETA2, ADAM_EPS = 0.999, 1e-8
RMS_ALPHA, RMS_EPS = 0.99, 1e-8
ADAGRAD_EPS = 1e-10


def _column(values, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device).unsqueeze(1)


class StackedOptimizer:
    """The update of one torch.optim rule for K stacked parameter vectors, in place. The parameters are
    a list of (K, d_i) column blocks (like torch.optim's list of tensors), each with its own state."""

    def __init__(self, strategy: str, params: list[torch.Tensor], configs: list[RunConfig]):
        self.rule = RULES[strategy]
        self.strategy = strategy
        self.params = params
        self.step_count = 0
        self.momentum_py = [c.momentum or 0.0 for c in configs]
        self.momentum = _column(self.momentum_py, params[0])
        self.decay_py = [c.weight_decay or 0.0 for c in configs]
        self.decay = _column(self.decay_py, params[0])
        self.any_decay = any(self.decay_py)
        names = {"adam": ("exp_avg", "exp_avg_sq"), "adamw": ("exp_avg", "exp_avg_sq"),
                 "rmsprop": ("square_avg", "buf"), "adagrad": ("sum",)}.get(self.rule, ())
        self.states = [{name: torch.zeros_like(w) for name in names} for w in params]

    def keep(self, rows: torch.Tensor, rows_py: list[int]) -> None:
        """Drop the rows not listed (runs that have finished)."""
        self.params = [w[rows] for w in self.params]
        self.momentum, self.decay = self.momentum[rows], self.decay[rows]
        self.momentum_py = [self.momentum_py[i] for i in rows_py]
        self.decay_py = [self.decay_py[i] for i in rows_py]
        self.any_decay = any(self.decay_py)
        self.states = [{k: v[rows] for k, v in state.items()} for state in self.states]

    def row(self, j: int) -> torch.Tensor:
        """Row j's parameters as one flat vector."""
        return torch.cat([w[j] for w in self.params]).detach().clone()

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor], lr: torch.Tensor, lr_py: list[float]) -> None:
        """One update with gradient blocks (K, d_i) and learning rates lr (K, 1) (lr_py: the same as floats)."""
        self.step_count += 1
        for w, grad, state in zip(self.params, grads, self.states):
            self._update(w, grad, state, lr, lr_py)

    def _update(self, w: torch.Tensor, grad: torch.Tensor, state: dict, lr: torch.Tensor, lr_py: list[float]):
        t = self.step_count
        if self.rule == "adamw" and self.any_decay:
            w.mul_(1 - lr * self.decay)
        elif self.any_decay:
            grad = grad.add(w * self.decay)
        if self.rule == "sgd":
            if self.strategy in ("momentum", "nesterov"):
                buf = state.get("buf")
                if buf is None:
                    buf = state["buf"] = grad.clone()
                else:
                    buf.mul_(self.momentum).add_(grad)
                grad = grad.add(buf * self.momentum) if self.strategy == "nesterov" else buf
            w.addcmul_(lr, grad, value=-1)   # one pass over (K, d), no temporary
        elif self.rule in ("adam", "adamw"):
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            exp_avg.lerp_(grad, 1 - self.momentum)
            exp_avg_sq.mul_(ADAM_BETA2).addcmul_(grad, grad, value=1 - ADAM_BETA2)
            step_size = [l / (1 - b ** t) for l, b in zip(lr_py, self.momentum_py)]
            bias_correction2_sqrt = (1 - ADAM_BETA2 ** t) ** 0.5
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(ADAM_EPS)
            w.sub_(_column(step_size, w) * exp_avg / denom)
        elif self.rule == "rmsprop":
            square_avg, buf = state["square_avg"], state["buf"]
            square_avg.mul_(RMS_ALPHA).addcmul_(grad, grad, value=1 - RMS_ALPHA)
            avg = square_avg.sqrt().add_(RMS_EPS)
            buf.mul_(self.momentum).addcdiv_(grad, avg)
            w.sub_(lr * buf)
        elif self.rule == "adagrad":
            total = state["sum"]
            total.addcmul_(grad, grad, value=1)
            w.sub_(lr * grad / total.sqrt().add_(ADAGRAD_EPS))


def lr_table(configs: list[RunConfig], steps_per_epoch: float, max_steps: int) -> list[list[float]] | None:
    """Per-step learning rates (steps, K) from torch's own schedulers; None when all are constant."""
    if all(c.schedule == "constant" for c in configs):
        return None
    cache: dict[tuple, list[float]] = {}
    columns = []
    for c in configs:
        key = (c.lr, c.schedule, c.decay_rate, c.decay_every)
        if key not in cache:
            dummy = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=c.lr)
            scheduler = make_scheduler(dummy, c, steps_per_epoch, max_steps)
            values = []
            for _ in range(max_steps + 1):
                values.append(dummy.param_groups[0]["lr"])
                if scheduler is not None:
                    dummy.step()
                    scheduler.step()
            cache[key] = values
        columns.append(cache[key])
    return [list(row) for row in zip(*columns)]
