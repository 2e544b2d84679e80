"""The one training loop, for one run and for many.

It drives a Trainer (trainers.py) whose K live rows are K tracked runs sharing a plan, budget and
evaluation cadence, and owns everything around the steps:

- recording: each run's tracked run is started with its tags (`optlab.timing` = "alone" or "batched:K"),
  per-step metrics are buffered in memory and handed to the recorders at evaluations, and each run is
  finished with its status, summary and final parameters;
- evaluation every `eval_interval` steps and at the end (train / validation / test loss and accuracy and
  the shared work axes; for batched runs `wall_time_share`: each step's time split between the rows live
  at that step, summed, so the shares of a loop's rows add up to its training time) and the probes (probes.py).
  With `full_eval_every` = N > 1 only every Nth point measures the training and test sets, the others
  validation only (and take only the probes at "evaluations", not those at "full_evaluations"); the
  first and the last point and a run's point of reaching its target (or diverging) always measure all
  three;
- with `target_resolution` = r (and a target), checks of the validation accuracy between evaluation points,
  each time the steps have grown by the fraction r since the last check or point (every step at first):
  nothing is recorded unless a run reaches its target there, when the step becomes an evaluation point
  (every split measured for that run). The time to target is then known to within r of itself, finer
  than a comparison's margin on it, without storing a denser curve;
- the budget (steps, epochs, function evaluations, training seconds), the target (a validation
  accuracy: steps and time to reach it, optionally stopping there);
- divergence: a run is FAILED "diverged: ..." when a batch loss or the training loss becomes non-finite,
  or when the training loss at an evaluation exceeds DIVERGENCE_FACTOR times its initial value; at a
  validation-only point the validation loss is held to the same rule against its own initial value;
- KILLED on Ctrl-C (the interrupt is re-raised after every live run is recorded) and FAILED with the
  error and its traceback when anything inside training raises. A recorder that cannot record a run's
  end does not stop the others from being recorded; its error is raised once all are done.

A run that leaves (diverged, reached its target with stop_at_target) is dropped from the trainer while
the others go on. `wall_time` is the loop's elapsed training time: steps only, evaluation and logging
excluded (as in AlgoPerf).
"""

from __future__ import annotations

import math
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import torch

from optlab.analysis.numbers import significant
from optlab.config import RunConfig
from optlab.engine.planning import Prepared, eval_interval
from optlab.engine.probes import Probe, ProbeInput, probes_for
from optlab.engine.result import RunResult
from optlab.engine.trainers import Column, Trainer
from optlab.problem import Counters, Problem
from optlab.problem.problem import SPLITS
from optlab.strategies import Plan
from optlab.strategies.base import BudgetSpent
from optlab.tracking.accounting import timed

# A run diverges when its training loss exceeds this multiple of its initial training loss (or becomes
# non-finite). Cross-entropy starts near log(10) = 2.3 on 10 classes: 100x is a mean loss of 230, which no
# run that is still learning reaches; the squared-error cost is bounded (at most 10) and so only ever
# diverges to nan or inf.
DIVERGENCE_FACTOR = 100.0
VALIDATION = ("val",)  # what a point between full points measures: the target and early stops read it
OTHER_SPLITS = tuple(s for s in SPLITS if s not in VALIDATION)
EVERY_POINT = ("evaluations", "full_evaluations")  # the probes a full point takes (probes.Probe.at)


class Recorder(Protocol):
    """What the loop asks of a run's recorder: tracking.RunRecorder (MLflow) or tracking.NullRecorder."""

    @property
    def run_id(self) -> str | None: ...

    def start(self, config: Any, problem: Any, plan: Any, extra_tags: dict | None = None) -> Any: ...

    def log(self, step: int, values: dict[str, float]) -> None: ...

    def log_series(self, steps: list[int], columns: dict[str, list[float]]) -> None: ...

    def finish(self, status: str, reason: str | None, summary: dict, params: torch.Tensor | None) -> Any: ...


