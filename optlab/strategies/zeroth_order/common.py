"""Shared pieces of the zeroth-order family: the infeasibility error and the ask/tell form of a search."""

from __future__ import annotations

import numpy as np
import torch

from optlab.errors import ConfigError, InfeasibleError


class Infeasible(InfeasibleError, ConfigError):
    """A setting that cannot run at this problem size. Both an InfeasibleError (what it is) and a
    ConfigError (so the CLI, the engine and sweep validation refuse it before any run is recorded)."""


class CandidateSearch:
    """A strategy whose step is one ask/tell round: it asks candidates, is told their losses.

    Runs of such a strategy that differ only in seed can step in lock-step with every row's candidates
    scored in one batched forward pass (`engine.stacked_search.StackedSearchTrainer`), when the
    candidates are scored on the objective all rows share (`shares_objective`)."""

    @classmethod
    def shares_objective(cls, config, plan) -> bool:
        """Whether candidates are scored on the full training loss (the same function in every run)."""
        return False

    @classmethod
    def memory_bytes(cls, config, problem) -> int:
        """What one run keeps in memory beyond the problem (its search state and archive): a stack of K
        runs keeps K times this, so the engine sizes search stacks by it."""
        return 0

    def ask(self) -> torch.Tensor:
        """This round's candidates as an (n, d) tensor; n stays within what the budget has left."""
        raise NotImplementedError

    def tell(self, losses: np.ndarray) -> dict[str, float]:
        """The losses of the candidates last asked; returns the step's metrics (batch_loss)."""
        raise NotImplementedError
