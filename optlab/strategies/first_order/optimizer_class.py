"""Any `torch.optim.Optimizer` subclass as a strategy: the user's own (`file.py:Class`), `po:NAME`, `torch.optim:SGD`.

The class's constructor is the strategy's declaration. Its signature gives the options (`-o key=value`,
each checked against the parameter's annotation and default) and says which of the shared knobs apply:
`lr`, `momentum` (passed as `momentum`, or as `betas[0]` for Adam-like constructors) and `weight_decay`
are passed where the constructor takes them and refused where it does not.

The optimizer steps real tensors, one per layer (weight matrices as matrices, biases as vectors), so
optimizers that look at shapes (Shampoo, SOAP, Muon, LAMB's per-layer trust ratio) see the network's
layers. Each step computes the mini-batch gradient once through the problem's counted interface and
passes a closure that returns it; an optimizer that calls the closure again at other parameters (L-BFGS's
line search, SAM's perturbed point) gets a fresh counted gradient on the same batch. Schedule-Free
optimizers (with `train()` and `eval()`) are evaluated at their averaged point. An optimizer that
raises, or leaves a non-finite parameter, ends the run FAILED with the reason.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from dataclasses import dataclass
from typing import ClassVar

import torch

from optlab.errors import ConfigError
from optlab.strategies.base import Strategy
from optlab.strategies.schedules import make_scheduler

KNOB_PARAMETERS = ("params", "lr", "momentum", "weight_decay")
_REQUIRED = "required"
_KINDS = {bool: "bool", int: "int", float: "float", str: "str"}
_KIND_NAMES = {
    "bool": "true or false",
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "tuple": "a list of numbers",
    "any": "any value",
}


@dataclass(frozen=True)
class ConstructorOption:
    """One constructor parameter as an option: the same interface as base.Option (default, help,
    check, describe), its kind read from the parameter's annotation, else from its default."""

    default: object
    help: str
    kind: str  # bool | int | float | str | tuple | any
    nullable: bool = False
    choices: tuple = ()

    def check(self, key: str, value, strategy: str):
        where = f"option {key} of {strategy!r}"
        if value is _REQUIRED_VALUE:
            raise ConfigError(f"{where} is required (the constructor has no default); give -o {key}=VALUE")
        if value is None and (self.nullable or self.default is None):
            return None
        wrong = ConfigError(f"{where} must be {self.describe()}, got {value!r}")
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise wrong
        elif self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise wrong
        elif self.kind == "float":
            if isinstance(value, str) and value.strip().lower() in ("inf", "+inf", "-inf"):
                value = float(value)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
                raise wrong
            value = float(value)
        elif self.kind == "str":
            if not isinstance(value, str):
                raise wrong
        elif self.kind == "tuple":
            if not isinstance(value, (list, tuple)) or any(
                isinstance(v, bool) or not isinstance(v, (int, float)) for v in value
            ):
                raise wrong
            value = tuple(value)
        if self.choices and value not in self.choices:
            raise ConfigError(f"{where} must be one of {', '.join(map(str, self.choices))}, got {value!r}")
        return value

    def describe(self) -> str:
        kind = "|".join(map(str, self.choices)) if self.choices else _KIND_NAMES[self.kind]
        return f"{kind} or null" if self.nullable and self.kind != "any" else kind


class _Required:
    def __repr__(self) -> str:
        return _REQUIRED


_REQUIRED_VALUE = _Required()


def _kind(annotation, default) -> tuple[str, bool, tuple]:
    """(kind, nullable, choices) of a constructor parameter."""
    members = (
        typing.get_args(annotation)
        if typing.get_origin(annotation) in (typing.Union, types.UnionType)
        else (annotation,)
    )
    nullable = type(None) in members or default is None
    choices = ()
    kinds = []
    for member in members:
        if typing.get_origin(member) is typing.Literal:
            choices += typing.get_args(member)
            kinds.append("str")
        elif member in _KINDS:
            kinds.append(_KINDS[member])
        elif typing.get_origin(member) in (tuple, list) or member in (tuple, list):
            kinds.append("tuple")
    for kind in ("float", "int", "bool", "str", "tuple"):  # float | int takes both: a float
        if kind in kinds:
            return kind, nullable, choices
    if isinstance(default, bool):
        return "bool", nullable, choices
    if isinstance(default, (int, float)):
        return ("float" if isinstance(default, float) else "int"), nullable, choices
    if isinstance(default, str):
        return "str", nullable, choices
    if isinstance(default, (tuple, list)) and all(isinstance(v, (int, float)) for v in default):
        return "tuple", nullable, choices
    return "any", nullable, choices


