"""Everything that can fail on bad input, before any run exists: validate, resolve, build, plan.

A run's route: the config -> `prepare` (the strategy by name, its checks, the problem, and the engine's
plan: batch size, steps per epoch, planned steps, worked out here from what the strategy declares) ->
the strategy steps. Planning is the engine's: a strategy states facts (its batch size, samples and
evaluations per step, whether an evaluation budget buys whole steps only) and may refuse a plan
(`check_plan`), but never plans or rewrites the config itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from optlab.config import RunConfig
from optlab.errors import ConfigError
from optlab.problem import Problem, build_problem
from optlab.strategies import Plan, Strategy, resolve

EVAL_POINTS = 50  # evaluations per run when eval_every is not given
# batch size x weights whose forward and backward pass cost about what a step's fixed overhead does
# (~40 us of dispatch on one CPU thread, at ~10 GFLOP/s for 6 FLOPs per sample and weight)
STEP_OVERHEAD = 65_000


@dataclass
class Prepared:
    config: RunConfig  # resolved: the strategy's defaults filled in
    strategy_cls: type[Strategy]
    problem: Problem
    plan: Plan


def prepare(config: RunConfig | dict, problem: Problem | None = None) -> Prepared:
    """The validation phase of a run: the config's own checks, the strategy by name, its options and
    the knobs it uses, the problem, and the plan (batch size, steps). A bad value raises a one-line
    ConfigError here, before anything is recorded."""
    if isinstance(config, dict):
        config = RunConfig.from_dict(config)
    else:
        config.validate()
    strategy_cls = resolve(config.strategy)
    problem = problem if problem is not None else build_problem(config)
    workload_target = getattr(problem, "default_target", None)  # a user workload's own target
    if config.target is None and workload_target is not None:
        config = config.with_updates(target=workload_target)
    strategy_cls.validate(config, problem)
    plan = make_plan(strategy_cls, config, problem)
    strategy_cls.check_plan(config, problem, plan)
    return Prepared(strategy_cls.resolve_config(config, plan, problem), strategy_cls, problem, plan)


def make_plan(strategy_cls, config: RunConfig, problem: Problem) -> Plan:
    """Batch size, steps per epoch and the planned steps (the first budget used up) of a validated run."""
    has_data = getattr(problem, "has_accuracy", False)
    batch_size = strategy_cls.resolve_batch_size(config, problem)
    per_step = strategy_cls.samples_per_step(config, batch_size, problem)
    # a partial last batch still takes a step, so an epoch of mini-batches is ceil(n / B) steps
    steps_per_epoch = (
        math.ceil(problem.n_train / per_step) if per_step <= problem.n_train else problem.n_train / per_step
    )
    if config.order != "shuffled":
        if not has_data or batch_size is None:
            what = "has no training data" if not has_data else "uses the whole training set every step"
            raise ConfigError(
                f"order {config.order!r} orders mini-batches, but {config.strategy} on "
                f"{problem.name} {what}; it is refused rather than recorded as if it applied"
            )
        if per_step == batch_size:  # each class's last batch may be smaller: more steps per epoch
            steps_per_epoch = problem.epoch_steps(batch_size, config.order)
    if not has_data:
        steps_per_epoch = 1.0
    limits = []
    budget = config.budget
    if "steps" in budget:
        limits.append(int(budget["steps"]))
    if "epochs" in budget:
        limits.append(math.ceil(budget["epochs"] * steps_per_epoch))
    if "evaluations" in budget:
        limits.append(_evaluation_steps(strategy_cls, config, problem, int(budget["evaluations"])))
    return Plan(batch_size, steps_per_epoch, min(limits) if limits else None)


def _evaluation_steps(strategy_cls, config: RunConfig, problem: Problem, evaluations: int) -> int:
    """The steps an evaluation budget buys: rounded up, or whole steps only (never exceeding it)."""
    whole = strategy_cls.whole_step_evaluations(config, problem)
    if whole is None:
        return math.ceil(evaluations / strategy_cls.evaluations_per_step(config))
    if evaluations // whole < 1:
        raise ConfigError(
            f"evaluation budget {evaluations} is less than one step of {config.strategy!r} ({whole} evaluations)"
        )
    return evaluations // whole


def eval_interval(config: RunConfig, plan: Plan) -> int:
    """Steps between evaluations: `eval_every`, else about EVAL_POINTS per run (4 per epoch without a step cap)."""
    if config.eval_every is not None:
        return config.eval_every
    if plan.max_steps is not None:
        return max(1, plan.max_steps // EVAL_POINTS)
    return max(1, round(plan.steps_per_epoch / 4))


def planned_work(plan: Plan, problem: Problem) -> float:
    """A run's work in step-overheads, from its plan: steps x (1 + batch size x weights / STEP_OVERHEAD), a step
    of a small net costing about as much in overhead as in arithmetic; infinite when only a wall-clock
    budget bounds the run. Used to hand out the longest tasks of a sweep first."""
    if plan.max_steps is None:
        return math.inf
    batch = plan.batch_size or problem.n_train
    return plan.max_steps * (1 + batch * problem.n_params / STEP_OVERHEAD)
