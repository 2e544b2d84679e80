"""The submission side of the API: a Strategy turns access to L(w) into a sequence of points.

A strategy is built from a problem, an initial flat parameter vector, the run config and a Plan,
and exposes `step()` (one iteration, returning what it observed) and `params()` (its current
recommendation). It touches the objective only through the problem's counted calls, so function
evaluations, gradients and curvature products are accounted for identically across families.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch

from optlab.config import RunConfig
from optlab.errors import ConfigError
from optlab.problem.problem import Problem


@dataclass(frozen=True)
class Option:
    """A strategy-specific knob, declared once: its type, default, one-line meaning (shown by
    `optlab strategies`), allowed `choices`, and bounds. Floats must be finite unless `finite=False`.
    `check` is the only place an option value is validated."""

    type: type
    default: object
    help: str
    choices: tuple = ()
    greater_than: float | None = None
    at_least: float | None = None
    less_than: float | None = None
    at_most: float | None = None
    finite: bool = True

    def check(self, key: str, value, strategy: str):
        """`value` in the option's type, or a one-line ConfigError naming the option and the value."""
        where = f"option {key} of {strategy!r}"
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.type) or (isinstance(value, bool) and self.type is not bool):
            raise ConfigError(f"{where} must be {_TYPE_NAMES.get(self.type, self.type.__name__)}, got {value!r}")
        if self.choices and value not in self.choices:
            raise ConfigError(f"{where} must be one of {', '.join(map(str, self.choices))}, got {value!r}")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return value  # bounds and finiteness are the numbers' (only numeric options declare bounds)
        if self.type is float and self.finite and not math.isfinite(value):
            raise ConfigError(f"{where} must be finite, got {value!r}")
        inside = (
            (self.greater_than is None or value > self.greater_than)
            and (self.at_least is None or value >= self.at_least)
            and (self.less_than is None or value < self.less_than)
            and (self.at_most is None or value <= self.at_most)
        )
        if not inside:
            raise ConfigError(f"{where} must be {self.describe_bounds()}, got {value!r}")
        return value

    def describe_bounds(self) -> str:
        parts = [
            f"{sign} {bound:g}"
            for sign, bound in (
                (">", self.greater_than),
                (">=", self.at_least),
                ("<", self.less_than),
                ("<=", self.at_most),
            )
            if bound is not None
        ]
        return " and ".join(parts)

    def describe(self) -> str:
        """What values it takes, e.g. `float > 0` or `full|batch` (for `optlab strategies`)."""
        kind = "|".join(map(str, self.choices)) if self.choices else self.type.__name__
        bounds = self.describe_bounds()
        return f"{kind} {bounds}" if bounds else kind


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
# the shared knobs of RunConfig that only some strategies use; the others refuse them
KNOBS = ("momentum", "weight_decay")


@dataclass(frozen=True)
class Plan:
    """What the engine worked out before the run: batch size, steps per epoch, planned steps."""

    batch_size: int | None  # None when the strategy uses the whole training set per step
    steps_per_epoch: float
    max_steps: int | None  # None when only a wall-clock budget bounds the run


class Allowance(Protocol):
    def __call__(self, samples: int, evaluations: int) -> bool: ...


class BudgetSpent(Exception):
    """Raised by a strategy's step that cannot afford even its first piece of work: the run's budget is
    used up before the step, which is then neither taken nor counted."""


