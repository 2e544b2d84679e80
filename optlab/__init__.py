"""optlab: compare how optimizers learn, on one shared problem, with every run tracked in MLflow."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """`optlab.Workload` without importing torch at `import optlab` (the CLI starts faster without it)."""
    if name == "Workload":
        from optlab.problem.workload import Workload
        return Workload
    raise AttributeError(f"module 'optlab' has no attribute {name!r}")
