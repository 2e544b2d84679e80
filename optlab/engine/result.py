"""What a run returns: its status and reason, the evaluation history, the final point and parameters."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from optlab.config import RunConfig


@dataclass
class RunResult:
    config: RunConfig
    status: str  # RUNNING while training; then FINISHED | FAILED | KILLED
    reason: str | None
    steps: int
    wall_time: float  # training time of the loop the run was in (evaluation excluded)
    final: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)  # one dict per evaluation (probes included)
    steps_to_target: int | None = None
    time_to_target: float | None = None
    run_id: str | None = None
    params: torch.Tensor | None = None
    counters: dict[str, int] = field(default_factory=dict)
    probes: dict[str, float] = field(default_factory=dict)  # the last value of every probe metric
    traceback: str | None = None  # when an error inside the run made it FAILED
    timing: str = "alone"  # "alone" or "batched:K" (the optlab.timing tag)

    @property
    def curvature(self) -> dict[str, float]:
        """The curvature probe's measurements (empty unless it ran)."""
        return {k: v for k, v in self.probes.items() if k.startswith("hessian_")}
