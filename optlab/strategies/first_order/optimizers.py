"""The first-order family: each strategy is one torch.optim update rule with its customary defaults.

The rule (first_order/rules.py) gives both the torch.optim optimizer of a run alone and the batched
form that trains many runs as one stacked program, from the same constants. Which shared knobs a
strategy applies follows from its rule: gd, sgd, minibatch and adagrad do not use momentum and refuse
it; every rule here applies weight decay (AdamW decoupled, the others as L2 added to the gradient).
"""

from __future__ import annotations

from optlab.errors import ConfigError
from optlab.strategies.first_order import rules
from optlab.strategies.first_order.torch_optim import TorchOptimStrategy
from optlab.strategies.registry import register


@register
class GradientDescent(TorchOptimStrategy):
    name = "gd"
    description = "full-batch gradient descent: w <- w - lr * grad L(w), the exact average gradient"
    default_lr, default_batch_size = 0.5, None
    rule = rules.SGD()

    @classmethod
    def resolve_batch_size(cls, config, problem):
        if (
            config.batch_size is not None
            and getattr(problem, "has_accuracy", False)
            and config.batch_size != problem.n_train
        ):
            raise ConfigError(
                f"gd is full-batch ({problem.n_train} samples); batch_size {config.batch_size} "
                f"needs strategy 'minibatch'"
            )
        return super().resolve_batch_size(config, problem)


@register
class StochasticGradientDescent(TorchOptimStrategy):
    name = "sgd"
    description = "stochastic gradient descent on one sample at a time (batch 1)"
    default_lr, default_batch_size = 0.1, 1
    rule = rules.SGD()

    @classmethod
    def resolve_batch_size(cls, config, problem):
        if config.batch_size not in (None, 1):
            raise ConfigError(
                f"sgd uses one sample per step; batch_size {config.batch_size} needs strategy 'minibatch'"
            )
        return super().resolve_batch_size(config, problem)


@register
class MiniBatch(TorchOptimStrategy):
    name = "minibatch"
    description = "mini-batch SGD: the gradient averaged over B shuffled samples (default B=32)"
    default_lr = 0.5
    rule = rules.SGD()


@register
class Momentum(TorchOptimStrategy):
    name = "momentum"
    description = "mini-batch SGD with heavy-ball momentum (default 0.9)"
    default_lr, default_momentum = 0.1, 0.9
    rule = rules.SGD(momentum=True)


@register
class Nesterov(TorchOptimStrategy):
    name = "nesterov"
    description = "mini-batch SGD with Nesterov momentum (default 0.9): gradient at the look-ahead point"
    default_lr, default_momentum = 0.1, 0.9
    rule = rules.SGD(momentum=True, nesterov=True)

    @classmethod
    def check(cls, config, problem):
        if config.momentum is not None and config.momentum <= 0:
            raise ConfigError(
                f"nesterov needs momentum > 0, got {config.momentum!r} (with 0 it is strategy 'minibatch')"
            )


@register
class Adam(TorchOptimStrategy):
    name = "adam"
    description = "Adam: per-coordinate steps from running first and second gradient moments (momentum = beta1)"
    default_lr, default_momentum = 0.01, 0.9
    rule = rules.Adam(beta2=0.999, eps=1e-8)


@register
class AdamW(TorchOptimStrategy):
    name = "adamw"
    description = "AdamW: Adam with decoupled weight decay (default 0.01)"
    default_lr, default_momentum, default_weight_decay = 0.01, 0.9, 0.01
    rule = rules.Adam(beta2=0.999, eps=1e-8, decoupled=True)


@register
class RMSprop(TorchOptimStrategy):
    name = "rmsprop"
    description = "RMSprop: steps scaled by a running RMS of the gradient"
    default_lr, default_momentum = 0.003, 0.0
    rule = rules.RMSprop(alpha=0.99, eps=1e-8)


@register
class Adagrad(TorchOptimStrategy):
    name = "adagrad"
    description = "Adagrad: steps scaled by the accumulated squared gradient"
    default_lr = 0.05
    rule = rules.Adagrad(eps=1e-10)