class Strategy:
    name: ClassVar[str]
    description: ClassVar[str]
    family: ClassVar[str]  # "first-order", "second-order", "zeroth-order"
    default_lr: ClassVar[float | None] = None
    default_batch_size: ClassVar[int | None] = 32  # None = full batch
    default_momentum: ClassVar[float | None] = None
    default_weight_decay: ClassVar[float | None] = None
    options: ClassVar[dict[str, Option]] = {}
    uses: ClassVar[frozenset[str]] = frozenset()  # which of KNOBS it applies; any other given is refused

    def __init__(self, problem: Problem, params: torch.Tensor, config: RunConfig, plan: Plan):
        self.problem, self.config, self.plan = problem, config, plan
        self.opts = self.resolve_options(config)
        self.allowance: Allowance | None = None  # set by the engine: what is left of the run's budget

    def affords(self, samples: int, evaluations: int = 0) -> bool:
        """Whether work on `samples` more training samples (`evaluations` of them loss values) fits in the
        run's budget. A strategy whose step does a variable amount of work (CG iterations, line searches)
        asks before each piece, so a step is cut short rather than run past the budget."""
        return self.allowance is None or self.allowance(samples, evaluations)

    # ---- validation, and the facts the engine plans from (class level: errors come before any run) ----
    @classmethod
    def knobs(cls) -> frozenset[str]:
        """The shared knobs (momentum, weight decay) this strategy applies."""
        return cls.uses

    @classmethod
    def batched_rule(cls):
        """The update rule of this strategy's batched form (K runs stepped as one stacked program), or
        None when it has none. Only a strategy whose step is an exact mini-batch gradient followed by
        one update of a `first_order.rules` rule has one (see TorchOptimStrategy)."""
        return None

    @classmethod
    def validate(cls, config: RunConfig, problem: Problem) -> None:
        """The validation phase: options (type, choices, bounds), knobs the strategy does not use, then
        the strategy's own feasibility checks. Each refusal is one ConfigError naming key and value."""
        cls.resolve_options(config)
        for knob in KNOBS:
            value = getattr(config, knob)
            if value is not None and knob not in cls.knobs():
                users = ", ".join(sorted(_users(knob))) or "none"
                raise ConfigError(
                    f"{config.strategy} does not use {knob} (got {value!r}); it is refused rather than "
                    f"recorded as if it applied (strategies using {knob}: {users})"
                )
        cls.check(config, problem)

    @classmethod
    def resolve_options(cls, config: RunConfig) -> dict:
        """Every option of the strategy with its value (given or default), each checked by its Option."""
        unknown = set(config.options) - set(cls.options)
        if unknown:
            known = ", ".join(cls.options) or "none"
            raise ConfigError(f"strategy {config.strategy!r} has no option {sorted(unknown)[0]!r} (options: {known})")
        resolved = {}
        for key, option in cls.options.items():
            value = config.options.get(key, option.default)
            resolved[key] = (
                value if value is None and option.default is None else option.check(key, value, config.strategy)
            )
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
            raise ConfigError(
                f"batch_size {size} is larger than the training set ({problem.n_train} samples of {problem.name})"
            )
        return None if size == problem.n_train else size

    @classmethod
    def samples_per_step(cls, config: RunConfig, batch_size: int | None, problem: Problem) -> float:
        return batch_size if batch_size is not None else problem.n_train

    @classmethod
    def evaluations_per_step(cls, config: RunConfig) -> float:
        return 1.0

    @classmethod
    def whole_step_evaluations(cls, config: RunConfig, problem: Problem) -> int | None:
        """Function evaluations one step costs when an evaluation budget buys whole steps only (a
        finite-difference gradient is 2d evaluations; half of one is no step at all); None: the budget
        is `evaluations / evaluations_per_step` steps, rounded up."""
        return None

    @classmethod
    def check(cls, config: RunConfig, problem: Problem) -> None:
        """Refuse infeasible settings before the run starts (override where needed)."""

    @classmethod
    def check_plan(cls, config: RunConfig, problem: Problem, plan: Plan) -> None:
        """Refuse settings that are infeasible under the engine's plan (override where needed)."""

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
        batch = (
            plan.batch_size
            if plan.batch_size is not None
            else (problem.n_train if getattr(problem, "has_accuracy", False) else None)
        )
        used = cls.knobs()
        return config.with_updates(
            lr=pick(config.lr, cls.default_lr),
            momentum=pick(config.momentum, cls.default_momentum) if "momentum" in used else None,
            weight_decay=pick(config.weight_decay, cls.default_weight_decay) if "weight_decay" in used else None,
            batch_size=batch,
            options=cls.resolve_options(config),
        )

    @classmethod
    def summary(cls) -> str:
        return cls.description


def _users(knob: str) -> list[str]:
    """Names of the registered strategies that apply `knob` (for the refusal message)."""
    from optlab.strategies import registry  # the registry imports strategy modules, which import this one

    return [cls.name for cls in registry.available() if knob in cls.knobs()]
