"""optlab: compare how optimizers learn, on one shared problem, with every run tracked in MLflow."""

__version__ = "0.1.0"
