"""The submission side of the API: a Strategy turns access to L(w) into a sequence of points.

A strategy is built from a problem, an initial flat parameter vector, the run config and a Plan,
and exposes `step()` (one iteration, returning what it observed) and `params()` (its current
recommendation). It touches the objective only through the problem's counted calls, so function
evaluations, gradients and curvature products are accounted for identically across families.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from optlab.config import RunConfig
from optlab.errors import ConfigError
from optlab.problem.problem import Problem


@dataclass(frozen=True)
class Option:
    """A strategy-specific knob: type, default, and a one-line meaning (shown by `optlab strategies`)."""
    type: type
    default: object
    help: str


@dataclass(frozen=True)
class Plan:
    """What the engine worked out before the run: batch size, steps per epoch, planned steps."""
    batch_size: int | None       # None when the strategy uses the whole training set per step
    steps_per_epoch: float
    max_steps: int | None        # None when only a wall-clock budget bounds the run


class Strategy:
    name: ClassVar[str]
    description: ClassVar[str]
    family: ClassVar[str]                      # "first-order", "second-order", "zeroth-order"
    default_lr: ClassVar[float | None] = None
    default_batch_size: ClassVar[int | None] = 32   # None = full batch
    default_momentum: ClassVar[float | None] = None
    default_weight_decay: ClassVar[float | None] = None
    options: ClassVar[dict[str, Option]] = {}

    def __init__(self, problem: Problem, params: torch.Tensor, config: RunConfig, plan: Plan):
        self.problem, self.config, self.plan = problem, config, plan
        self.opts = self.resolve_options(config)

    # ---- planning (class level, so errors come before any run exists) ---------------------
    @classmethod
    def resolve_options(cls, config: RunConfig) -> dict:
        unknown = set(config.options) - set(cls.options)
        if unknown:
            known = ", ".join(cls.options) or "none"
            raise ConfigError(f"strategy {config.strategy!r} has no option {sorted(unknown)[0]!r} (options: {known})")
        resolved = {}
        for key, option in cls.options.items():
            value = config.options.get(key, option.default)
            if value is not None and option.type is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if value is not None and not isinstance(value, option.type) or isinstance(value, bool) and option.type is not bool:
                raise ConfigError(f"option {key} of {config.strategy!r} must be {option.type.__name__}, got {value!r}")
            resolved[key] = value
        return resolved

    @classmethod
    def resolve_batch_size(cls, config: RunConfig, problem: Problem) -> int | None:
        """The batch size this run uses (None = full batch), or a ConfigError naming the bad value."""
        if not getattr(problem, "has_accuracy", False):
            return None  # test functions have no data
        size = config.batch_size if config.batch_size is not None else cls.default_batch_size
        if size is None:
            return None
        if size > problem.n_train:
            raise ConfigError(f"batch_size {size} is larger than the training set "
                              f"({problem.n_train} samples of {problem.name})")
        return None if size == problem.n_train else size

    @classmethod
    def samples_per_step(cls, config: RunConfig, batch_size: int | None, problem: Problem) -> float:
        return batch_size if batch_size is not None else problem.n_train

    @classmethod
    def evaluations_per_step(cls, config: RunConfig) -> float:
        return 1.0

    @classmethod
    def check(cls, config: RunConfig, problem: Problem) -> None:
        """Refuse infeasible settings before the run starts (override where needed)."""

    @classmethod
    def plan(cls, config: RunConfig, problem: Problem) -> Plan:
        cls.resolve_options(config)
        cls.check(config, problem)
        batch_size = cls.resolve_batch_size(config, problem)
        per_step = cls.samples_per_step(config, batch_size, problem)
        # a partial last batch still takes a step, so an epoch of mini-batches is ceil(n / B) steps
        steps_per_epoch = math.ceil(problem.n_train / per_step) if per_step <= problem.n_train \
            else problem.n_train / per_step
        if not getattr(problem, "has_accuracy", False):
            steps_per_epoch = 1.0
        limits = []
        budget = config.budget
        if "steps" in budget:
            limits.append(int(budget["steps"]))
        if "epochs" in budget:
            limits.append(math.ceil(budget["epochs"] * steps_per_epoch))
        if "evaluations" in budget:
            limits.append(math.ceil(budget["evaluations"] / cls.evaluations_per_step(config)))
        return Plan(batch_size, steps_per_epoch, min(limits) if limits else None)

    # ---- running ----------------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        """One iteration. Returns at least `batch_loss`; `grad_norm` and `lr` where they exist."""
        raise NotImplementedError

    def params(self) -> torch.Tensor:
        """The current recommendation (detached)."""
        raise NotImplementedError

    @property
    def lr(self) -> float | None:
        return None

    @classmethod
    def effective_lr(cls, config: RunConfig) -> float | None:
        return config.lr if config.lr is not None else cls.default_lr

    @classmethod
    def resolve_config(cls, config: RunConfig, plan: Plan, problem: Problem) -> RunConfig:
        """The config with the strategy's defaults filled in: what a tracked run records."""
        pick = lambda given, default: given if given is not None else default
        batch = plan.batch_size if plan.batch_size is not None else (
            problem.n_train if getattr(problem, "has_accuracy", False) else None)
        return config.with_updates(
            lr=pick(config.lr, cls.default_lr), momentum=pick(config.momentum, cls.default_momentum),
            weight_decay=pick(config.weight_decay, cls.default_weight_decay), batch_size=batch,
            options=cls.resolve_options(config))

    @classmethod
    def summary(cls) -> str:
        return cls.description
