"""optlab: compare how optimizers learn, on one shared problem, with every run tracked in MLflow.

The Python API (`optlab.run`, `optlab.sweep`, `optlab.runs`, `optlab.Workload`) is imported on first use,
so `import optlab` stays cheap."""

__version__ = "0.1.0"

_LAZY = {
    "run": "optlab.api",
    "sweep": "optlab.api",
    "runs": "optlab.api",
    "Run": "optlab.api",
    "Workload": "optlab.problem.workload",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'optlab' has no attribute {name!r}")
