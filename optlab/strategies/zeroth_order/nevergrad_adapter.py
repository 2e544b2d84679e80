"""`ng:NAME`: any optimizer of Nevergrad's registry on the flat parameter vector.

The parametrization is an `ng.p.Array` initialized at the problem's initial weights, with the
mutation scale `sigma`. One step asks `num_workers` candidates, evaluates them in one batched
forward pass (`problem.losses`: K counted function evaluations) and tells the losses back. The
objective is the full training loss (deterministic) or the loss on a fresh mini-batch per ask
round (declared noisy to Nevergrad). `params()` is Nevergrad's recommendation.

Feasibility is checked at planning time on the optimizer Nevergrad would actually build for this
dimension, budget and worker count (NGOpt and friends pick a sub-optimizer by dimension): a full
covariance matrix at large d, and the MetaModel surrogate that breaks under numpy >= 2.4 with
nevergrad 1.0.12, are refused with a message naming a working alternative.

The optimizer lives on the strategy instance, never in a module global: scipy-based optimizers
keep a background thread that would hang the interpreter at exit.
"""

from __future__ import annotations

import difflib
from typing import ClassVar

import numpy as np
import torch

from optlab.errors import ConfigError
from optlab.strategies.base import Option, Strategy
from optlab.strategies.registry import register, register_prefix
from optlab.strategies.zeroth_order.common import CandidateSearch, Infeasible

FULL_COVARIANCE_MAX_DIM = 2_000  # a d x d covariance above this is too slow and too big here
NOISY_BATCH_SIZE = 100  # default mini-batch of objective=batch
SECONDS_TO_EVALUATIONS = 1e5  # a generous upper bound on evaluations per second (planning only)

CURATED = {
    "OnePlusOne": "(1+1)-ES with the one-fifth success rule: one mutant per step, kept if better",
    "DiagonalCMA": "CMA-ES with a diagonal covariance (separable CMA): O(d) per sample, the CMA that fits d=13k",
    "PSO": "particle swarm optimization: particles pulled towards their own and the swarm's best",
    "TwoPointsDE": "differential evolution with two-points crossover",
    "TBPSA": "test-based population-size adaptation: an ES robust to noisy objectives",
}


