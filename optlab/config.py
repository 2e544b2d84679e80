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
from dataclasses import asdict, dataclass, field, replace

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
# settings added after runs were recorded: left out of the config hash at their default, so the
# points of existing stores keep their identity
_HASH_DEFAULTS = {"order": "shuffled", "workload": None}
# the problem settings a user workload replaces (its file defines the data, the model and the loss)
WORKLOAD_REPLACES = ("dataset", "hidden", "activation", "init", "cost", "label_noise", "variant", "standardize",
                     "noise_seed", "train_size")
# measurement settings: they change what a run records, not how it trains
_MEASUREMENTS = ("probe_curvature", "probe_noise_scale", "diagnostics", "diagnostics_samples")
# ranges of the numeric fields: every number is finite; counts and seeds fit the libraries that use them
MAX_SEED = 2**31 - 1          # numpy's RandomState takes < 2**32; strategies derive seed + 1, seed + 2
MAX_COUNT = 10**9             # steps, evaluations, batch and training-set sizes, intervals
MAX_WIDTH = 100_000           # a hidden layer: 784 x 100,000 weights is already 314 MB a copy
MAX_NAME = 250                # MLflow's limit for run names and tag keys


@dataclass(frozen=True)
class RunConfig:
    # strategy
    strategy: str = "adam"
    lr: float | None = None              # None: the strategy's default
    momentum: float | None = None        # None: the strategy's default
    batch_size: int | None = None        # None: the strategy's default (gd: all, sgd: 1, others 32)
    weight_decay: float | None = None    # None: the strategy's default
    options: dict = field(default_factory=dict)  # strategy-specific knobs, see `optlab strategies`
    schedule: str = "constant"
    decay_rate: float = 0.1
    decay_every: float = 10.0            # epochs, for the step schedule
    # budget: the run stops when the first one is used up (epochs=10 when none is given)
    epochs: float | None = None
    steps: int | None = None
    evaluations: int | None = None
    seconds: float | None = None
    # problem
    dataset: str = "mnist5k"
    hidden: tuple[int, ...] = (16, 16)
    activation: str = "sigmoid"
    init: str = "fan_in_uniform"
    cost: str = "cross_entropy"
    label_noise: float = 0.0
    variant: str = "none"
    standardize: bool = False
    noise_seed: int = 0
    train_size: int | None = None
    order: str = "shuffled"              # shuffled | sorted_by_class: the order mini-batches visit the data
    workload: str | None = None          # path/to/file.py:NAME or package.module:NAME returning an optlab.Workload
                                         # (the user's model, data and loss, in place of dataset/network/cost)
    # run
    seed: int = 0
    target: float | None = None          # validation accuracy to time (AlgoPerf's time-to-target)
    stop_at_target: bool = False
    eval_every: int | None = None        # steps between evaluations; None: about 50 per run
    log_every: int = 1                   # steps between per-step metric points
    probe_curvature: bool = False        # at the end, log the loss Hessian's top eigenvalue and trace
    diagnostics: str = "off"             # off | cheap | full: in-training diagnostics at every evaluation
    diagnostics_samples: int = 512       # training samples (a fixed random subset) for per-sample gradients
    probe_noise_scale: bool = False      # during training, log the gradient noise scale's |G|^2 and tr(Sigma)
    dtype: str = "float32"
    device: str = "cpu"
    experiment: str = "default"
    run_name: str | None = None

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> "RunConfig":
        hints = _type_hints(cls)  # resolving the annotations cost more than all the checks together
        clean = {}
        for key, value in values.items():
            if key not in hints:
                raise ConfigError(f"{source}: unknown key {key!r}")
            clean[key] = _coerce(key, value, hints[key], source)
        config = cls(**clean)
        config.validate(source)
        return config

    def with_updates(self, **changes) -> "RunConfig":
        return RunConfig.from_dict({**self.to_dict(), **changes})

    # ---- checks -------------------------------------------------------------------------
    def validate(self, source: str = "config") -> None:
        def bad(key, rule):
            raise ConfigError(f"{source}: {key} must be {rule}, got {getattr(self, key)!r}")

        def finite(key) -> bool:
            return getattr(self, key) is None or math.isfinite(getattr(self, key))

        for key in ("lr", "epochs", "seconds", "decay_every", "decay_rate"):
            value = getattr(self, key)
            if value is not None and (not math.isfinite(value) or value <= 0):
                bad(key, "positive" if value <= 0 else "finite")
        for key in ("steps", "evaluations", "batch_size", "eval_every", "log_every", "train_size"):
            value = getattr(self, key)
            if value is not None and not 1 <= value <= MAX_COUNT:
                bad(key, f"a positive integer up to {MAX_COUNT:,}")
        for key in ("seed", "noise_seed"):
            if not 0 <= getattr(self, key) <= MAX_SEED:
                bad(key, f"an integer in [0, {MAX_SEED}]")
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
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"{source}: unknown schedule {self.schedule!r}; choose from {', '.join(SCHEDULES)}")
        if self.diagnostics not in DIAGNOSTICS:
            raise ConfigError(f"{source}: unknown diagnostics {self.diagnostics!r}; choose from {', '.join(DIAGNOSTICS)}")
        if not 2 <= self.diagnostics_samples <= MAX_COUNT:
            bad("diagnostics_samples", f"an integer in [2, {MAX_COUNT:,}] (a variance needs two samples)")
        if self.dtype not in DTYPES:
            raise ConfigError(f"{source}: unknown dtype {self.dtype!r}; choose from {', '.join(DTYPES)}")
        _check_device(self.device, source)
        if self.workload is not None:
            if not self.workload.strip() or ":" not in self.workload:
                bad("workload", "a reference path/to/file.py:NAME or package.module:NAME")
            defaults = RunConfig.__dataclass_fields__
            for key in WORKLOAD_REPLACES:
                if getattr(self, key) != defaults[key].default:
                    raise ConfigError(f"{source}: {key} = {getattr(self, key)!r} does not apply to workload "
                                      f"{self.workload!r} (its file defines the data, the model and the loss)")
        if self.stop_at_target and self.target is None:
            raise ConfigError(f"{source}: stop_at_target needs a target accuracy")
        _check_names(self, source)

    # ---- views --------------------------------------------------------------------------
    @property
    def budget(self) -> dict[str, float]:
        given = {k: getattr(self, k) for k in ("epochs", "steps", "evaluations", "seconds")
                 if getattr(self, k) is not None}
        return given or {"epochs": 10.0}

    def to_dict(self) -> dict:
        out = asdict(self)
        out["hidden"] = list(self.hidden)
        return out

    def config_hash(self) -> str:
        """Stable hash of everything that defines the run (not its experiment, display name or measurements)."""
        payload = {k: v for k, v in self.to_dict().items() if k not in ("experiment", "run_name", *_MEASUREMENTS)
                   and not (k in _HASH_DEFAULTS and v == _HASH_DEFAULTS[k])}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def label(self) -> str:
        parts = [self.strategy]
        if self.lr is not None:
            parts.append(f"lr={self.lr:g}")
        if self.batch_size is not None:
            parts.append(f"B={self.batch_size}")
        parts.append(f"seed={self.seed}")
        return " ".join(parts)


@functools.lru_cache(maxsize=None)
def _type_hints(cls) -> dict:
    return typing.get_type_hints(cls)


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
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            dict: "a table of options"}.get(hint, str(hint))


def _check_device(device: str, source: str) -> None:
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        raise ConfigError(f"{source}: unknown device {device!r}; use cpu or cuda (cuda:N)") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{source}: device {device!r} is not available: this torch "
                          f"({torch.__version__}) sees no CUDA GPU; use cpu")
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
