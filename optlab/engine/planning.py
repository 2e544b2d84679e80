"""Everything that can fail on bad input, before any run exists: validate, resolve, build, plan."""

from __future__ import annotations

from dataclasses import dataclass

from optlab.config import RunConfig
from optlab.problem import Problem, build_problem
from optlab.strategies import Plan, resolve

EVAL_POINTS = 50  # evaluations per run when eval_every is not given


@dataclass
class Prepared:
    config: RunConfig          # resolved: the strategy's defaults filled in
    strategy_cls: type
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
    workload_target = getattr(problem, "default_target", None)   # a user workload's own target
    if config.target is None and workload_target is not None:
        config = config.with_updates(target=workload_target)
    plan = strategy_cls.plan(config, problem)
    return Prepared(strategy_cls.resolve_config(config, plan, problem), strategy_cls, problem, plan)


def eval_interval(config: RunConfig, plan: Plan) -> int:
    """Steps between evaluations: `eval_every`, else about EVAL_POINTS per run (4 per epoch without a step cap)."""
    if config.eval_every is not None:
        return config.eval_every
    if plan.max_steps is not None:
        return max(1, plan.max_steps // EVAL_POINTS)
    return max(1, round(plan.steps_per_epoch / 4))