class NevergradStrategy(CandidateSearch, Strategy):
    family = "zeroth-order"
    default_batch_size = None
    optimizer_name: ClassVar[str]
    options = {
        # weights are O(1): a scale far beyond that (1e308) overflows every candidate to nan, and the run
        # would end where it started
        "sigma": Option(
            float, 0.05, "mutation scale of the parametrization (Nevergrad's sigma)", greater_than=0, at_most=1e3
        ),
        "objective": Option(
            str,
            "full",
            "full: training-set loss (deterministic) | batch: a fresh mini-batch "
            "per ask round (noisy; size from batch_size, default 100)",
            choices=("full", "batch"),
        ),
        "num_workers": Option(
            int, 1, "candidates asked together and evaluated in one batched forward pass", at_least=1, at_most=4096
        ),
    }

    # ---- planning ---------------------------------------------------------------------------
    @classmethod
    def validate(cls, config, problem):
        if config.lr is not None:  # before the generic knob check: the message says what replaces lr
            raise ConfigError(
                f"{config.strategy} takes no lr (got {config.lr!r}); its step size is the mutation scale, -o sigma=..."
            )
        super().validate(config, problem)

    @classmethod
    def check(cls, config, problem):
        if all(getattr(config, key) is None for key in config.fields_with_role("budget")) and getattr(
            problem, "has_accuracy", False
        ):
            # the default 10 epochs would be 10 full-set evaluations: a run that never moves
            raise ConfigError(
                f"{config.strategy} needs an explicit budget, e.g. --evaluations 3000 "
                f"(an epoch is one evaluation of the full training set)"
            )
        if config.schedule != "constant":
            raise ConfigError(f"{config.strategy} has no learning rate to schedule (schedule {config.schedule!r})")

    @classmethod
    def resolve_batch_size(cls, config, problem):
        if not getattr(problem, "has_accuracy", False):
            return None
        if cls.resolve_options(config)["objective"] == "full":
            if config.batch_size is not None and config.batch_size != problem.n_train:
                raise ConfigError(
                    f"{config.strategy} with objective=full evaluates the whole training set; "
                    f"batch_size {config.batch_size} needs -o objective=batch"
                )
            return None
        size = config.batch_size if config.batch_size is not None else min(NOISY_BATCH_SIZE, problem.n_train)
        if size > problem.n_train:
            raise ConfigError(
                f"batch_size {size} is larger than the training set ({problem.n_train} samples of {problem.name})"
            )
        return size

    @classmethod
    def memory_bytes(cls, config, problem):
        # Nevergrad's archive of evaluated points: up to its pruning's max_len points of d float64s, stored
        # twice (as key and as Parameter); ~210 MB for 784-16-16-10 (ng.optimization.utils.Pruning)
        from nevergrad.optimization.utils import Pruning

        opts = cls.resolve_options(config)
        pruning = Pruning.sensible_default(num_workers=opts["num_workers"], dimension=problem.n_params)
        return int(pruning.max_len) * problem.n_params * 8 * 2

    @classmethod
    def evaluations_per_step(cls, config):
        return float(config.options.get("num_workers", cls.options["num_workers"].default))

    @classmethod
    def samples_per_step(cls, config, batch_size, problem):
        per_eval = batch_size if batch_size is not None else problem.n_train
        return per_eval * cls.evaluations_per_step(config)

    @classmethod
    def check_plan(cls, config, problem, plan):
        opts = cls.resolve_options(config)
        check_feasible(
            cls.optimizer_name,
            problem.n_params,
            cls._ng_budget(config, plan),
            opts["num_workers"],
            cls._planned_evaluations(config, plan),
        )

    @classmethod
    def _ng_budget(cls, config, plan) -> int | None:
        """The budget Nevergrad is told (some optimizers size populations from it)."""
        workers = int(cls.evaluations_per_step(config))
        budget = plan.max_steps * workers if plan.max_steps is not None else None
        if "evaluations" in config.budget:
            budget = min(budget, int(config.budget["evaluations"])) if budget else int(config.budget["evaluations"])
        return budget

    @classmethod
    def _planned_evaluations(cls, config, plan) -> float:
        budget = cls._ng_budget(config, plan)
        return float(budget) if budget is not None else config.budget.get("seconds", 0) * SECONDS_TO_EVALUATIONS

    # ---- running ----------------------------------------------------------------------------
    def __init__(self, problem, params, config, plan):
        super().__init__(problem, params, config, plan)
        import nevergrad as ng

        self.dtype, self.device = params.dtype, params.device
        self.workers = self.opts["num_workers"]
        self.noisy = self.opts["objective"] == "batch" and plan.batch_size is not None
        parametrization = ng.p.Array(init=params.detach().cpu().double().numpy())
        parametrization.set_mutation(sigma=self.opts["sigma"])
        parametrization.random_state = np.random.RandomState(config.seed)
        parametrization.function.deterministic = not self.noisy
        self.optimizer = ng.optimizers.registry[self.optimizer_name](
            parametrization=parametrization, budget=self._ng_budget(config, plan), num_workers=self.workers
        )
        self.sampler = problem.sampler(plan.batch_size, config.seed + 1, config.order) if self.noisy else None
        budget = config.budget.get("evaluations")
        self.max_evaluations = int(budget) if budget is not None else None
        self._told = 0
        self._asked: list = []  # the candidates of the round awaiting their losses

    @classmethod
    def shares_objective(cls, config, plan) -> bool:
        return plan.batch_size is None  # objective=batch draws its own mini-batches per seed

    def step(self) -> dict[str, float]:
        ws = self.ask()
        batch = self.problem.batch(self.sampler.next_indices()) if self.sampler is not None else None
        return self.tell(self.problem.losses(ws, batch).double().cpu().numpy())

    def ask(self) -> torch.Tensor:
        count = self.workers
        if self.max_evaluations is not None:  # the last round asks only what the budget has left
            count = max(1, min(count, self.max_evaluations - self._told))
        self._asked = [self.optimizer.ask() for _ in range(count)]
        return torch.from_numpy(np.stack([c.value for c in self._asked])).to(dtype=self.dtype, device=self.device)

    def tell(self, losses: np.ndarray) -> dict[str, float]:
        for candidate, loss in zip(self._asked, losses):
            self.optimizer.tell(candidate, float(loss))
        self._told += len(self._asked)
        self._asked = []
        # A candidate far out (PSO samples the whole space) may cost inf: that is not a divergence
        # of the search, whose recommendation the engine still checks at every evaluation point.
        finite = losses[np.isfinite(losses)]
        return {"batch_loss": float(finite.min())} if finite.size else {}

    def params(self) -> torch.Tensor:
        recommendation = self.optimizer.provide_recommendation()
        return torch.from_numpy(np.asarray(recommendation.value)).to(dtype=self.dtype, device=self.device)