def _signature(cls: type[object]) -> dict[str, inspect.Parameter]:
    try:
        signature = inspect.signature(cls.__init__, eval_str=True)
    except Exception:  # annotations that do not evaluate here: read them as written
        signature = inspect.signature(cls.__init__)
    return {
        name: p
        for name, p in list(signature.parameters.items())[1:]
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }


def constructor_options(cls: type) -> dict[str, ConstructorOption]:
    """The constructor's parameters other than params and the shared knobs, as options."""
    options = {}
    for name, p in _signature(cls).items():
        if name in KNOB_PARAMETERS:
            continue
        default = _REQUIRED_VALUE if p.default is inspect.Parameter.empty else p.default
        kind, nullable, choices = _kind(p.annotation, None if default is _REQUIRED_VALUE else default)
        if default is not _REQUIRED_VALUE and default is not None and kind != "any":
            try:  # an int default of a float parameter (torch's `momentum=0`) is shown as the float
                default = ConstructorOption(default, "", kind, nullable, choices).check(name, default, cls.__name__)
            except ConfigError:
                kind = "any"
        where = f"{cls.__name__}'s constructor argument {name}"
        options[name] = ConstructorOption(default, where, kind, nullable, choices)
    return options


class OptimizerClassStrategy(Strategy):
    """A strategy stepping one torch.optim.Optimizer class (set on the subclasses `strategy_class` makes)."""

    family = "first-order"
    optimizer_class: ClassVar[type]
    momentum_parameter: ClassVar[str | None] = None  # "momentum", "betas" or None
    takes_lr: ClassVar[bool] = True
    refusal: ClassVar[str | None] = None  # why this optimizer cannot run here (checked at planning)

    # ---- the class, from the optimizer's constructor -----------------------------------------
    @classmethod
    def knobs(cls) -> frozenset[str]:
        parameters = _signature(cls.optimizer_class)
        return frozenset(
            ({"momentum"} if cls.momentum_parameter else set())
            | ({"weight_decay"} if "weight_decay" in parameters else set())
        )

    @classmethod
    def param_groups(cls, tensors: list[torch.Tensor]) -> list[dict] | None:
        """Parameter groups the optimizer needs (None: one group of every tensor). See `groups_by_flag`."""
        return None

    @classmethod
    def validate(cls, config, problem):
        if cls.refusal:
            raise ConfigError(f"{config.strategy} cannot run here: {cls.refusal}")
        if config.lr is not None and not cls.takes_lr:
            raise ConfigError(
                f"{config.strategy} takes no lr (got {config.lr!r}): its constructor has no lr "
                f"parameter; it is refused rather than recorded as if it applied"
            )
        if config.lr is None and cls.takes_lr and cls.default_lr is None:
            raise ConfigError(
                f"{config.strategy} needs a learning rate (its constructor's lr has no default): give --lr"
            )
        if config.schedule != "constant" and not cls.takes_lr:
            raise ConfigError(f"{config.strategy} has no learning rate to schedule (schedule {config.schedule!r})")
        betas = config.options.get("betas")
        if (
            cls.momentum_parameter == "betas"
            and config.momentum is not None
            and isinstance(betas, (list, tuple))
            and betas
            and betas[0] != config.momentum
        ):
            raise ConfigError(
                f"{config.strategy}: momentum {config.momentum!r} is betas[0], but -o betas={list(betas)} "
                f"says {betas[0]!r}; give one of them"
            )
        super().validate(config, problem)
        cls.build(
            parameter_tensors(torch.zeros(problem.n_params), parameter_shapes(problem)),
            config,
            cls.resolve_options(config),
            trial=True,
        )

    @classmethod
    def build(cls, tensors: list[torch.Tensor], config, opts: dict, trial: bool = False) -> torch.optim.Optimizer:
        """The optimizer on `tensors`. At validation (`trial`, on zeros of the problem's shapes) whatever its
        constructor raises (a value it refuses, a missing dependency) is a one-line ConfigError."""
        groups = cls.param_groups(tensors)
        try:
            optimizer = cls.optimizer_class(groups if groups is not None else tensors, **cls.arguments(config, opts))
        except Exception as exc:
            if not trial:
                raise
            raise ConfigError(
                f"{config.strategy}: its constructor refused the settings: {type(exc).__name__}: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            ) from None
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ConfigError(
                f"{config.strategy}: {cls.optimizer_class.__name__}(...) did not make a torch.optim.Optimizer"
            )
        return optimizer

    @classmethod
    def arguments(cls, config, opts: dict) -> dict:
        """The constructor's keyword arguments: the options, then the knobs it takes."""
        kwargs = dict(opts)
        if cls.takes_lr:
            kwargs["lr"] = cls.effective_lr(config)
        momentum = config.momentum if config.momentum is not None else cls.default_momentum
        if cls.momentum_parameter == "momentum" and momentum is not None:
            kwargs["momentum"] = momentum
        elif cls.momentum_parameter == "betas" and config.momentum is not None:
            kwargs["betas"] = (config.momentum, *tuple(kwargs["betas"])[1:])
        if "weight_decay" in cls.knobs():
            decay = config.weight_decay if config.weight_decay is not None else cls.default_weight_decay
            if decay is not None:
                kwargs["weight_decay"] = decay
        return kwargs

    # ---- running ----------------------------------------------------------------------------
    def __init__(self, problem, params, config, plan):
        super().__init__(problem, params, config, plan)
        self.shapes = parameter_shapes(problem)
        self.sizes = [math.prod(shape) for shape in self.shapes]
        self.tensors = parameter_tensors(params, self.shapes)
        self.optimizer = self.build(self.tensors, config, self.opts)
        self.takes_closure = "closure" in inspect.signature(self.optimizer.step).parameters
        self.averaged = callable(getattr(self.optimizer, "eval", None)) and callable(
            getattr(self.optimizer, "train", None)
        )
        if self.averaged:
            self.optimizer.train()
        self.scheduler = (
            make_scheduler(self.optimizer, config, plan.steps_per_epoch, plan.max_steps) if self.takes_lr else None
        )
        self.sampler = problem.sampler(plan.batch_size, config.seed + 1, config.order) if plan.batch_size else None
        self.steps = 0

    def flat(self) -> torch.Tensor:
        return torch.cat([t.detach().reshape(-1) for t in self.tensors])

    def set_gradient(self, grad: torch.Tensor) -> None:
        for tensor, part in zip(self.tensors, grad.split(self.sizes)):
            tensor.grad = part.reshape(tensor.shape).clone()

    def step(self) -> dict[str, float]:
        lr = self.lr
        batch = self.problem.batch(self.sampler.next_indices()) if self.sampler is not None else None
        start = self.flat()
        loss, grad = self.problem.loss_and_grad(start, batch)
        self.set_gradient(grad)

        def closure():
            """The loss on this step's batch at the current parameters, their gradients in .grad."""
            w = self.flat()
            if torch.equal(w, start):
                value, g = loss, grad
            else:
                value, g = self.problem.loss_and_grad(w, batch)
            self.set_gradient(g)
            return value

        if self.takes_closure:
            self.optimizer.step(closure)
        else:
            self.optimizer.step()
        self.steps += 1
        for tensor in self.tensors:
            if not bool(torch.isfinite(tensor).all()):
                raise FloatingPointError(f"{self.config.strategy} produced non-finite parameters at step {self.steps}")
        if self.scheduler is not None:
            self.scheduler.step()
        return {"batch_loss": float(loss), "grad_norm": grad.norm().item(), "lr": lr}

    def params(self) -> torch.Tensor:
        """The point to evaluate: a Schedule-Free optimizer's averaged point (its eval mode), else the iterate.
        Before the first step both are the initial point (and some eval() need the state a step makes)."""
        if not self.averaged or self.steps == 0:
            return self.flat()
        self.optimizer.eval()
        try:
            return self.flat()
        finally:
            self.optimizer.train()

    @property
    def lr(self) -> float | None:
        lr = self.optimizer.param_groups[0].get("lr")
        return float(lr) if isinstance(lr, (int, float, torch.Tensor)) else None


def parameter_shapes(problem) -> list[tuple[int, ...]]:
    """The shapes of the problem's parameter tensors, in the flat vector's order: the problem's own
    `param_shapes` when it declares them, a network's (weight, bias) per layer, else one vector."""
    shapes = getattr(problem, "param_shapes", None)
    if shapes is not None:
        return [tuple(s) for s in shapes]
    network = getattr(problem, "network", None)
    if network is not None and hasattr(network, "layer_shapes"):
        return [shape for fan_out, fan_in in network.layer_shapes for shape in ((fan_out, fan_in), (fan_out,))]
    return [(problem.n_params,)]


def parameter_tensors(w: torch.Tensor, shapes: list[tuple[int, ...]]) -> list[torch.nn.Parameter]:
    """The flat vector w cut into one leaf tensor per parameter (copies), shaped as the network's layers."""
    sizes = [math.prod(shape) for shape in shapes]
    return [
        torch.nn.Parameter(part.detach().clone().reshape(shape)) for part, shape in zip(w.detach().split(sizes), shapes)
    ]


def groups_by_flag(flag: str):
    """A `param_groups` for optimizers that read a per-group flag (Muon's use_muon): the hidden weight
    matrices (every parameter with two or more dimensions except the last one, the output layer) get
    flag=True, the others (biases, the output layer) flag=False, as Muon's authors prescribe."""

    def param_groups(cls, tensors):
        matrices = [i for i, t in enumerate(tensors) if t.dim() >= 2]
        hidden = set(matrices[:-1])
        groups = [
            {"params": [t for i, t in enumerate(tensors) if i in hidden], flag: True},
            {"params": [t for i, t in enumerate(tensors) if i not in hidden], flag: False},
        ]
        return [g for g in groups if g["params"]]

    return classmethod(param_groups)


_CLASSES: dict[tuple[str, type], type] = {}


def strategy_class(optimizer_class: type, name: str, description: str, **attributes) -> type:
    """The strategy class (cached) for `optimizer_class` under `name`, or a one-line ConfigError when it is
    not a torch.optim.Optimizer subclass."""
    if not (isinstance(optimizer_class, type) and issubclass(optimizer_class, torch.optim.Optimizer)):
        raise ConfigError(
            f"strategy {name!r}: {getattr(optimizer_class, '__name__', optimizer_class)!s} is not a "
            f"torch.optim.Optimizer subclass"
        )
    key = (name, optimizer_class)
    if key not in _CLASSES:
        parameters = _signature(optimizer_class)
        options = constructor_options(optimizer_class)

        def default(parameter: str):
            p = parameters.get(parameter)
            return (
                p.default
                if p is not None and isinstance(p.default, (int, float)) and not isinstance(p.default, bool)
                else None
            )

        momentum_parameter = (
            "momentum"
            if "momentum" in parameters
            else ("betas" if "betas" in options and options["betas"].kind == "tuple" else None)
        )
        betas = options["betas"].default if momentum_parameter == "betas" else None
        attrs = {
            "name": name,
            "description": description,
            "optimizer_class": optimizer_class,
            "options": options,
            "takes_lr": "lr" in parameters,
            "default_lr": float(default("lr")) if default("lr") is not None else None,
            "momentum_parameter": momentum_parameter,
            "default_momentum": (
                float(default("momentum"))
                if momentum_parameter == "momentum" and default("momentum") is not None
                else float(betas[0])
                if isinstance(betas, tuple) and betas
                else None
            ),
            "default_weight_decay": float(default("weight_decay")) if default("weight_decay") is not None else None,
            "__module__": __name__,
            **attributes,
        }
        _CLASSES[key] = type(f"Optimizer_{optimizer_class.__name__}", (OptimizerClassStrategy,), attrs)
    return _CLASSES[key]
