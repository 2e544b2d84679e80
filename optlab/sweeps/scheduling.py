"""How a sweep phase is cut into worker tasks, and in which order they are handed out.

Points the engine can stack (same problem, strategy, batch size) go together, at most MAX_CHUNK per task,
in chunks of equal size small enough that every worker gets work. A point that trains alone (an unbatched
phase, a rerun seed timed alone, or a strategy with no stacked form) is a task of its own.

Order: longest first (the LPT rule), so a phase does not end with one worker on a long task while the
others wait. A rerun's length is what the sweep measured: the training seconds its group's tuning trials
recorded, per run. Before anything is measured (tuning, an untuned sweep) it is the planned work
(engine.planning.planned_work, worked out where the spec is planned). A task with no estimate (a strategy
run as given among measured reruns) counts as long: such runs (second-order, gradient-free) take seconds
each.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable

from optlab.sweeps.efficiency import recorded_training
from optlab.sweeps.spec import Point

MAX_CHUNK = 16


def chunk_points(
    points: list[Point], workers: int, batched: bool = True, alone: Callable[[Point], bool] = lambda p: False
) -> list[list[Point]]:
    """The tasks of a phase (see the module docstring); `alone(point)`: the point must train alone."""
    from optlab.engine.runner import may_stack, shared_problem_key

    groups: dict[tuple, list[Point]] = defaultdict(list)
    singles: list[list[Point]] = []
    for p in points:
        c = p.config
        if not (batched and may_stack(c)) or alone(p):
            singles.append([p])
            continue
        # label noise levels share a chunk: run_many splits what it cannot batch
        groups[(c.strategy, c.batch_size, shared_problem_key(c))].append(p)
    stackable = sum(len(group) for group in groups.values())
    size = max(1, min(MAX_CHUNK, -(-stackable // (2 * workers)) if workers > 1 else MAX_CHUNK))
    chunks = []
    for group in groups.values():
        parts = -(-len(group) // size)
        even = -(-len(group) // parts)  # 15 points at 12 a task: 8 + 7, not 12 + 3
        chunks += [group[i : i + even] for i in range(0, len(group), even)]
    return singles + chunks


def seconds_per_run(runs) -> dict[str, float]:
    """Tuning group -> the mean training seconds its finished trials recorded per run (a stacked trial's
    share of its chunk's time; a run trained alone its own)."""
    found: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        tags = run.data.tags
        if tags.get("optlab.role") != "tuning" or run.info.status != "FINISHED" or "optlab.group" not in tags:
            continue
        value = recorded_training(tags)
        if value is not None:
            found[tags["optlab.group"]].append(value)
    return {group: sum(values) / len(values) for group, values in found.items()}


def longest_first(chunks: list[list[Point]], estimate: Callable[[Point], float | None]) -> list[list[Point]]:
    """The chunks in the order to hand out: estimated longest first (a chunk's estimate is the sum of its
    points'), those with a point without an estimate before all (stable: equal estimates keep their order)."""

    def length(chunk: list[Point]) -> float:
        total = 0.0
        for point in chunk:
            seconds = estimate(point)
            if seconds is None:
                return math.inf
            total += seconds
        return total

    return sorted(chunks, key=length, reverse=True)


def planned(work: dict[str, float]) -> Callable[[Point], float | None]:
    """A point's estimate from its planned work (point hash -> planned_work; SweepSpec.work)."""
    return lambda point: work.get(point.point_hash)


def measured(per_run: dict[str, float]) -> Callable[[Point], float | None]:
    """A point's estimate from its tuning group's measured seconds per run (seconds_per_run)."""
    return lambda point: per_run.get(point.group) if point.group is not None else None