# ---- feasibility --------------------------------------------------------------------------------
def check_feasible(name: str, dimension: int, budget: int | None, num_workers: int, evaluations: float) -> None:
    """Refuse what cannot run here, on the optimizer Nevergrad would build for this setting."""
    import nevergrad as ng
    from nevergrad.optimization import optimizerlib

    entry = ng.optimizers.registry[name]
    # Checked before instantiating: EDA allocates its d x d covariance in the constructor.
    if isinstance(entry, type) and issubclass(entry, optimizerlib.EDA):
        _refuse_full_covariance(name, name, dimension)
    if isinstance(entry, optimizerlib.ParametrizedCMA) and not entry.diagonal:
        _refuse_full_covariance(name, name, dimension)
    if num_workers > 1 and getattr(entry, "no_parallelization", False):
        raise ConfigError(
            f"ng:{name} asks one candidate at a time; num_workers {num_workers} needs an optimizer "
            f"that supports parallel asks (e.g. ng:TwoPointsDE, ng:PSO, ng:DiagonalCMA)"
        )
    try:
        optimizer = entry(parametrization=dimension, budget=budget, num_workers=num_workers)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"ng:{name} cannot be built with num_workers={num_workers}, budget={budget}: {exc}") from None
    for part in _parts(optimizer):
        if isinstance(part, optimizerlib._CMA) and not part._config.diagonal:
            _refuse_full_covariance(name, type(part).__name__.lstrip("_"), dimension)
        if isinstance(part, optimizerlib._MetaModel) and metamodel_broken():
            needed = _metamodel_sample_size(part)
            if evaluations >= needed:
                raise ConfigError(
                    f"ng:{name} fits a MetaModel surrogate after {needed:,} evaluations at d = {dimension:,}, which "
                    f"raises TypeError under numpy {np.__version__} with nevergrad {ng.__version__} (fixed upstream, "
                    f"not released); use ng:OnePlusOne or ng:DiagonalCMA, or pin numpy<2.4"
                )


def _refuse_full_covariance(name: str, part: str, d: int) -> None:
    if d <= FULL_COVARIANCE_MAX_DIM:
        return
    via = "" if part == name else f" (through {part})"
    gigabytes = d * d * 8 / 1e9
    raise Infeasible(
        f"ng:{name} keeps a full covariance matrix{via}: at d = {d:,} that is {d * d:.2g} entries "
        f"({gigabytes:.1f} GB each, O(d^2) per sample) and would not finish an iteration here "
        f"(limit d <= {FULL_COVARIANCE_MAX_DIM:,}); use ng:DiagonalCMA"
    )


def _parts(optimizer, seen=None):
    """The optimizer and every sub-optimizer it delegates to (NGOpt's choice, chains, portfolios)."""
    import nevergrad as ng

    seen = seen if seen is not None else set()
    if id(optimizer) in seen:
        return
    seen.add(id(optimizer))
    yield optimizer
    for attr in ("optim", "_optim", "_optimizer", "optims", "optimizers"):
        try:
            sub = getattr(optimizer, attr, None)
        except Exception:  # a lazy property that cannot build here; its parts cannot run either
            continue
        for part in sub if isinstance(sub, (list, tuple)) else [sub]:
            if isinstance(part, ng.optimizers.base.Optimizer):
                yield from _parts(part, seen)


def _metamodel_sample_size(part) -> int:
    """Archive size from which nevergrad's _MetaModel starts fitting its surrogate (its own formula)."""
    d = part.dimension
    size = int(d * (d - 1) / 2 + 2 * d + 1)
    if part.degree != 2:
        size = int(np.power(size, part.degree / 2.0))
        if part.algorithm in ("image", "voxelize"):
            size = 50
    return size


def metamodel_broken() -> bool:
    """nevergrad <= 1.0.12 converts a size-1 array with float(), which numpy >= 2.4 refuses."""
    import nevergrad as ng

    try:
        float(np.ones(1))
    except TypeError:
        version = tuple(int(p) for p in ng.__version__.split(".")[:3] if p.isdigit())
        return version <= (1, 0, 12)
    return False


# ---- registry -----------------------------------------------------------------------------------
_CLASSES: dict[str, type] = {}


def _make_class(name: str, description: str) -> type:
    if name not in _CLASSES:
        _CLASSES[name] = type(
            f"Nevergrad_{name}",
            (NevergradStrategy,),
            {"name": f"ng:{name}", "optimizer_name": name, "description": description, "__module__": __name__},
        )
    return _CLASSES[name]


def resolve_ng(rest: str) -> type:
    import nevergrad as ng

    registry = ng.optimizers.registry
    if rest not in registry:
        close = difflib.get_close_matches(rest, list(registry), n=3)
        hint = f"; did you mean {', '.join('ng:' + c for c in close)}?" if close else ""
        raise ConfigError(f"unknown Nevergrad optimizer {rest!r} ({len(registry)} in its registry){hint}")
    return _make_class(rest, f"Nevergrad's {rest} on the flat parameter vector")


for _name, _description in CURATED.items():
    register(_make_class(_name, _description))

register_prefix(
    "ng",
    resolve_ng,
    "any name in Nevergrad's registry works (about 540 optimizers, e.g. ng:NGOpt, "
    "ng:RandomSearch, ng:NoisyOnePlusOne), with the options of the ng: strategies above; "
    "settings infeasible at the problem's size are refused before the run",
)
