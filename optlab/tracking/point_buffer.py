"""A run's metric points kept in memory until they are stored (four parallel lists: about a microsecond a
point, against ~3 ms for a `log_metric` call), and what the recorders that send them in batches share:
`log`, `log_series` and `flush` around their own `_flush`, and how the last points share a call with the
end tags. MLflow's limits per `log_batch` call are declared here once."""

from __future__ import annotations

import time

from optlab.tracking.accounting import timed

MLFLOW_PARAMS, MLFLOW_TAGS, MLFLOW_METRICS = 100, 100, 1000  # MLflow's limits per log_batch call
FLUSH_EVERY = 5000  # buffered points before an intermediate flush


class PointBuffer:
    def __init__(self) -> None:
        self.keys: list[str] = []
        self.values: list[float] = []
        self.stamps: list[int] = []
        self.steps: list[int] = []

    def __len__(self) -> int:
        return len(self.keys)

    def log(self, step: int, values: dict[str, float]) -> None:
        """One point per key at `step` (None values skipped), stamped now."""
        stamp = int(time.time() * 1000)
        for key, value in values.items():
            if value is None:
                continue
            self.keys.append(key)
            self.values.append(float(value))
            self.steps.append(step)
            self.stamps.append(stamp)

    def log_series(self, steps: list[int], columns: dict[str, list[float]]) -> None:
        """Many steps at once: each column holds one value per step."""
        stamp = int(time.time() * 1000)
        for key, values in columns.items():
            self.keys.extend([key] * len(steps))
            self.values.extend(map(float, values))
            self.steps.extend(steps)
            self.stamps.extend([stamp] * len(steps))

    def take(self) -> tuple[list[str], list[float], list[int], list[int]]:
        """(keys, values, stamps, steps) of every point kept, and an empty buffer."""
        taken = self.keys, self.values, self.stamps, self.steps
        self.keys, self.values, self.stamps, self.steps = [], [], [], []
        return taken


class BufferedRecorder:
    """A recorder's `log`, `log_series` and `flush` over its PointBuffer; the subclass stores the points
    with `_flush()` (timed as metric writes)."""

    def __init__(self) -> None:
        self._points = PointBuffer()

    def _flush(self, keep: int = 0) -> list:
        raise NotImplementedError

    def log(self, step: int, values: dict[str, float]) -> None:
        self._points.log(step, values)
        if len(self._points) >= FLUSH_EVERY:
            self.flush()

    def log_series(self, steps: list[int], columns: dict[str, list[float]]) -> None:
        """Many steps at once: columns map a metric name to one value per step (batched training)."""
        self._points.log_series(steps, columns)
        if len(self._points) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if not self._points:
            return
        with timed("metric writes"):
            self._flush()


def held_back(metrics: list, keep: int) -> tuple[list, list]:
    """(the points to send in full calls, the last ones held back to share one call with up to `keep` tags):
    what is left after full calls of MLFLOW_METRICS is held when it fits beside the tags."""
    rest = len(metrics) % MLFLOW_METRICS
    if keep and 0 < rest <= MLFLOW_METRICS - keep:
        return metrics[: len(metrics) - rest], metrics[len(metrics) - rest :]
    return metrics, []
