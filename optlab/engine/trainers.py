"""The narrow interface between the training loop and what steps the runs, and its reference trainer.

A trainer steps K runs together (its live rows, numbered 0..K-1; `drop` renumbers them). The loop
owns everything else: budget, evaluation cadence, target, divergence, probes, recording, KILLED.
Two trainers implement it: `StrategyTrainer` (one run of any Strategy: the torch.optim reference for
the first-order family) and `engine.stacked_trainer.StackedTrainer` (K compatible first-order runs as
one stacked program).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from optlab.engine.planning import Prepared
from optlab.problem import Counters
from optlab.problem.problem import SPLITS

# one value per live row: a (K,) tensor (kept on device until the loop hands metrics over) or a list
Column = torch.Tensor | Sequence[float]


class Trainer(Protocol):
    def step(self) -> dict[str, Column]:
        """One optimizer step of every live row. Returns per-step metrics, one value per row:
        `batch_loss` (what divergence is checked on), `grad_norm`, `lr`, and any strategy extras."""

    def evaluate(self, splits: tuple[str, ...] = SPLITS) -> list[dict[str, float]]:
        """Loss and accuracy on each of `splits` (train, validation, test by default; uncounted), one dict
        per live row."""

    def params(self, j: int) -> torch.Tensor:
        """Row j's current parameters as a flat vector (a copy)."""

    def snapshot(self) -> torch.Tensor:
        """Every live row's parameters as a (K, d) copy (taken only when a probe asks for updates)."""

    def counters(self, j: int) -> Counters:
        """The work row j has done so far (budgets and work metrics read it)."""

    def set_allowance(self, allowance) -> None:
        """The loop's budget check (samples, evaluations) -> bool, for steps that do variable work."""

    def drop(self, keep: list[int]) -> None:
        """Keep only the listed live rows (the others' runs have finished); they become rows 0..len-1."""


class StrategyTrainer:
    """One run of any Strategy (K = 1), stepped through `strategy.step()`: the reference trainer."""

    def __init__(self, prep: Prepared):
        config, problem = prep.config, prep.problem
        self.problem = problem
        problem.counters = Counters()
        torch.manual_seed(config.seed)
        self.strategy = prep.strategy_cls(problem, problem.init_params(config.seed), config, prep.plan)

    def step(self) -> dict[str, Column]:
        observed = self.strategy.step()
        if "lr" not in observed and self.strategy.lr is not None:
            observed["lr"] = self.strategy.lr
        return {key: [value] for key, value in observed.items() if value is not None}

    def evaluate(self, splits: tuple[str, ...] = SPLITS) -> list[dict[str, float]]:
        return [self.problem.evaluate(self.strategy.params(), splits)]

    def params(self, j: int) -> torch.Tensor:
        return self.strategy.params().detach().clone()

    def snapshot(self) -> torch.Tensor:
        return self.params(0).unsqueeze(0)

    def counters(self, j: int) -> Counters:
        return self.problem.counters

    def set_allowance(self, allowance) -> None:
        self.strategy.allowance = allowance

    def drop(self, keep: list[int]) -> None:
        pass  # one row: once it is done the loop stops