@dataclass
class Row:
    """One tracked run inside the loop, recorded by its recorder."""

    config: RunConfig
    plan: Plan
    problem: Problem
    family: str
    recorder: Recorder
    tags: dict = field(default_factory=dict)
    probes: list[Probe] = field(default_factory=list)
    result: RunResult = field(init=False, repr=False)  # set when the loop starts
    initial_loss: float | None = None  # the training loss at the first evaluation
    initial_val_loss: float | None = None  # the validation loss there (divergence at validation-only points)
    done: bool = False

    @classmethod
    def of(cls, prep: Prepared, recorder=None, extra_tags: dict | None = None) -> Row:
        from optlab.tracking import NullRecorder

        return cls(
            prep.config,
            prep.plan,
            prep.problem,
            prep.strategy_cls.family,
            recorder if recorder is not None else NullRecorder(),
            dict(extra_tags or {}),
            probes_for(prep.config),
        )


class TrainingLoop:
    def __init__(self, trainer: Trainer, rows: list[Row], progress: bool = False):
        self.trainer, self.rows = trainer, rows
        self.live = list(range(len(rows)))  # the row index of each live trainer row
        self.group = len(rows)
        self.timing = "alone" if self.group == 1 else f"batched:{self.group}"
        first = rows[0]
        self.config, self.plan = first.config, first.plan
        self.budget = first.config.budget  # a property that builds a dict: read once, checked every step
        self.n_train, self.has_accuracy = first.problem.n_train, first.problem.has_accuracy
        self.every = eval_interval(first.config, first.plan)
        self.full_every = first.config.full_eval_every
        self.points = 0  # evaluation points on the grid taken so far
        # between grid points, checks of the target each time the steps grow by this fraction (None: never)
        self.resolution = first.config.target_resolution if first.config.target is not None else None
        self.next_check = 1
        self.last_full = False  # whether the latest point measured every split
        self.log_every = first.config.log_every
        self.steps, self.wall = 0, 0.0
        self.share = 0.0  # training seconds per live row so far: Σ over steps of the step's time / live rows
        self.spent = False  # a strategy found the budget too small for its next piece of work
        self.step_started = 0.0
        trainer.set_allowance(self.affords)
        self.pending: list[tuple[int, dict[str, Column]]] = []  # per-step metrics not yet handed over
        n_updates = max((p.updates for row in rows for p in row.probes), default=0)
        self.updates: deque[torch.Tensor] | None = deque(maxlen=n_updates) if n_updates else None
        # a full-batch step's batch loss is the training loss itself: checked for divergence every step
        self.full_batch = (
            first.plan.batch_size is None and self.has_accuracy and first.family in ("first-order", "second-order")
        )
        self.bar = self._progress_bar() if progress else None
        self.recording_error: Exception | None = None  # the first recorder that could not record a run's end

    # ---- the loop ---------------------------------------------------------------------------
    def run(self) -> list[RunResult]:
        for row in self.rows:
            row.result = RunResult(row.config, "RUNNING", None, 0, 0.0, {}, timing=self.timing)
            tags = {"optlab.family": row.family, "optlab.timing": self.timing, **row.tags}
            row.recorder.start(row.config, row.problem, row.plan, extra_tags=tags)
        try:
            self.evaluate()
            while self.live and not self.budget_used():
                self.step()
                if self.steps % self.every == 0 and self.live:
                    self.evaluate(last=self.budget_used())
                elif self.resolution is not None and self.live and self.steps >= self.next_check:
                    self.check_target()
            if self.live and self.rows[self.live[0]].result.history[-1]["step"] != self.steps:
                self.evaluate(last=True)
            elif self.live and not self.last_full:  # the budget ended on a validation-only point
                self.complete(list(range(len(self.live))))
            self.hand_over()
            for j in range(len(self.live)):
                self.finish(j, "FINISHED", None)
        except KeyboardInterrupt:
            self.keep_pending()
            self.finish_live("KILLED", "interrupted")
            raise
        except Exception as exc:  # a broken run is recorded and reported, never silently lost
            self.keep_pending()
            self.finish_live("FAILED", f"error: {type(exc).__name__}: {exc}", traceback.format_exc())
        finally:
            # the strategy held the loop's `affords`: a cycle that would keep the strategy (and a Nevergrad
            # optimizer's scipy thread, which hangs the interpreter at exit) alive until a garbage collection
            self.trainer.set_allowance(None)
            if self.bar is not None:
                self.bar.close()
        if self.recording_error is not None:  # the results exist, but the store does not hold them all
            raise self.recording_error
        return [row.result for row in self.rows]

    def budget_used(self) -> bool:
        """The rows of one loop share their budget; row 0's counters stand for all (equal work)."""
        budget, plan, counters = self.budget, self.plan, self.trainer.counters(0)
        return self.spent or (
            (plan.max_steps is not None and self.steps >= plan.max_steps)
            or ("epochs" in budget and self.has_accuracy and counters.samples_seen >= budget["epochs"] * self.n_train)
            or ("evaluations" in budget and counters.function_evals >= budget["evaluations"])
            or ("seconds" in budget and self.wall >= budget["seconds"])
        )

    def affords(self, samples: int, evaluations: int) -> bool:
        """Whether `samples` more training samples (`evaluations` more loss values) fit in the budget, asked
        by a strategy during its step (seconds: whether time is left now); a refusal ends the run."""
        budget, counters = self.budget, self.trainer.counters(0)
        over = (
            (
                "epochs" in budget
                and self.has_accuracy
                and counters.samples_seen + samples > budget["epochs"] * self.n_train
            )
            or ("evaluations" in budget and counters.function_evals + evaluations > budget["evaluations"])
            or ("seconds" in budget and self.wall + time.perf_counter() - self.step_started >= budget["seconds"])
        )
        self.spent = self.spent or over
        return not over

    def step(self) -> None:
        before = None
        if self.updates is not None:
            if self.near_evaluation():
                before = self.trainer.snapshot()
            else:
                self.updates.clear()  # probes see only the latest consecutive updates
        started = self.step_started = time.perf_counter()
        try:
            values = self.trainer.step()
        except BudgetSpent:  # nothing done: the step is not counted
            self.add_time(time.perf_counter() - started)
            self.spent = True
            return
        self.add_time(time.perf_counter() - started)
        self.steps += 1
        if before is not None and self.updates is not None:
            self.updates.append(self.trainer.snapshot() - before)
        if self.steps % self.log_every == 0:
            self.pending.append((self.steps, values))
        loss = values.get("batch_loss")
        if loss is not None:
            bad = {j: f"diverged: batch loss became {_value(loss, j)} at step {self.steps}" for j in _non_finite(loss)}
            if self.full_batch:
                bad = {**self.above_limit(loss), **bad}
            if bad:
                self.hand_over()
                for j, reason in sorted(bad.items()):
                    self.finish(j, "FAILED", reason)
                self.drop_done()
        if self.bar is not None:
            self.bar.update(1)

    def add_time(self, seconds: float) -> None:
        """A step's training time: the loop's, and each live row's share of it (rows that left earlier
        took no part in the step, so a loop's shares add up to its time however its rows leave)."""
        self.wall += seconds
        self.share += seconds / len(self.live)

    def near_evaluation(self) -> bool:
        """Whether the step about to be taken may be one of the last `updates.maxlen` before an evaluation
        (so its update is copied only then). A run whose end cannot be foreseen (a time or evaluation
        budget) copies every update."""
        assert self.updates is not None and self.updates.maxlen is not None  # asked only when probes keep updates
        if self.resolution is not None:  # a target check may become a point at any step
            return True
        n, upcoming = self.updates.maxlen, self.steps + 1
        if -(-upcoming // self.every) * self.every - upcoming < n:
            return True
        end, budget = self.plan.max_steps, self.config.budget
        return end is None or "seconds" in budget or "evaluations" in budget or end - upcoming <= n

    def above_limit(self, loss: Column) -> dict[int, str]:
        """Live rows whose full-batch loss (the training loss) exceeds DIVERGENCE_FACTOR x its initial value."""
        values = loss.tolist() if isinstance(loss, torch.Tensor) else list(loss)
        out = {}
        for j, (r, value) in enumerate(zip(self.live, values)):
            initial = self.rows[r].initial_loss
            if initial is not None and initial > 0 and value > DIVERGENCE_FACTOR * initial:
                out[j] = (
                    f"diverged: train loss {significant(value, 4)} exceeds {DIVERGENCE_FACTOR:g} x its initial value "
                    f"{significant(initial, 4)} at step {self.steps}"
                )
        return out

    # ---- evaluation, target, divergence -----------------------------------------------------------
    def evaluate(self, last: bool = False, on_grid: bool = True) -> None:
        """An evaluation point: on the grid (every `self.every` steps, counted for `full_eval_every`), or
        off it where a target check found a run reaching its target (full only when every point is)."""
        full = last or (self.points % self.full_every == 0 if on_grid else self.full_every == 1)
        with timed("evaluation"):
            self._evaluate(full=full)
        self.points += on_grid
        if self.resolution is not None:
            self.next_check = max(self.steps + 1, math.ceil(self.steps * (1 + self.resolution)))

    def check_target(self) -> None:
        """Validation accuracy between grid points (not recorded): where a run first reaches its target,
        the step becomes an evaluation point. Once every live run has reached it, checks stop."""
        assert self.resolution is not None  # asked only while checks are on
        self.next_check = max(self.steps + 1, math.ceil(self.steps * (1 + self.resolution)))
        waiting = [j for j, r in enumerate(self.live) if self.rows[r].result.steps_to_target is None]
        if not waiting:
            self.resolution = None
            return
        with timed("evaluation"):
            points = self.trainer.evaluate(VALIDATION)
        if any(_reached(self.rows[self.live[j]].config, points[j]) for j in waiting):
            self.evaluate(last=self.budget_used(), on_grid=False)

    def _evaluate(self, full: bool) -> None:
        self.hand_over()
        self.last_full = full
        points = self.trainer.evaluate(SPLITS if full else VALIDATION)
        notable = []
        if not full:  # a run reaching its target or diverging here has all three measured at that point
            notable = [j for j, point in enumerate(points) if self.notable(self.rows[self.live[j]], point)]
            if notable:
                others = self.trainer.evaluate(OTHER_SPLITS)
                for j in notable:
                    points[j] = {**others[j], **points[j]}
        for j, r in enumerate(self.live):
            row, steps = self.rows[r], self.steps
            point = {
                **points[j],
                **work_metrics(
                    self.trainer.counters(j), self.n_train, self.wall, epoch=None if self.has_accuracy else steps
                ),
            }
            if self.group > 1:
                point["wall_time_share"] = self.share
            measured, failure = self.measure(row, j, EVERY_POINT if full or j in notable else ("evaluations",))
            row.recorder.log(steps, {**point, **measured})
            row.result.history.append({"step": steps, **point, **measured})
            if failure:
                self.finish(j, "FAILED", failure)
                continue
            diverged = self.divergence(row, point, full)
            if diverged:
                self.finish(j, "FAILED", diverged)
            elif _reached(row.config, point) and row.result.steps_to_target is None:
                row.result.steps_to_target, row.result.time_to_target = steps, self.wall
                row.recorder.log(steps, {"steps_to_target": steps, "time_to_target": self.wall})
                if row.config.stop_at_target:
                    self.finish(j, "FINISHED", None)
        if self.bar is not None and self.group == 1 and self.live:
            self.bar.set_postfix_str(_postfix(self.rows[self.live[0]].result.history[-1]), refresh=False)
        self.drop_done()

    def notable(self, row: Row, point: dict[str, float]) -> bool:
        """Whether the run first reaches its target or diverges at this validation-only point (so the point
        measures every split). Asked before the point is recorded; it changes nothing."""
        reached = row.result.steps_to_target is None and _reached(row.config, point)
        return reached or self.divergence(row, point, full=False) is not None

    def divergence(self, row: Row, point: dict[str, float], full: bool = True) -> str | None:
        """The reason a run diverged at this evaluation, or None: its training loss (at a validation-only
        point, `full` False: its validation loss) non-finite or above DIVERGENCE_FACTOR x the same loss at
        the first point, which measures every split and sets both initial values."""
        if row.initial_loss is None and row.initial_val_loss is None:
            row.initial_loss, row.initial_val_loss = point.get("train_loss"), point.get("val_loss")
        if not full and "val_loss" in point:
            loss, name, initial = point["val_loss"], "validation", row.initial_val_loss
        elif "train_loss" in point:
            loss, name, initial = point["train_loss"], "train", row.initial_loss
        else:
            return None
        if not math.isfinite(loss):
            return f"diverged: {name} loss became {loss} at step {self.steps}"
        if initial is not None and initial > 0 and loss > DIVERGENCE_FACTOR * initial:
            return (
                f"diverged: {name} loss {significant(loss, 4)} exceeds {DIVERGENCE_FACTOR:g} x its initial value "
                f"{significant(initial, 4)} at step {self.steps}"
            )
        return None

    def complete(self, rows: list[int]) -> None:
        """Measure the training and test sets (and take the probes) at the latest, validation-only point of
        live rows `rows`, recorded at its step and merged into the point."""
        with timed("evaluation"):
            others = self.trainer.evaluate(OTHER_SPLITS)
            for j in rows:
                row = self.rows[self.live[j]]
                measured, failure = self.measure(row, j, ("full_evaluations",))
                row.recorder.log(self.steps, {**others[j], **measured})
                row.result.history[-1].update({**others[j], **measured})
                if failure:
                    self.finish(j, "FAILED", failure)
        self.last_full = True
        self.drop_done()

    def measure(self, row: Row, j: int, at: tuple[str, ...]) -> tuple[dict[str, float], str | None]:
        """Run the row's probes taken `at` this point: their metrics, and the failure reason when one
        raised (the requested measurement is then missing, and the run must say so)."""
        probes = [p for p in row.probes if p.at in at]
        if not probes:
            return {}, None
        params = self.trainer.params(j)
        updates = tuple(u[j] for u in self.updates) if self.updates is not None else ()
        measured = {}
        with timed("evaluation"):  # measurement, also at the run's end (curvature), not training nor idle
            for probe in probes:
                recent = updates[len(updates) - probe.updates :] if probe.updates else ()
                try:
                    measured.update(probe.measure(ProbeInput(row.problem, row.config, self.steps, params, recent)))
                except Exception as exc:
                    return measured, f"probe {probe.name}: {type(exc).__name__}: {exc}"
        row.result.probes.update(measured)
        return measured, None

    # ---- recording ----------------------------------------------------------------------------------
    def keep_pending(self) -> None:
        """Hand over the per-step points of a run ending FAILED or KILLED (its curve is its evidence), unless
        that fails too: its end is recorded either way."""
        try:
            self.hand_over()
        except Exception:
            self.pending.clear()

    def hand_over(self) -> None:
        """Give the buffered per-step metrics to the recorders (off the timed path)."""
        if not self.pending:
            return
        keys = dict.fromkeys(key for _, values in self.pending for key in values)
        for key in keys:
            at = [s for s, values in self.pending if key in values]
            per_row = _by_row([values[key] for _, values in self.pending if key in values])
            for j, r in enumerate(self.live):
                self.rows[r].recorder.log_series(at, {key: per_row[j]})
        self.pending.clear()

    def finish(self, j: int, status: str, reason: str | None, trace: str | None = None) -> None:
        """Record live row j's end; the trainer drops it at the next drop_done."""
        row = self.rows[self.live[j]]
        if status == "FINISHED":
            measured, failure = self.measure(row, j, ("end",))
            if measured:
                row.recorder.log(self.steps, measured)
            if failure:
                status, reason = "FAILED", failure
        result = row.result
        result.status, result.reason, result.traceback = status, reason, trace
        result.steps, result.wall_time = self.steps, self.wall
        result.final = result.history[-1] if result.history else {}
        result.params = self.trainer.params(j)
        result.counters = self.trainer.counters(j).as_dict()
        row.done = True
        summary = {**run_summary(result), **{k: round(v, 6) for k, v in result.probes.items()}}
        if self.group > 1:
            summary["wall_time_share"] = round(self.share, 4)
        try:
            row.recorder.finish(status, reason, summary, result.params if status != "KILLED" else None)
        except Exception as exc:  # the other runs are still recorded; the caller hears about it at the end
            self.recording_error = self.recording_error or exc
        result.run_id = row.recorder.run_id

    def finish_live(self, status: str, reason: str, trace: str | None = None) -> None:
        for j, r in enumerate(self.live):
            if not self.rows[r].done:
                self.finish(j, status, reason, trace)

    def drop_done(self) -> None:
        keep = [j for j, r in enumerate(self.live) if not self.rows[r].done]
        if len(keep) == len(self.live):
            return
        self.hand_over()
        if keep:
            self.trainer.drop(keep)
            if self.updates is not None:
                index = torch.tensor(keep)
                self.updates = deque((u[index] for u in self.updates), maxlen=self.updates.maxlen)
        self.live = [self.live[j] for j in keep]

    def _progress_bar(self):
        from tqdm import tqdm

        label = self.config.label() if self.group == 1 else f"{self.config.strategy} x{self.group}"
        return tqdm(
            total=self.plan.max_steps, desc=label, unit="step", leave=False, dynamic_ncols=True, mininterval=0.5
        )


def work_metrics(counters: Counters, n_train: int, wall: float, epoch: float | None = None) -> dict[str, float]:
    """What an evaluation point records about the work done so far (the shared cost axes)."""
    point = {
        "samples_seen": counters.samples_seen,
        "evaluations": counters.function_evals,
        "gradient_evaluations": counters.gradient_evals,
        "wall_time": wall,
        "gradient_equivalents": counters.gradient_equivalents(n_train),
        "epoch": counters.samples_seen / n_train if epoch is None else epoch,
    }
    if counters.curvature_products:
        point["curvature_products"] = counters.curvature_products
    return point


def run_summary(result: RunResult) -> dict:
    """The summary tags of a finished run (its steps and wall_time already set)."""
    return {
        "steps": result.steps,
        "wall_time": round(result.wall_time, 4),
        "steps_to_target": result.steps_to_target,
        "time_to_target": None if result.time_to_target is None else round(result.time_to_target, 4),
    }


def _reached(config: RunConfig, point: dict[str, float]) -> bool:
    """The target is a validation accuracy: reaching it may stop a run, so it must not read the test set."""
    return config.target is not None and point.get("val_accuracy", -1.0) >= config.target


def _non_finite(column: Column) -> list[int]:
    """The rows whose value is nan or inf (one device sync for a tensor)."""
    if isinstance(column, torch.Tensor):
        if math.isfinite(float(column.sum())):  # one kernel; a sum that overflows is checked row by row
            return []
        return [j for j, v in enumerate(column.tolist()) if not math.isfinite(v)]
    return [j for j, v in enumerate(column) if not math.isfinite(v)]


def _value(column: Column, j: int) -> float:
    return float(column[j])


def _by_row(columns: list[Column]) -> list[list[float]]:
    """Per-step columns (one value per live row each) -> one list of per-step values per row."""
    if isinstance(columns[0], torch.Tensor):
        return torch.stack(cast(list[torch.Tensor], columns)).T.cpu().tolist()
    return [list(values) for values in zip(*columns)]


def _postfix(point: dict[str, float]) -> str:
    text = f"loss {point['train_loss']:.4f}" if "train_loss" in point else ""
    if "val_accuracy" in point:
        text += f" val acc {point['val_accuracy']:.3f}"
    return text
