"""K first-order runs trained as one stacked program (K = 1 included: how `optlab run` trains them).

The runs share a network shape, dataset, batch size and update rule (see `runner.group_key`) and may
differ in seed, learning rate and schedule, momentum / beta1, weight decay and label-noise draw. Their
parameters are the rows of a (K, d) stack stored as two column blocks (`problem.stacked.split`: the
first layer's weights of all rows form one contiguous matrix). Each step gathers every row's own
shuffled mini-batch (the permutations a run alone draws from its seed), computes all K gradients with
batched matrix multiplies and a hand-written backward (`problem.stacked`), and applies the strategy's
update rule in its batched form (`strategies.first_order.rules`), so row k moves as its run would move
alone under torch.optim, up to float rounding. No torch.optim object is built on this path.
"""

from __future__ import annotations

from typing import cast

import torch

from optlab.engine.planning import Prepared
from optlab.problem import Counters, stacked
from optlab.problem.problem import SPLITS, NetworkProblem, epoch_batches
from optlab.strategies.schedules import Schedule


def _learning_rate(prepared: Prepared) -> float:
    """The run's learning rate (prepare() fills in the strategy's default: a stackable rule has one)."""
    if prepared.config.lr is None:
        raise ValueError(f"{prepared.config.strategy}: a stacked run needs a learning rate")
    return prepared.config.lr


