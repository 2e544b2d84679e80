"""torch.optim's update rules, each declared once and usable in two forms built from the same constants.

- `torch_optimizer(params, lr, momentum, weight_decay)`: the torch.optim optimizer of one run (the
  reference form, what `TorchOptimStrategy` steps);
- `stacked(blocks, momentum, weight_decay)`: the same update applied in place to K runs whose
  parameters are the rows of (K, d_i) column blocks (the batched form the stacked trainer steps), with
  each row's own learning rate, momentum (Adam's beta1) and weight decay as (K, 1) columns.

The stacked kernels follow torch.optim's single-tensor implementations (torch/optim/sgd.py, adam.py,
rmsprop.py, adagrad.py) line by line, so row k moves as torch.optim would move run k alone, up to float
rounding. A first-order strategy picks a rule and its constants; nothing else names an optimizer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def _column(values: list[float], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device).unsqueeze(1)


class UpdateRule:
    """One optimizer update in its two forms; `uses_momentum`: whether the run's momentum knob applies."""

    @property
    def uses_momentum(self) -> bool:
        return False

    state_names: tuple[str, ...] = ()

    def torch_optimizer(
        self, params: list[torch.Tensor], lr: float, momentum: float | None, weight_decay: float
    ) -> torch.optim.Optimizer:
        raise NotImplementedError

    def stacked(self, blocks: list[torch.Tensor], momentum: list[float], weight_decay: list[float]) -> StackedUpdate:
        return StackedUpdate(self, blocks, momentum, weight_decay)

    def update(
        self,
        update: StackedUpdate,
        w: torch.Tensor,
        grad: torch.Tensor,
        state: dict,
        lr: torch.Tensor,
        lr_py: list[float],
    ) -> None:
        """One in-place step of block w (K, d_i) with gradient grad (K, d_i) and learning rates lr (K, 1)."""
        raise NotImplementedError


class StackedUpdate:
    """The batched form's state: K rows of column blocks, per-row hyper-parameters and optimizer state."""

    def __init__(self, rule: UpdateRule, blocks: list[torch.Tensor], momentum: list[float], weight_decay: list[float]):
        self.rule, self.params, self.step_count = rule, blocks, 0
        self.momentum_py = [m or 0.0 for m in momentum]
        self.decay_py = [d or 0.0 for d in weight_decay]
        self.momentum = _column(self.momentum_py, blocks[0])
        self.decay = _column(self.decay_py, blocks[0])
        self.any_decay = any(self.decay_py)
        self.states = [{name: torch.zeros_like(w) for name in rule.state_names} for w in blocks]

    def keep(self, rows: torch.Tensor, rows_py: list[int]) -> None:
        """Keep only the listed rows (the others' runs have finished)."""
        self.params = [w[rows] for w in self.params]
        self.momentum, self.decay = self.momentum[rows], self.decay[rows]
        self.momentum_py = [self.momentum_py[i] for i in rows_py]
        self.decay_py = [self.decay_py[i] for i in rows_py]
        self.any_decay = any(self.decay_py)
        self.states = [{k: v[rows] for k, v in state.items()} for state in self.states]

    def row(self, j: int) -> torch.Tensor:
        """Row j's parameters as one flat vector (a copy)."""
        return torch.cat([w[j] for w in self.params]).detach().clone()

    def step(self, grads: list[torch.Tensor], lr: torch.Tensor, lr_py: list[float]) -> None:
        """One update with gradient blocks (K, d_i) and learning rates lr (K, 1) (lr_py: the same as floats).
        The blocks never require grad (their gradients are computed by hand), so no autograd context is needed."""
        self.step_count += 1
        for w, grad, state in zip(self.params, grads, self.states):
            self.rule.update(self, w, grad, state, lr, lr_py)

    def coupled_decay(self, w: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """L2 weight decay added to the gradient, as torch.optim's `weight_decay` does."""
        return grad.add(w * self.decay) if self.any_decay else grad


@dataclass(frozen=True)
class SGD(UpdateRule):
    """torch.optim.SGD: plain, heavy-ball (`momentum`) or Nesterov; no dampening."""

    momentum: bool = False
    nesterov: bool = False

    @property
    def uses_momentum(self) -> bool:
        return self.momentum

    def torch_optimizer(self, params, lr, momentum, weight_decay):
        return torch.optim.SGD(
            params,
            lr=lr,
            momentum=momentum if self.momentum else 0.0,
            nesterov=self.nesterov,
            weight_decay=weight_decay,
        )

    def update(self, update, w, grad, state, lr, lr_py):
        grad = update.coupled_decay(w, grad)
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.clone()
            else:
                buf.mul_(update.momentum).add_(grad)
            grad = grad.add(buf * update.momentum) if self.nesterov else buf
        w.addcmul_(lr, grad, value=-1)


@dataclass(frozen=True)
class Adam(UpdateRule):
    """torch.optim.Adam (coupled L2 decay) or, with `decoupled`, torch.optim.AdamW; momentum = beta1."""

    beta2: float = 0.999
    eps: float = 1e-8
    decoupled: bool = False

    @property
    def uses_momentum(self) -> bool:
        return True

    state_names = ("exp_avg", "exp_avg_sq")

    def torch_optimizer(self, params, lr, momentum, weight_decay):
        kind = torch.optim.AdamW if self.decoupled else torch.optim.Adam
        return kind(params, lr=lr, betas=(momentum, self.beta2), eps=self.eps, weight_decay=weight_decay)

    def update(self, update, w, grad, state, lr, lr_py):
        t = update.step_count
        if self.decoupled:
            if update.any_decay:
                w.mul_(1 - lr * update.decay)
        else:
            grad = update.coupled_decay(w, grad)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - update.momentum)
        exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        step_size = [rate / (1 - b**t) for rate, b in zip(lr_py, update.momentum_py)]
        bias_correction2_sqrt = (1 - self.beta2**t) ** 0.5
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
        w.sub_(_column(step_size, w) * exp_avg / denom)


@dataclass(frozen=True)
class RMSprop(UpdateRule):
    """torch.optim.RMSprop (not centered), with optional momentum."""

    alpha: float = 0.99
    eps: float = 1e-8

    @property
    def uses_momentum(self) -> bool:
        return True

    state_names = ("square_avg", "momentum_buffer")

    def torch_optimizer(self, params, lr, momentum, weight_decay):
        return torch.optim.RMSprop(
            params, lr=lr, alpha=self.alpha, eps=self.eps, momentum=momentum, weight_decay=weight_decay
        )

    def update(self, update, w, grad, state, lr, lr_py):
        grad = update.coupled_decay(w, grad)
        square_avg, buf = state["square_avg"], state["momentum_buffer"]
        square_avg.mul_(self.alpha).addcmul_(grad, grad, value=1 - self.alpha)
        avg = square_avg.sqrt().add_(self.eps)
        buf.mul_(update.momentum).addcdiv_(grad, avg)  # with momentum 0 this is grad / avg, torch's step
        w.sub_(lr * buf)


@dataclass(frozen=True)
class Adagrad(UpdateRule):
    """torch.optim.Adagrad (no lr decay, zero initial accumulator)."""

    eps: float = 1e-10
    state_names = ("sum",)

    def torch_optimizer(self, params, lr, momentum, weight_decay):
        return torch.optim.Adagrad(params, lr=lr, eps=self.eps, weight_decay=weight_decay)

    def update(self, update, w, grad, state, lr, lr_py):
        grad = update.coupled_decay(w, grad)
        total = state["sum"]
        total.addcmul_(grad, grad, value=1)
        w.sub_(lr * grad / total.sqrt().add_(self.eps))
