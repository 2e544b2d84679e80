"""K runs of one candidate search (a zeroth-order strategy with an ask/tell step) in lock-step.

The runs share a strategy, its options, the problem, budget and cadences and differ only in seed
(`runner.group_key`). Each row is the strategy object its run alone would build (same initial
weights, same seeded optimizer: Nevergrad draws from the parametrization's own random state, never
numpy's global one), so each row asks exactly the candidates it would ask alone. Every step all rows
ask, all candidates are scored in one batched forward pass (`problem.losses`: one GEMM over the
shared training set), and each row is told its own losses. Evaluation scores every row's recommendation
in one batched pass per data set. Each row's counters record the work its
run alone would do (the last round asks only what the budget has left, per row).
"""

from __future__ import annotations

from typing import Any

import torch

from optlab.engine.planning import Prepared
from optlab.engine.trainers import Column
from optlab.problem import Counters, stacked
from optlab.problem.problem import SPLITS, NetworkProblem


class StackedSearchTrainer:
    """The Trainer of K prepared runs of one candidate-search configuration (see module doc)."""

    def __init__(self, preps: list[Prepared]):
        self.problem = preps[0].problem
        # each a Strategy and a CandidateSearch (runner.search_stackable)
        self.searches: list[Any] = [
            p.strategy_cls(p.problem, p.problem.init_params(p.config.seed), p.config, p.plan) for p in preps
        ]
        self.row_counters = [Counters() for _ in preps]
        batch = self.problem.batch()  # what problem.losses scores on (None: a test function, one "sample")
        self.size = batch.size if batch is not None else 1

    def step(self) -> dict[str, Column]:
        asked = [search.ask() for search in self.searches]
        losses = self.problem.losses(torch.cat(asked)).double().cpu().numpy()
        best: list[float | None] = []
        start = 0
        for search, ws, counters in zip(self.searches, asked, self.row_counters):
            n = ws.shape[0]
            counters.record(self.size, evaluations=n)
            best.append(search.tell(losses[start : start + n]).get("batch_loss"))
            start += n
        # A round whose candidates all cost inf has no batch loss (alone: no point, not a divergence). The
        # loop takes one column for all rows, so such a round records no batch loss for any row.
        finite = [value for value in best if value is not None]
        return {"batch_loss": finite} if len(finite) == len(best) else {}

    def evaluate(self, splits: tuple[str, ...] = SPLITS) -> list[dict[str, float]]:
        if not isinstance(self.problem, NetworkProblem):
            return [self.problem.evaluate(search.params(), splits) for search in self.searches]
        # every row's recommendation in one batched pass per data set, as the stacked trainer evaluates
        spec, cost, data = self.problem.network, self.problem.cost_name, self.problem.dataset
        layers = stacked.unflatten_parts(spec, stacked.split(spec, self.snapshot()))
        columns: list[torch.Tensor] = []
        for split in splits:
            x, y = data.part(split)
            columns.extend(stacked.loss_accuracy(spec, cost, layers, x, y))
        values = torch.stack(columns).cpu().tolist()  # (2 x splits, K)
        names = [f"{split}_{kind}" for split in splits for kind in ("loss", "accuracy")]
        return [{name: values[i][j] for i, name in enumerate(names)} for j in range(len(self.searches))]

    def params(self, j: int) -> torch.Tensor:
        return self.searches[j].params().detach().clone()

    def snapshot(self) -> torch.Tensor:
        return torch.stack([search.params() for search in self.searches])

    def counters(self, j: int) -> Counters:
        return self.row_counters[j]

    def set_allowance(self, allowance) -> None:
        for search in self.searches:
            search.allowance = allowance

    def drop(self, keep: list[int]) -> None:
        self.searches = [self.searches[j] for j in keep]
        self.row_counters = [self.row_counters[j] for j in keep]
