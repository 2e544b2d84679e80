"""Shared pieces of the zeroth-order family: the infeasibility error and whole-step planning."""

from __future__ import annotations

import math

from optlab.errors import ConfigError, InfeasibleError
from optlab.strategies.base import Plan, Strategy


class Infeasible(InfeasibleError, ConfigError):
    """A setting that cannot run at this problem size. Both an InfeasibleError (what it is) and a
    ConfigError (so the CLI, the engine and sweep validation refuse it before any run is recorded)."""


def plan_whole_steps(cls, config, problem, evaluations_per_step: int) -> Plan:
    """The base plan, but an evaluation budget only buys whole steps, so the budget is never
    exceeded (one finite-difference gradient is 2d evaluations; half of one is no step at all)."""
    plan = Strategy.plan.__func__(cls, config, problem)
    budget = config.budget
    if "evaluations" not in budget:
        return plan
    evaluations = int(budget["evaluations"])
    limits = [evaluations // evaluations_per_step]
    if limits[0] < 1:
        raise ConfigError(f"evaluation budget {evaluations} is less than one step of {config.strategy!r} "
                          f"({evaluations_per_step} evaluations)")
    if "steps" in budget:
        limits.append(int(budget["steps"]))
    if "epochs" in budget:
        limits.append(math.ceil(budget["epochs"] * plan.steps_per_epoch))
    return Plan(plan.batch_size, plan.steps_per_epoch, min(limits))
