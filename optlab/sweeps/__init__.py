"""Declarative sweeps: experiment files -> points -> tracked runs, resumable, parallel, tuned."""

from optlab.sweeps.executor import SweepReport, run_sweep
from optlab.sweeps.spec import Point, SweepSpec, load, parse

__all__ = ["Point", "SweepReport", "SweepSpec", "load", "parse", "run_sweep"]
