"""The first-order family, each a torch.optim optimizer with its customary defaults."""

from __future__ import annotations

import torch

from optlab.errors import ConfigError
from optlab.strategies.first_order.torch_optim import TorchOptimStrategy
from optlab.strategies.registry import register


def _momentum(config, default):
    return config.momentum if config.momentum is not None else default


def _decay(config, default=0.0):
    return config.weight_decay if config.weight_decay is not None else default


@register
class GradientDescent(TorchOptimStrategy):
    name = "gd"
    description = "full-batch gradient descent: w <- w - lr * grad L(w), the exact average gradient"
    default_lr, default_batch_size = 0.5, None

    @classmethod
    def resolve_batch_size(cls, config, problem):
        if config.batch_size is not None and getattr(problem, "has_accuracy", False) \
                and config.batch_size != problem.n_train:
            raise ConfigError(f"gd is full-batch ({problem.n_train} samples); batch_size {config.batch_size} "
                              f"needs strategy 'minibatch'")
        return super().resolve_batch_size(config, problem)

    def build_optimizer(self, params, lr):
        return torch.optim.SGD(params, lr=lr, weight_decay=_decay(self.config))


@register
class StochasticGradientDescent(TorchOptimStrategy):
    name = "sgd"
    description = "stochastic gradient descent on one sample at a time (batch 1)"
    default_lr, default_batch_size = 0.1, 1

    @classmethod
    def resolve_batch_size(cls, config, problem):
        if config.batch_size not in (None, 1):
            raise ConfigError(f"sgd uses one sample per step; batch_size {config.batch_size} needs strategy 'minibatch'")
        return super().resolve_batch_size(config, problem)

    def build_optimizer(self, params, lr):
        return torch.optim.SGD(params, lr=lr, weight_decay=_decay(self.config))


@register
class MiniBatch(TorchOptimStrategy):
    name = "minibatch"
    description = "mini-batch SGD: the gradient averaged over B shuffled samples (default B=32)"
    default_lr = 0.5

    def build_optimizer(self, params, lr):
        return torch.optim.SGD(params, lr=lr, weight_decay=_decay(self.config))


@register
class Momentum(TorchOptimStrategy):
    name = "momentum"
    description = "mini-batch SGD with heavy-ball momentum (default 0.9)"
    default_lr, default_momentum = 0.1, 0.9

    def build_optimizer(self, params, lr):
        return torch.optim.SGD(params, lr=lr, momentum=_momentum(self.config, 0.9),
                               weight_decay=_decay(self.config))


@register
class Nesterov(TorchOptimStrategy):
    name = "nesterov"
    description = "mini-batch SGD with Nesterov momentum (default 0.9): gradient at the look-ahead point"
    default_lr, default_momentum = 0.1, 0.9

    def build_optimizer(self, params, lr):
        momentum = _momentum(self.config, 0.9)
        if momentum <= 0:
            raise ConfigError(f"nesterov needs momentum > 0, got {momentum!r}")
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True,
                               weight_decay=_decay(self.config))


@register
class Adam(TorchOptimStrategy):
    name = "adam"
    description = "Adam: per-coordinate steps from running first and second gradient moments (momentum = beta1)"
    default_lr, default_momentum = 0.01, 0.9

    def build_optimizer(self, params, lr):
        beta1 = _momentum(self.config, 0.9)
        return torch.optim.Adam(params, lr=lr, betas=(beta1, 0.999), weight_decay=_decay(self.config))


@register
class AdamW(TorchOptimStrategy):
    name = "adamw"
    description = "AdamW: Adam with decoupled weight decay (default 0.01)"
    default_lr, default_momentum, default_weight_decay = 0.01, 0.9, 0.01

    def build_optimizer(self, params, lr):
        beta1 = _momentum(self.config, 0.9)
        return torch.optim.AdamW(params, lr=lr, betas=(beta1, 0.999), weight_decay=_decay(self.config, 0.01))


@register
class RMSprop(TorchOptimStrategy):
    name = "rmsprop"
    description = "RMSprop: steps scaled by a running RMS of the gradient"
    default_lr, default_momentum = 0.003, 0.0

    def build_optimizer(self, params, lr):
        return torch.optim.RMSprop(params, lr=lr, momentum=_momentum(self.config, 0.0),
                                   weight_decay=_decay(self.config))


@register
class Adagrad(TorchOptimStrategy):
    name = "adagrad"
    description = "Adagrad: steps scaled by the accumulated squared gradient"
    default_lr = 0.05

    def build_optimizer(self, params, lr):
        return torch.optim.Adagrad(params, lr=lr, weight_decay=_decay(self.config))
