"""Batched training: K first-order runs that share a network shape and dataset train as one program.

Runs may differ in seed, learning rate (and schedule), momentum / beta1, weight decay, label-noise draw,
target. Their parameters are the rows of a (K, d) stack, stored as two column blocks (stacked.split: the
first layer's weights of all rows form one contiguous matrix); each step gathers every row's own shuffled
mini-batch (the same permutations a single run draws), computes all K gradients with batched matrix
multiplies (optlab.problem.stacked) and applies torch.optim's update per row (stacked_optim). Each row
is still its own tracked run: the same params, tags, per-step and per-evaluation metrics, summary and
final parameters that `engine.run` records for it alone. A row that diverges is recorded FAILED with its
reason and dropped from the stack while the others go on; so is a row that stops at its target.

`wall_time` of a batched run is the elapsed training time of its whole group (tagged `optlab.batched`
with the group size), since the rows advance together.
"""

from __future__ import annotations

import math
import time
import traceback

import torch

from optlab.config import RunConfig
from optlab.engine.runner import (Prepared, RunResult, _budget_used, _reached, eval_interval, prepare, run,
                                  run_summary, work_metrics)
from optlab.engine.stacked_optim import RULES, StackedOptimizer, lr_table
from optlab.problem import Counters, build_problem
from optlab.problem import stacked
from optlab.problem.problem import NetworkProblem

MAX_GROUP = 64  # rows per stacked program: bounds memory (K * batch * 784 gathered inputs)
MAX_STACKED = 1 << 24  # parameters per stacked program (K * d): ~64 MB a copy in float32


def group_key(prep: Prepared) -> tuple | None:
    """Runs with equal keys can train together; None: this run needs the single-run engine."""
    c, plan = prep.config, prep.plan
    cls = prep.strategy_cls
    if cls.family != "first-order" or cls.name not in RULES or c.strategy != cls.name or c.options:
        return None
    if not isinstance(prep.problem, NetworkProblem) or "seconds" in c.budget or plan.max_steps is None:
        return None
    return (c.strategy, c.dataset, c.hidden, c.activation, c.init, c.cost, c.variant,
            c.noise_seed if c.variant != "none" else None, c.standardize, c.train_size, c.dtype, c.device,
            plan.batch_size, plan.max_steps, tuple(sorted(c.budget.items())), eval_interval(c, plan),
            c.log_every, prep.problem.n_train)


