"""Where a process's time goes: named timers, cheap enough to wrap every run's bookkeeping.

`with timed("run creation"): ...` adds the block's seconds to its category in this process. Time is
*exclusive*: a timed block inside another is counted in its own category only, and the outer one is
charged the rest, so categories never overlap and their sum is the time spent inside timed blocks.
A sweep's workers send `take()` (their categories since the last take) back with every task; the sweep
process adds them to its own (sweeps/efficiency.py). A timer costs about a microsecond.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections import defaultdict
from contextlib import contextmanager

_seconds: dict[str, float] = defaultdict(float)
_calls: dict[str, int] = defaultdict(int)
_stack: list[list[float]] = []  # per open block: [its start, seconds of the blocks nested in it]
_spawned_at: float | None = None  # wall-clock time this worker process was spawned (set by the pool)


@contextmanager
def timed(category: str):
    started = time.perf_counter()
    frame = [started, 0.0]
    _stack.append(frame)
    try:
        yield
    finally:
        _stack.pop()
        elapsed = time.perf_counter() - started
        _seconds[category] += elapsed - frame[1]
        _calls[category] += 1
        if _stack:
            _stack[-1][1] += elapsed


def add(category: str, seconds: float, calls: int = 1) -> None:
    """Time measured elsewhere (e.g. a worker's start-up, measured from its spawn)."""
    _seconds[category] += seconds
    _calls[category] += calls
    if _stack:
        _stack[-1][1] += seconds


def take() -> dict[str, tuple[float, int]]:
    """{category: (seconds, calls)} since the last take, and start again from zero."""
    out = {k: (_seconds[k], _calls[k]) for k in _seconds}
    _seconds.clear()
    _calls.clear()
    return out


def mark_spawned(at: float) -> None:
    global _spawned_at
    _spawned_at = at


def take_spawned() -> float | None:
    """When this worker was spawned (wall clock), once (the first call); None afterwards or outside a pool
    worker."""
    global _spawned_at
    spawned, _spawned_at = _spawned_at, None
    return spawned


def peak_rss_mb() -> float:
    """This process's peak resident memory, MB (ru_maxrss: KB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def process_id() -> int:
    return os.getpid()