class StackedTrainer:
    """The Trainer of K compatible prepared runs; `preps` must be sorted by seed (rows of one seed
    draw the same batches, gathered once)."""

    def __init__(self, preps: list[Prepared]):
        seeds = [p.config.seed for p in preps]
        if seeds != sorted(seeds):
            raise ValueError("StackedTrainer needs its runs sorted by seed")
        first = preps[0]
        problems = [cast(NetworkProblem, p.problem) for p in preps]  # stackable() admits only networks on data
        plan, problem = first.plan, problems[0]
        self.spec, self.cost, self.device = problem.network, problem.cost_name, problem.device
        self.data = problem.dataset
        y_rows = [problem.dataset.y_train for problem in problems]
        self.shared_y = all(y is y_rows[0] or torch.equal(y, y_rows[0]) for y in y_rows)
        self.y_train = y_rows[0] if self.shared_y else torch.stack(y_rows)
        w = torch.stack([p.problem.init_params(p.config.seed) for p in preps])
        rule = first.strategy_cls.batched_rule()
        self.update = rule.stacked(
            stacked.split(self.spec, w), [p.config.momentum for p in preps], [p.config.weight_decay for p in preps]
        )
        self.layers = stacked.unflatten_parts(self.spec, self.update.params)
        self.schedules = [Schedule.of(p.config, _learning_rate(p), plan.steps_per_epoch, plan.max_steps) for p in preps]
        self.constant = all(s.constant for s in self.schedules)
        self.lr_py = [s.base for s in self.schedules]
        self.lr_col = self._column(self.lr_py)
        # seed -> the sampler generator the run alone would use (problem.sampler)
        self.generators: dict[int, torch.Generator] = {}
        for seed in seeds:
            self.generators.setdefault(seed, torch.Generator().manual_seed(seed + 1))
        self.streams = _Streams(seeds, self.device)
        self.batch_size, self.n = plan.batch_size, problem.n_train
        # the rows of one group share their labels when the order reads them (runner.group_key)
        self.order, self.labels = first.config.order, y_rows[0]
        self.upcoming: list[torch.Tensor] = []  # this epoch's remaining (streams, B) index batches, last first
        self.shared_counters = Counters()
        self.taken = 0

    def _column(self, values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=self.update.params[0].dtype, device=self.device).unsqueeze(1)

    def _batch(self):
        if self.batch_size is None:
            return self.data.x_train, self.y_train, self.n
        if not self.upcoming:  # each stream draws the epoch its run alone draws (problem.BatchSampler)
            per_stream = [
                epoch_batches(self.labels, self.batch_size, self.generators[seed], self.order)
                for seed in self.streams.seeds
            ]
            self.upcoming = [torch.stack(batches).to(self.device) for batches in zip(*per_stream)][::-1]
        idx = self.upcoming.pop()  # (streams, B)
        streams = self.streams
        xb = _rows(self.data.x_train, idx if streams.grouped else idx[streams.of_row])
        row_idx = idx if streams.one_per_row else idx[streams.of_row]
        yb = _rows(self.y_train, row_idx) if self.shared_y else self.y_train.gather(1, row_idx)
        return xb, yb, idx.shape[1]

    def step(self):
        if self.constant:
            lr_now, lr_col = self.lr_py, self.lr_col
        else:
            lr_now = [s.lr(self.taken) for s in self.schedules]
            lr_col = self._column(lr_now)
        xb, yb, size = self._batch()
        loss, grads = stacked.loss_and_grads(self.spec, self.cost, self.layers, xb, yb)
        grad_norm = torch.hypot(torch.linalg.vector_norm(grads[0], dim=1), torch.linalg.vector_norm(grads[1], dim=1))
        self.update.step(grads, lr_col, lr_now)
        self.shared_counters.record(size, gradients=1)
        self.taken += 1
        return {"batch_loss": loss, "grad_norm": grad_norm, "lr": lr_now}

    def evaluate(self, splits: tuple[str, ...] = SPLITS) -> list[dict[str, float]]:
        columns: list[torch.Tensor] = []
        for split in splits:
            x, y = self.data.part(split)
            y = self.y_train if split == "train" else y  # the rows' own (noisy) training labels
            columns.extend(stacked.loss_accuracy(self.spec, self.cost, self.layers, x, y))
        values = torch.stack(columns).cpu().tolist()  # (2 x splits, K)
        names = [f"{split}_{kind}" for split in splits for kind in ("loss", "accuracy")]
        return [{name: values[i][j] for i, name in enumerate(names)} for j in range(len(values[0]))]

    def params(self, j: int) -> torch.Tensor:
        return self.update.row(j)

    def snapshot(self) -> torch.Tensor:
        return torch.cat(self.update.params, dim=1)

    def counters(self, j: int) -> Counters:
        return self.shared_counters  # every row does the same work

    def set_allowance(self, allowance) -> None:
        pass  # a first-order step does a fixed amount of work, which the loop's budget check foresees

    def drop(self, keep: list[int]) -> None:
        index = torch.tensor(keep, device=self.device)
        self.update.keep(index, keep)
        self.layers = stacked.unflatten_parts(self.spec, self.update.params)
        if not self.shared_y:
            self.y_train = self.y_train[index]
        seeds = [self.streams.seeds_of_rows[j] for j in keep]
        streams = _Streams(seeds, self.device)
        if self.upcoming:
            kept = torch.tensor([self.streams.seeds.index(s) for s in streams.seeds], device=self.device)
            self.upcoming = [batch[kept] for batch in self.upcoming]
        self.streams = streams
        self.schedules = [self.schedules[j] for j in keep]
        self.lr_py = [self.lr_py[j] for j in keep]
        self.lr_col = self.lr_col[index]


def _rows(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """table[idx] for a 2-D index of rows; index_select copies whole rows (half the time of indexing)."""
    return table.index_select(0, idx.reshape(-1)).view(*idx.shape, *table.shape[1:])


class _Streams:
    """Which batch stream (seed) feeds each stacked row; rows are sorted by seed."""

    def __init__(self, seeds: list[int], device):
        self.seeds_of_rows = list(seeds)
        self.seeds = list(dict.fromkeys(seeds))
        counts = [seeds.count(s) for s in self.seeds]
        self.one_per_row = len(self.seeds) == len(seeds)
        # equal group sizes: the first layer takes one batch per group (stacked.forward's grouped input)
        self.grouped = len(set(counts)) == 1
        self.of_row = torch.tensor([self.seeds.index(s) for s in seeds], device=device)
