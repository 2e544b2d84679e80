"""RunConfig: everything that defines one run, validated before anything runs or is recorded.

`RunConfig.from_dict` is the single entry point for the CLI and for experiment files: an unknown
key, a wrong type or an out-of-range value raises a one-line ConfigError naming it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import types
import typing
from dataclasses import asdict, dataclass, field, fields

from optlab import references
from optlab.errors import ConfigError

SCHEDULES = {
    "constant": "the learning rate never changes",
    "step": "multiply by decay_rate every decay_every epochs",
    "exponential": "multiply by decay_rate each epoch, smoothly per step",
    "cosine": "cosine decay from lr to 0 over the planned steps",
}
DTYPES = ("float32", "float64")
DIAGNOSTICS = {
    "off": "no diagnostics (nothing computed, nothing logged)",
    "cheap": "at every evaluation: full-training-set gradient norm, gradient noise scale B_simple and GSNR from "
    "per-sample gradients, update-to-weight ratio per layer, update norm, cosine of successive updates, "
    "distance from initialization",
    "full": "cheap + the loss Hessian's top eigenvalue (sharpness) and trace, and the step quality alpha "
    "(Cockpit: where on the parabola fitted along the last step it landed)",
}
# the problem settings a user workload replaces (its file defines the data, the model and the loss)
WORKLOAD_REPLACES = (
    "dataset",
    "hidden",
    "activation",
    "init",
    "cost",
    "label_noise",
    "variant",
    "standardize",
    "noise_seed",
    "train_size",
)
# ranges of the numeric fields: every number is finite; counts and seeds fit the libraries that use them
MAX_SEED = 2**31 - 1  # numpy's RandomState takes < 2**32; strategies derive seed + 1, seed + 2
MAX_COUNT = 10**9  # steps, evaluations, batch and training-set sizes, intervals
MAX_WIDTH = 100_000  # a hidden layer: 784 x 100,000 weights is already 314 MB a copy
MAX_NAME = 250  # MLflow's limit for run names and tag keys

# What a field of RunConfig is for. Every list of keys elsewhere (the workload, the problem, the config
# hash, run names, the CLI's flags, the reports' grouping) is derived from these roles.
ROLES = {
    "strategy": "the optimizer, its hyperparameters and the order it visits the data",
    "problem": "what is minimized: data, network, cost, precision (part of the workload)",
    "budget": "when the run stops; the first used up stops it (part of the workload)",
    "target": "the validation accuracy whose time to reach is recorded (part of the workload)",
    "seed": "the run's random seed: the repeats of one configuration differ only in it",
    "device": "where the run computes (in the config hash, not in the workload)",
    "evaluation": "when the run evaluates and logs (in the config hash: with a target, it decides when the run stops)",
    "measurement": "what the run records besides training (not in the config hash)",
    "identity": "the run's experiment and display name (not in the config hash)",
}
WORKLOAD_ROLES = ("problem", "budget", "target")  # what a comparison of strategies holds fixed
UNHASHED_ROLES = ("measurement", "identity")  # left out of the config hash
CHECKS = {  # named value rules a field may declare (`check=`); None passes
    "positive": "positive",
    "count": f"a positive integer up to {MAX_COUNT:,}",
    "seed": f"an integer in [0, {MAX_SEED}]",
}


def setting(
    role: str,
    default=None,
    *,
    help: str = "",
    flags: tuple[str, ...] = (),
    short: str | None = None,
    check: str | None = None,
    choices: dict | tuple = (),
    omit_default: bool = False,
    factory=None,
):
    """A RunConfig field with its declaration: `role` (a key of ROLES), the CLI's `help` and extra `flags`
    (e.g. "-s"), the `short` name run names use, a value rule `check` (a key of CHECKS) or allowed
    `choices`. `omit_default`: the field is left out of every hash while at its default, so stores
    recorded before it existed keep their identity; every field added from now on sets it."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    metadata = {
        "role": role,
        "help": help,
        "flags": flags,
        "short": short,
        "check": check,
        "choices": tuple(choices),
        "omit_default": omit_default,
    }
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class RunConfig:
    # Field order is the order run names and descriptions list settings in: add new fields at the end, with
    # omit_default=True.
    strategy: str = setting(
        "strategy",
        "adam",
        flags=("-s",),
        help="strategy name (see `optlab strategies`), or a torch.optim.Optimizer by "
        "reference: path/to/file.py:Class or package.module:Class",
    )
    lr: float | None = setting("strategy", check="positive", help="learning rate (default: the strategy's)")
    momentum: float | None = setting("strategy", help="momentum / Adam's beta1 (default: the strategy's)")
    batch_size: int | None = setting(
        "strategy",
        check="count",
        flags=("-b",),
        short="B",
        help="mini-batch size (default: the strategy's: gd all, sgd 1, others 32)",
    )
    weight_decay: float | None = setting("strategy", short="wd", help="weight decay (default: the strategy's)")
    options: dict = setting(
        "strategy",
        factory=dict,
        flags=("--opt", "-o"),
        help="strategy-specific option KEY=VALUE (repeatable), e.g. -o sigma=0.05; for an "
        "optimizer class, any argument of its constructor, e.g. -o betas=[0.9,0.99]",
    )
    schedule: str = setting("strategy", "constant", choices=SCHEDULES, help=" | ".join(SCHEDULES))
    decay_rate: float = setting("strategy", 0.1, check="positive", help="factor for step/exponential schedules")
    decay_every: float = setting("strategy", 10.0, check="positive", help="epochs between step-schedule decays")
    epochs: float | None = setting("budget", check="positive", help="epochs")
    steps: int | None = setting("budget", check="count", help="steps")
    evaluations: int | None = setting("budget", check="count", short="evals", help="function evaluations")
    seconds: float | None = setting("budget", check="positive", help="wall-clock training seconds")
    dataset: str = setting(
        "problem", "mnist5k", flags=("-d",), help="mnist5k (default) | digits | mnist | ravine | rosenbrock | golf"
    )
    hidden: tuple[int, ...] = setting(
        "problem", (16, 16), help="hidden layer sizes, e.g. 16,16 (default) or 512; none: no hidden layer"
    )
    activation: str = setting("problem", "sigmoid", short="act", help="sigmoid (default) | relu | tanh")
    init: str = setting(
        "problem", "fan_in_uniform", help="fan_in_uniform (default) | fan_in_normal | xavier | he | normal | zeros"
    )
    cost: str = setting("problem", "cross_entropy", help="cross_entropy (default) | mse")
    label_noise: float = setting("problem", 0.0, short="p", help="probability of replacing a training label at random")
    variant: str = setting("problem", "none", help="none | shuffled_pixels | random_pixels | gaussian")
    standardize: bool = setting("problem", False, help="standardize inputs")
    noise_seed: int = setting("problem", 0, check="seed", help="seed of the label noise and the noise variants")
    train_size: int | None = setting(
        "problem", check="count", short="n_train", help="use only the first N training samples"
    )
    order: str = setting(
        "strategy",
        "shuffled",
        omit_default=True,
        help="shuffled (default) | sorted_by_class: the order mini-batches visit the data",
    )
    workload: str | None = setting(
        "problem",
        omit_default=True,
        flags=("-w",),
        help="your own workload: path/to/file.py:NAME (or package.module:NAME), NAME() "
        "returning an optlab.Workload (model, data, loss) in place of "
        "--dataset/--hidden/--cost",
    )
    seed: int = setting("seed", 0, check="seed", help="the run's seed (initialization, batches, strategy)")
    target: float | None = setting("target", help="validation accuracy whose time and steps to reach are recorded")
    stop_at_target: bool = setting("target", False, help="stop the run when it reaches the target")
    eval_every: int | None = setting(
        "evaluation", check="count", help="steps between evaluations (default: ~50 per run)"
    )
    log_every: int = setting("evaluation", 1, check="count", help="steps between per-step metric points (default 1)")
    probe_curvature: bool = setting(
        "measurement", False, help="at the end, log the Hessian's top eigenvalue and trace (sharpness)"
    )
    diagnostics: str = setting(
        "measurement",
        "off",
        choices=DIAGNOSTICS,
        help="off (default) | cheap | full: in-training diagnostics logged at every "
        "evaluation (gradient noise scale, GSNR, update ratios, ...; full adds "
        "sharpness, Hessian trace and step quality alpha)",
    )
    diagnostics_samples: int = setting(
        "measurement", 512, help="training samples for per-sample gradients (a fixed random subset; default 512)"
    )
    probe_noise_scale: bool = setting(
        "measurement",
        False,
        help="during training, log the gradient noise scale's |G|^2 and tr(Sigma), "
        "measured at two batch sizes at the same parameters (McCandlish et al. "
        "2018)",
    )
    dtype: str = setting("problem", "float32", choices=DTYPES, help="float32 (default) | float64")
    device: str = setting("device", "cpu", help="cpu (default) | cuda")
    experiment: str = setting("identity", "default", flags=("-e",), help="MLflow experiment name (default 'default')")
    run_name: str | None = setting("identity", help="the run's display name")
    full_eval_every: int = setting(
        "evaluation",
        1,
        check="count",
        omit_default=True,
        help="every Nth evaluation point also measures the training and test sets and takes the "
        "diagnostics; the others measure validation only (the first and the last point, and the point "
        "a target is reached, always measure all three; default 1: every point)",
    )
    target_resolution: float | None = setting(
        "evaluation",
        omit_default=True,
        help="with a target: between evaluation points the validation accuracy is also checked (not "
        "recorded) each time the steps have grown by this fraction, so the step the target is reached "
        "at is known to within that fraction (e.g. 0.02); that step becomes an evaluation point measuring every "
        "split. Default: the target is checked at evaluation points only",
    )

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> RunConfig:
        hints = _type_hints(cls)  # resolving the annotations cost more than all the checks together
        clean = {}
        for key, value in values.items():
            if key not in hints:
                raise ConfigError(f"{source}: unknown key {key!r}")
            clean[key] = _coerce(key, value, hints[key], source)
        config = cls(**clean)
        config.validate(source)
        return config

    def with_updates(self, **changes) -> RunConfig:
        return type(self).from_dict({**self.to_dict(), **changes})

    # ---- the declaration ------------------------------------------------------------------
    @classmethod
    def declared(cls, name: str) -> dict:
        """The declaration of field `name`: role, help, flags, short, check, choices, omit_default."""
        return _declarations(cls)[name]

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(_declarations(cls))

    @classmethod
    def fields_with_role(cls, *roles: str) -> tuple[str, ...]:
        """The fields of any of `roles`, in field order."""
        unknown = set(roles) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown role {sorted(unknown)[0]!r}")
        return tuple(name for name, meta in _declarations(cls).items() if meta["role"] in roles)

    @classmethod
    def workload_keys(cls) -> tuple[str, ...]:
        """What a workload fixes: problem, budget and target (in that order)."""
        return tuple(k for role in WORKLOAD_ROLES for k in cls.fields_with_role(role))

    @classmethod
    def numeric_fields(cls) -> tuple[str, ...]:
        """The fields holding a number (int or float, possibly None)."""

        def numeric(hint):
            args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
            return all(a in (int, float) for a in args)

        return tuple(k for k, hint in _type_hints(cls).items() if numeric(hint))

    @classmethod
    def defaults(cls) -> dict:
        return dict(_defaults(cls))

    # ---- checks -------------------------------------------------------------------------
    def validate(self, source: str = "config") -> None:
        def bad(key, rule):
            raise ConfigError(f"{source}: {key} must be {rule}, got {getattr(self, key)!r}")

        def finite(key) -> bool:
            return getattr(self, key) is None or math.isfinite(getattr(self, key))

        for key, meta in _declarations(type(self)).items():
            value, check = getattr(self, key), meta["check"]
            if value is None:
                continue
            if check == "positive" and (not math.isfinite(value) or value <= 0):
                bad(key, "positive" if value <= 0 else "finite")
            if check == "count" and not 1 <= value <= MAX_COUNT:
                bad(key, CHECKS["count"])
            if check == "seed" and not 0 <= value <= MAX_SEED:
                bad(key, CHECKS["seed"])
            if meta["choices"] and value not in meta["choices"]:
                raise ConfigError(f"{source}: unknown {key} {value!r}; choose from {', '.join(meta['choices'])}")
        if self.momentum is not None and not (finite("momentum") and 0 <= self.momentum < 1):
            bad("momentum", "in [0, 1)")
        if self.weight_decay is not None and not (finite("weight_decay") and self.weight_decay >= 0):
            bad("weight_decay", "non-negative" if self.weight_decay < 0 else "a finite number")
        if not (finite("label_noise") and 0 <= self.label_noise <= 1):
            bad("label_noise", "in [0, 1]")
        if self.target is not None and not (finite("target") and 0 < self.target <= 1):
            bad("target", "a validation accuracy in (0, 1]")
        if any(not 1 <= width <= MAX_WIDTH for width in self.hidden):
            bad("hidden", f"a list of layer widths in [1, {MAX_WIDTH:,}] (empty: no hidden layer)")
        for key in ("experiment", "run_name"):
            value = getattr(self, key)
            if value is not None and (not value.strip() or len(value) > MAX_NAME or not value.isprintable()):
                bad(key, f"a non-empty printable name of at most {MAX_NAME} characters")
        if any(not isinstance(k, str) or not k.strip() for k in self.options):
            raise ConfigError(f"{source}: option names must be non-empty strings, got {list(self.options)!r}")
        if not 2 <= self.diagnostics_samples <= MAX_COUNT:
            bad("diagnostics_samples", f"an integer in [2, {MAX_COUNT:,}] (a variance needs two samples)")
        _check_device(self.device, source)
        if self.workload is not None:
            if not self.workload.strip() or ":" not in self.workload:
                bad("workload", "a reference path/to/file.py:NAME or package.module:NAME")
            defaults = RunConfig.__dataclass_fields__
            for key in WORKLOAD_REPLACES:
                if getattr(self, key) != defaults[key].default:
                    raise ConfigError(
                        f"{source}: {key} = {getattr(self, key)!r} does not apply to workload "
                        f"{self.workload!r} (its file defines the data, the model and the loss)"
                    )
        if self.target_resolution is not None and not (finite("target_resolution") and 0 < self.target_resolution <= 1):
            bad("target_resolution", "a fraction in (0, 1]")
        if self.stop_at_target and self.target is None:
            raise ConfigError(f"{source}: stop_at_target needs a target accuracy")
        _check_names(self, source)

    # ---- views --------------------------------------------------------------------------
    @property
    def budget(self) -> dict[str, float]:
        given = {k: getattr(self, k) for k in self.fields_with_role("budget") if getattr(self, k) is not None}
        return given or {"epochs": 10.0}

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def values(self, *roles: str) -> dict:
        """The fields of `roles` with their values (JSON-ready), without the fields left out of hashes
        at their default (`omit_default`)."""
        out, declared = self.to_dict(), _declarations(type(self))
        defaults = _defaults(type(self))
        return {
            k: out[k]
            for k in self.fields_with_role(*roles)
            if not (declared[k]["omit_default"] and out[k] == defaults[k])
        }

    def config_hash(self) -> str:
        """Stable hash of everything that defines the run (not its measurements, experiment or display name)."""
        return _hash(self.values(*(r for r in ROLES if r not in UNHASHED_ROLES)), 16)

    def workload_values(self) -> dict:
        """The workload's settings: the problem, the budget and the target. A user's workload is its name
        and the SHA-256 of its file (the same workload wherever the file lies)."""
        values = self.values(*WORKLOAD_ROLES)
        if self.workload is not None:
            from optlab.problem.workload_ref import identity

            values["workload"] = identity(self.workload)
        return values

    def workload_hash(self) -> str:
        """Equal hashes: the same problem, budget and target."""
        return _hash(self.workload_values(), 12)

    def problem_key(self) -> tuple:
        """Equal keys describe one built Problem (its data, network and cost, on one device)."""
        return tuple(
            (k, json.dumps(v, sort_keys=True, default=str)) for k, v in self.values("problem", "device").items()
        )

    def label(self) -> str:
        parts = [references.display(self.strategy)]
        if self.lr is not None:
            parts.append(f"lr={self.lr:g}")
        if self.batch_size is not None:
            parts.append(f"B={self.batch_size}")
        parts.append(f"seed={self.seed}")
        return " ".join(parts)