def run_many(configs: list, make_recorder=None, progress: bool = False, extra_tags: list[dict] | None = None,
             batched: bool = True, max_group: int = MAX_GROUP) -> list[RunResult]:
    """Run every config, each its own tracked run; compatible ones train together when `batched`.
    Every config is validated and planned first, so a bad value raises before any run is recorded."""
    if not batched:
        results = []
        for i, config in enumerate(configs):
            recorder = make_recorder(config) if make_recorder is not None else None
            results.append(run(config, recorder=recorder, progress=progress,
                               extra_tags=extra_tags[i] if extra_tags else None))
        return results
    configs = [RunConfig.from_dict(c) if isinstance(c, dict) else c for c in configs]
    problems: dict[tuple, object] = {}   # configs describing the same problem share one (and its data)
    preps = []
    for c in configs:
        c.validate()
        key = (c.dataset, c.label_noise, c.variant, c.standardize, c.noise_seed, c.train_size, c.hidden,
               c.activation, c.init, c.cost, c.dtype, c.device)
        if key not in problems:
            problems[key] = build_problem(c)
        preps.append(prepare(c, problems[key]))
    groups: dict[tuple, list[int]] = {}
    singles = []
    for i, prep in enumerate(preps):
        key = group_key(prep)
        if key is None:
            singles.append(i)
        else:
            groups.setdefault(key, []).append(i)
    results: list[RunResult | None] = [None] * len(configs)
    tags = lambda i: extra_tags[i] if extra_tags else None
    for members in groups.values():
        size = max(1, min(max_group, MAX_STACKED // preps[members[0]].problem.n_params))
        for start in range(0, len(members), size):
            chunk = members[start:start + size]
            recorders = [make_recorder(configs[i]) if make_recorder is not None else None for i in chunk]
            outs = run_group([preps[i] for i in chunk], recorders, progress, [tags(i) for i in chunk])
            for i, out in zip(chunk, outs):
                results[i] = out
    for i in singles:
        recorder = make_recorder(configs[i]) if make_recorder is not None else None
        results[i] = run(configs[i], recorder=recorder, progress=progress, problem=preps[i].problem,
                         extra_tags=tags(i))
    return results


class _Row:
    """The bookkeeping of one run inside a group."""

    def __init__(self, prep: Prepared, recorder):
        self.config, self.recorder = prep.config, recorder
        self.result = RunResult(prep.config, "RUNNING", None, 0, 0.0, {}, run_id=recorder.run_id)
        self.done = False


def run_group(preps: list[Prepared], recorders: list | None = None, progress: bool = False,
              extra_tags: list[dict | None] | None = None) -> list[RunResult]:
    """Train K compatible prepared runs together (see group_key); one RunResult per run, in order."""
    from optlab.tracking import NullRecorder

    k = len(preps)
    recorders = [r if r is not None else NullRecorder() for r in (recorders or [None] * k)]
    extra_tags = extra_tags or [None] * k
    first = preps[0]
    config0, plan, problem0 = first.config, first.plan, first.problem
    spec, cost, device = problem0.network, problem0.cost_name, problem0.device
    data = problem0.dataset
    # stacked rows sorted by seed: runs with one seed draw the same batches, gathered once per seed
    live = sorted(range(k), key=lambda i: preps[i].config.seed)   # row index of each stacked row
    y_rows = [preps[i].problem.dataset.y_train for i in live]
    shared_y = all(y is y_rows[0] or torch.equal(y, y_rows[0]) for y in y_rows)
    y_train = y_rows[0] if shared_y else torch.stack(y_rows)

    rows = []
    for i, (prep, recorder) in enumerate(zip(preps, recorders)):
        prep.problem.counters = Counters()
        tags = {"optlab.family": prep.strategy_cls.family, **(extra_tags[i] or {})}
        if k > 1:
            tags["optlab.batched"] = str(k)
        recorder.start(prep.config, prep.problem, prep.plan, extra_tags=tags)
        rows.append(_Row(prep, recorder))
    w = torch.stack([preps[i].problem.init_params(preps[i].config.seed) for i in live])
    optimizer = StackedOptimizer(config0.strategy, stacked.split(spec, w), [preps[i].config for i in live])
    layers = stacked.unflatten_parts(spec, optimizer.params)
    table = lr_table([p.config for p in preps], plan.steps_per_epoch, plan.max_steps)
    lr_py = [preps[i].config.lr for i in live]
    lr_col = torch.tensor(lr_py, dtype=w.dtype, device=device).unsqueeze(1)
    generators = {}                             # seed -> the sampler generator a single run would use
    for i in live:
        generators.setdefault(preps[i].config.seed, torch.Generator().manual_seed(preps[i].config.seed + 1))
    streams = _Streams([preps[i].config.seed for i in live], device)
    batch_size, n = plan.batch_size, problem0.n_train
    order, pos = None, n
    counters = Counters()
    problem0.counters = counters  # the shared budget check reads it
    every, log_every = eval_interval(config0, plan), config0.log_every
    pending: list[tuple[int, torch.Tensor, torch.Tensor, list[float]]] = []   # per-step metrics, buffered
    steps, wall = 0, 0.0
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=plan.max_steps, desc=f"{config0.strategy} x{k}", unit="step", leave=False,
                   dynamic_ncols=True, mininterval=0.5)

    def hand_over() -> None:
        """Give buffered per-step metrics to the recorders (off the timed path)."""
        if not pending:
            return
        at = [s for s, _, _, _ in pending]
        losses = torch.stack([v for _, v, _, _ in pending]).T.cpu().tolist()   # (K, steps)
        norms = torch.stack([v for _, _, v, _ in pending]).T.cpu().tolist()
        for j, r in enumerate(live):
            row = rows[r]
            columns = {"batch_loss": losses[j], "grad_norm": norms[j], "lr": [lrs[j] for *_, lrs in pending]}
            if hasattr(row.recorder, "log_series"):
                row.recorder.log_series(at, columns)
            else:
                for s, i in zip(at, range(len(at))):
                    row.recorder.log(s, {key: col[i] for key, col in columns.items()})
        pending.clear()

    def evaluate() -> None:
        hand_over()
        train_loss, train_acc = stacked.loss_accuracy(spec, cost, layers, data.x_train, y_train)
        val_loss, val_acc = stacked.loss_accuracy(spec, cost, layers, data.x_val, data.y_val)
        test_loss, test_acc = stacked.loss_accuracy(spec, cost, layers, data.x_test, data.y_test)
        values = torch.stack([train_loss, train_acc, val_loss, val_acc, test_loss, test_acc]).cpu().tolist()
        common = work_metrics(counters, n, wall)
        names = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy")
        for j, r in enumerate(live):
            row = rows[r]
            point = {**{name: values[i][j] for i, name in enumerate(names)}, **common}
            row.recorder.log(steps, point)
            row.result.history.append({"step": steps, **point})
            if not math.isfinite(point["train_loss"]):
                finish(row, j, "FAILED", f"diverged: train loss became {point['train_loss']} at step {steps}")
            elif _reached(row.config, point) and row.result.steps_to_target is None:
                row.result.steps_to_target, row.result.time_to_target = steps, wall
                row.recorder.log(steps, {"steps_to_target": steps, "time_to_target": wall})
                if row.config.stop_at_target:
                    finish(row, j, "FINISHED", None)

    def finish(row: _Row, j: int, status: str, reason: str | None) -> None:
        result = row.result
        result.status, result.reason = status, reason
        result.steps, result.wall_time = steps, wall
        result.final = result.history[-1] if result.history else {}
        result.params = optimizer.row(j)
        result.counters = counters.as_dict()
        row.recorder.finish(status, reason, run_summary(result), result.params if status != "KILLED" else None)
        row.done = True

    def drop_finished() -> None:
        nonlocal live, y_train, order, lr_col, lr_py, layers, streams
        keep = [j for j, r in enumerate(live) if not rows[r].done]
        if len(keep) == len(live):
            return
        hand_over()
        index = torch.tensor(keep, device=device)
        optimizer.keep(index, keep)
        layers = stacked.unflatten_parts(spec, optimizer.params)
        if not shared_y:
            y_train = y_train[index]
        new_streams = _Streams([preps[live[j]].config.seed for j in keep], device)
        if order is not None:
            order = order[torch.tensor([streams.seeds.index(seed) for seed in new_streams.seeds], device=device)]
        streams = new_streams
        lr_py = [lr_py[j] for j in keep]
        lr_col = lr_col[index]
        live = [live[j] for j in keep]

    try:
        evaluate()
        drop_finished()
        while live and not _budget_used(config0, problem0, steps, wall, plan):
            started = time.perf_counter()
            if table is not None:
                lr_now = [table[steps][live_r] for live_r in live]
                lr_step = torch.tensor(lr_now, dtype=w.dtype, device=device).unsqueeze(1)
            else:
                lr_now, lr_step = lr_py, lr_col
            if batch_size is None:
                xb, yb, size = data.x_train, y_train, n
            else:
                if pos >= n:
                    order = torch.stack([torch.randperm(n, generator=generators[seed])
                                         for seed in streams.seeds]).to(device)
                    pos = 0
                idx = order[:, pos:pos + batch_size]             # (streams, B)
                pos += batch_size
                xb = data.x_train[idx] if streams.grouped else data.x_train[idx[streams.of_row]]
                row_idx = idx if streams.one_per_row else idx[streams.of_row]
                yb = y_train[row_idx] if shared_y else y_train.gather(1, row_idx)
                size = idx.shape[1]
            loss, grads = stacked.loss_and_grads(spec, cost, layers, xb, yb)
            grad_norm = torch.stack([g.norm(dim=1) for g in grads], dim=1).norm(dim=1)
            optimizer.step(grads, lr_step, lr_now)
            counters.record(size, gradients=1)
            finite = math.isfinite(float(loss.sum()))
            wall += time.perf_counter() - started
            steps += 1
            if steps % log_every == 0:
                pending.append((steps, loss, grad_norm, lr_now))
            if not finite:
                hand_over()
                for j, value in enumerate(loss.tolist()):
                    if not math.isfinite(value):
                        finish(rows[live[j]], j, "FAILED", f"diverged: batch loss became {value} at step {steps}")
                drop_finished()
            if bar is not None:
                bar.update(1)
            if steps % every == 0 and live:
                evaluate()
                drop_finished()
        if live and rows[live[0]].result.history[-1]["step"] != steps:
            evaluate()
            drop_finished()
        hand_over()
        for j, r in enumerate(live):
            finish(rows[r], j, "FINISHED", None)
    except KeyboardInterrupt:
        for j, r in enumerate(live):
            if not rows[r].done:
                finish(rows[r], j, "KILLED", "interrupted")
        raise
    except Exception as exc:  # a broken group is recorded and reported, never silently lost
        trace = traceback.format_exc()
        for j, r in enumerate(live):
            if not rows[r].done:
                finish(rows[r], j, "FAILED", f"error: {type(exc).__name__}: {exc}")
                rows[r].result.traceback = trace
    finally:
        if bar is not None:
            bar.close()
    return [row.result for row in rows]


class _Streams:
    """Which batch stream (seed) feeds each stacked row; rows are sorted by seed."""

    def __init__(self, seeds: list[int], device):
        self.seeds = list(dict.fromkeys(seeds))
        counts = [seeds.count(s) for s in self.seeds]
        self.one_per_row = len(self.seeds) == len(seeds)
        # equal group sizes: the first layer takes one batch per group (stacked.forward's grouped input)
        self.grouped = len(set(counts)) == 1
        self.of_row = torch.tensor([self.seeds.index(s) for s in seeds], device=device)
