"""The engine: runs a strategy on a problem for a budget, evaluates, records, stops on divergence."""

from optlab.engine.runner import RunResult, prepare, run, run_many

__all__ = ["RunResult", "prepare", "run", "run_many"]