F = typing.TypeVar("F", bound=typing.Callable[..., typing.Any])


def _cache_by_class(fn: F) -> F:
    """functools.cache, keeping the function's signature for the type checker: typeshed asks for Hashable
    arguments, and mypy deems the class of an eq dataclass unhashable because its instances are."""
    return functools.cache(fn)  # type: ignore[return-value]


@_cache_by_class
def _type_hints(cls: type) -> dict:
    return typing.get_type_hints(cls)


@_cache_by_class
def _declarations(cls: type) -> dict[str, dict]:
    return {f.name: dict(f.metadata) for f in fields(cls)}


@_cache_by_class
def _defaults(cls: type) -> dict:
    return cls().to_dict()


def _hash(values: dict, length: int) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:length]


def _coerce(key: str, value, hint, source: str):
    """Accept a value of the annotated type; ints where floats are wanted; lists for tuples."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    optional = origin in (typing.Union, types.UnionType) and type(None) in args
    if optional:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    wrong = ConfigError(f"{source}: {key} must be {_type_name(hint)}, got {value!r}")
    if hint is bool:
        if not isinstance(value, bool):
            raise wrong
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise wrong
        return value
    if origin is tuple:
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
            raise wrong
        return tuple(value)
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise wrong
        return dict(value)
    return value


def _type_name(hint) -> str:
    if typing.get_origin(hint) is tuple:
        return "a list of integers"
    return {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "a string",
        dict: "a table of options",
    }.get(hint, str(hint))


def _check_device(device: str, source: str) -> None:
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        raise ConfigError(f"{source}: unknown device {device!r}; use cpu or cuda (cuda:N)") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"{source}: device {device!r} is not available: this torch ({torch.__version__}) sees no CUDA GPU; use cpu"
        )
    if kind not in ("cpu", "cuda"):
        raise ConfigError(f"{source}: device {device!r} is not supported; use cpu or cuda (cuda:N)")


def _check_names(config: RunConfig, source: str) -> None:
    """Names that select a component must exist; checked here so errors come before any work.
    (The strategy name is resolved by the engine's validation phase: config sits below strategies.)"""
    from optlab.problem.cost import COSTS
    from optlab.problem.data import DATASETS, VARIANTS
    from optlab.problem.network import ACTIVATIONS, INITS
    from optlab.problem.problem import ORDERS
    from optlab.problem.test_functions import TEST_FUNCTIONS

    choices = {
        "dataset": (config.dataset, [*DATASETS, *TEST_FUNCTIONS]),
        "activation": (config.activation, ACTIVATIONS),
        "init": (config.init, INITS),
        "cost": (config.cost, COSTS),
        "variant": (config.variant, VARIANTS),
        "order": (config.order, ORDERS),
    }
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise ConfigError(f"{source}: unknown {key} {value!r}; choose from {', '.join(allowed)}")


def check_threads(threads: int) -> int:
    """torch intra-op threads: at least 1, at most the machine's logical CPUs (more only contend, and
    OpenMP aborts or crashes allocating tens of thousands of them)."""
    import os

    cpus = os.cpu_count() or 1
    if not 1 <= threads <= cpus:
        raise ConfigError(f"--threads {threads} is not between 1 and this machine's {cpus} logical CPUs")
    return threads
