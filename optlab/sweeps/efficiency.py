"""A sweep's efficiency and where the rest of its time went.

Efficiency = the training time its runs recorded (Σ `wall_time`, or `wall_time_share` for runs trained
stacked: each step's time split between the rows live at that step) over the sweep's wall time × its
worker slots. The rest of the slots' time is split by the timers of tracking/accounting.py: what a
worker timed occupied one slot; what the sweep process timed between and around its phases (store
reads, selection, seed groups) left every slot waiting, so it counts once per slot. What is left is
split by the time workers spent inside their chunks: "untimed in runs" (inside a chunk but in no timer
and not training: the training loop's own code between steps, building a chunk's problem and
strategies) and "idle" (workers waiting for a chunk: hand-offs, phase barriers, process switches).
With one worker, or a worker that reports no chunk times, the two stay one part, "idle or untimed".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from optlab.tracking.owners import OWNER_TAG

SHARE_TAG, WALL_TAG = "optlab.summary.wall_time_share", "optlab.summary.wall_time"
IDLE = "idle or untimed"
UNTIMED, WAITING = "untimed in runs", "idle"
NO_TIMER = (IDLE, UNTIMED, WAITING)  # the parts no timer covers (IDLE: both, when they cannot be told apart)
# A run's evaluation points are untimed by definition (AlgoPerf): not in its wall_time, so not training here.
# They are still the runs' own work, not bookkeeping: the summary states both shares.
EVALUATION = "evaluation"


def training_seconds(runs, owner: str, since_ms: int = 0) -> tuple[float, int]:
    """(Σ recorded training seconds, runs counted) over the runs the sweep process `owner` started at or
    after `since_ms` (epoch milliseconds): the runs this sweep trained."""
    total, count = 0.0, 0
    for run in runs:
        tags = run.data.tags
        if tags.get(OWNER_TAG) != owner or (run.info.start_time or 0) < since_ms:
            continue
        value = recorded_training(tags)
        if value is None:
            continue
        total += value
        count += 1
    return total, count


def recorded_training(tags: dict) -> float | None:
    """The training seconds a run recorded: its share of a stack's time, or its own when trained alone."""
    value = tags.get(SHARE_TAG, tags.get(WALL_TAG))
    return None if value is None else float(value)


@dataclass
class Efficiency:
    workers: int
    wall: float  # the sweep's seconds
    training: float = 0.0  # Σ recorded training seconds
    runs: int = 0  # runs whose training time is counted
    worker: dict[str, float] = field(default_factory=dict)  # category -> seconds timed in workers
    sweep: dict[str, float] = field(default_factory=dict)  # category -> seconds timed in the sweep process
    calls: dict[str, int] = field(default_factory=dict)  # category -> timed blocks
    peak_rss_mb: dict[str, float] = field(default_factory=dict)  # "sweep process", "worker (max)"
    in_tasks: float = 0.0  # seconds workers spent inside their chunks (start-up excluded)

    def add(self, timings: dict[str, tuple[float, int]], in_workers: bool) -> None:
        target = self.worker if in_workers else self.sweep
        for category, (seconds, calls) in timings.items():
            target[category] = target.get(category, 0.0) + seconds
            self.calls[category] = self.calls.get(category, 0) + calls

    @property
    def capacity(self) -> float:
        return self.wall * self.workers

    @property
    def ratio(self) -> float:
        return self.training / self.capacity if self.capacity > 0 else 0.0

    @property
    def work_ratio(self) -> float:
        """(recorded training + the runs' evaluation time) over the capacity: 1 - this is bookkeeping and idle."""
        # with one worker the sweep process trains (and evaluates) its chunks itself
        work = self.training + self.worker.get(EVALUATION, 0.0) + self.sweep.get(EVALUATION, 0.0) * self.workers
        return work / self.capacity if self.capacity > 0 else 0.0

    def breakdown(self) -> list[tuple[str, float]]:
        """(what, slot-seconds), largest first, training first; the parts add up to the capacity."""
        slots: dict[str, float] = {}
        for category, seconds in self.worker.items():
            slots[category] = slots.get(category, 0.0) + seconds
        for category, seconds in self.sweep.items():
            slots[category] = slots.get(category, 0.0) + seconds * self.workers
        parts = sorted(slots.items(), key=lambda kv: -kv[1])
        rest = self.capacity - self.training - sum(slots.values())
        if self.in_tasks <= 0:
            return [("training", self.training), *parts, (IDLE, rest)]
        timed_in_tasks = sum(s for c, s in self.worker.items() if c != "worker start-up")
        untimed = min(max(0.0, self.in_tasks - self.training - timed_in_tasks), max(rest, 0.0))
        return [("training", self.training), *parts, (UNTIMED, untimed), (WAITING, rest - untimed)]

    def text(self) -> str:
        head = (
            f"efficiency {100 * self.ratio:.0f} %: {self.training:.1f} s of recorded training ({self.runs} runs) "
            f"in {self.wall:.1f} s x {self.workers} worker slot{'s' if self.workers != 1 else ''}; "
            f"with the runs' evaluations (untimed) {100 * self.work_ratio:.0f} %"
        )
        rest = [
            f"{what} {100 * seconds / self.capacity:.1f} %"
            for what, seconds in self.breakdown()[1:]
            if self.capacity > 0 and abs(seconds) >= 0.0005 * self.capacity
        ]
        memory = ", ".join(f"{k} {v:.0f} MB" for k, v in self.peak_rss_mb.items())
        return (
            head + "\n  the rest: " + ("; ".join(rest) or "nothing") + (f"\n  peak memory: {memory}" if memory else "")
        )

    def summary(self) -> dict[str, str]:
        """What the parent run keeps (`optlab.summary.<key>` tags)."""
        out = {
            "efficiency": f"{self.ratio:.4f}",
            "efficiency_with_evaluation": f"{self.work_ratio:.4f}",
            "training_seconds": f"{self.training:.2f}",
            "capacity_seconds": f"{self.capacity:.2f}",
        }
        for what, seconds in self.breakdown()[1:]:
            out[f"slot_seconds.{slot_key(what)}"] = f"{seconds:.2f}"
        for what, mb in self.peak_rss_mb.items():
            out[f"peak_rss_mb.{what.split()[0]}"] = f"{mb:.0f}"
        return out


def slot_key(part: str) -> str:
    """A part of the breakdown as the parent run's tag names it (`optlab.summary.slot_seconds.<key>`)."""
    return part.replace(" ", "_")
