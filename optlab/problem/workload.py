"""A user's workload: a model, its data and a loss, checked on construction.

`Workload(name, model, train, val, test, loss, target)` is what a user's file returns (see
`optlab.problem.workload_ref` for `path/to/file.py:NAME`), and what `optlab.problem.module_problem`
turns into the counted Problem every strategy optimizes. Every check raises a one-line ConfigError
naming the bad field, so a wrong workload is refused before any run is recorded.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from optlab.errors import ConfigError

LOSSES = {
    "cross_entropy": "softmax cross-entropy of integer class labels (outputs: one logit per class); "
    "accuracy is recorded",
    "mse": "mean squared error between outputs and float targets of the same shape (regression; no accuracy)",
}
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Workload:
    """A model, training / validation / test data and a loss: what a comparison holds fixed.

    model: an `nn.Module`, or a zero-argument callable returning one (called once per seed, so each
    seed gets the callable's own initialization). train, val, test: (inputs, targets) pairs of tensors
    (or arrays) with one sample per row. loss: "cross_entropy", "mse" or a callable (outputs, targets)
    -> the mean loss over the batch. target: a validation accuracy whose time to reach is recorded
    (cross-entropy workloads only), or None."""

    name: str
    model: nn.Module | Callable[[], nn.Module]
    train: tuple
    val: tuple
    test: tuple
    loss: str | Callable = "cross_entropy"
    target: float | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip() or not self.name.isprintable():
            raise ConfigError(f"Workload name must be a non-empty printable string, got {self.name!r}")
        if not isinstance(self.model, nn.Module) and not callable(self.model):
            raise ConfigError(
                f"Workload {self.name!r}: model must be an nn.Module or a zero-argument callable "
                f"returning one, got {type(self.model).__name__}"
            )
        if isinstance(self.loss, str):
            if self.loss not in LOSSES:
                raise ConfigError(
                    f"Workload {self.name!r}: unknown loss {self.loss!r}; choose from "
                    f"{', '.join(LOSSES)} or pass a callable"
                )
        elif not callable(self.loss):
            raise ConfigError(
                f"Workload {self.name!r}: loss must be a string or a callable, got {type(self.loss).__name__}"
            )
        for split in SPLITS:
            object.__setattr__(self, split, self._pair(split))
        self._check_shapes()
        if self.target is not None:
            if (
                isinstance(self.target, bool)
                or not isinstance(self.target, (int, float))
                or not math.isfinite(self.target)
                or not 0 < self.target <= 1
            ):
                raise ConfigError(
                    f"Workload {self.name!r}: target must be a validation accuracy in (0, 1] or "
                    f"None, got {self.target!r}"
                )
            if not self.classification:
                raise ConfigError(
                    f"Workload {self.name!r}: target {self.target!r} is a validation accuracy, and "
                    f"this workload has no accuracy (its targets are not integer class labels)"
                )

    # ---- checks ---------------------------------------------------------------------------
    def _pair(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        value = getattr(self, split)
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise ConfigError(
                f"Workload {self.name!r}: {split} must be a pair (X, y), got {type(value).__name__}"
                + (f" of length {len(value)}" if isinstance(value, (tuple, list)) else "")
            )
        tensors = []
        for part, item in zip(("X", "y"), value):
            try:
                tensor = torch.as_tensor(item)
            except (TypeError, ValueError, RuntimeError) as exc:
                raise ConfigError(
                    f"Workload {self.name!r}: {split} {part} is not a tensor or array ({type(item).__name__}: {exc})"
                ) from None
            if tensor.dim() == 0 or tensor.shape[0] == 0:
                raise ConfigError(
                    f"Workload {self.name!r}: {split} {part} must hold at least one sample "
                    f"(one per row), got shape {tuple(tensor.shape)}"
                )
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise ConfigError(f"Workload {self.name!r}: {split} {part} has non-finite values")
            tensors.append(tensor)
        x, y = tensors
        if x.shape[0] != y.shape[0]:
            raise ConfigError(f"Workload {self.name!r}: {split} has {x.shape[0]} inputs and {y.shape[0]} targets")
        if not x.is_floating_point():
            raise ConfigError(f"Workload {self.name!r}: {split} X must be floating point, got {x.dtype}")
        return x, y

    def _check_shapes(self) -> None:
        (x_train, y_train) = self.train
        for split in SPLITS[1:]:
            x, y = getattr(self, split)
            if x.shape[1:] != x_train.shape[1:]:
                raise ConfigError(
                    f"Workload {self.name!r}: {split} X has samples of shape {tuple(x.shape[1:])}, "
                    f"train X of shape {tuple(x_train.shape[1:])}"
                )
            if y.shape[1:] != y_train.shape[1:] or y.is_floating_point() != y_train.is_floating_point():
                raise ConfigError(
                    f"Workload {self.name!r}: {split} y ({y.dtype}, {tuple(y.shape[1:])} per sample) "
                    f"does not match train y ({y_train.dtype}, {tuple(y_train.shape[1:])} per sample)"
                )
        if self.loss == "cross_entropy" and not self.classification:
            raise ConfigError(
                f"Workload {self.name!r}: loss 'cross_entropy' needs integer class labels y of shape "
                f"(n,), got {y_train.dtype} of shape {tuple(y_train.shape)}"
            )
        if self.loss == "mse" and not y_train.is_floating_point():
            raise ConfigError(f"Workload {self.name!r}: loss 'mse' needs floating-point targets y, got {y_train.dtype}")
        if self.classification and int(min(int(getattr(self, s)[1].min()) for s in SPLITS)) < 0:
            raise ConfigError(f"Workload {self.name!r}: class labels must be non-negative integers")

    # ---- views ----------------------------------------------------------------------------
    @property
    def classification(self) -> bool:
        """Integer labels, one per sample: accuracy (argmax of the outputs) is measured."""
        y = self.train[1]
        return y.dim() == 1 and not y.is_floating_point() and not y.is_complex() and y.dtype != torch.bool

    @property
    def n_classes(self) -> int:
        return 1 + max(int(getattr(self, s)[1].max()) for s in SPLITS) if self.classification else 0

    def build_model(self) -> nn.Module:
        """A fresh module (the callable called, or a deep copy of the given module)."""
        import copy

        if isinstance(self.model, nn.Module):
            return copy.deepcopy(self.model)
        try:
            module = self.model()
        except Exception as exc:
            raise ConfigError(f"Workload {self.name!r}: model() raised {type(exc).__name__}: {exc}") from None
        if not isinstance(module, nn.Module):
            raise ConfigError(f"Workload {self.name!r}: model() must return an nn.Module, got {type(module).__name__}")
        return module
