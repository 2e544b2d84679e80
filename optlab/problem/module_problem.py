"""Any nn.Module as a counted Problem: its parameters as one flat vector, through torch.func.

`ModuleProblem` gives a user's Workload the interface the reference network has (a flat parameter
vector w, counted losses and gradients, evaluation on train / validation / test), so every strategy
runs on it unchanged and pays the same costs in gradient-equivalents. The module is called with
`torch.func.functional_call` on views of w (one per named parameter), which keeps the loss a plain
differentiable function of w: gradients, Hessian-vector products and per-sample gradients (vmap)
follow from autograd. The module runs in eval mode (dropout off, batch-norm statistics fixed), so
the objective is a deterministic function of w that every family sees alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.func import functional_call

from optlab.errors import ConfigError
from optlab.problem.data import Dataset
from optlab.problem.problem import SPLITS, Batch, BatchSampler, Problem, epoch_steps
from optlab.problem.workload import Workload

EVAL_CHUNK = 1000  # samples per forward pass when evaluating a whole split (bounds activation memory)


@dataclass(frozen=True)
class SampleBatch(Batch):
    """A batch whose inputs have any shape per sample (images: (n, C, H, W)): its size is the first dim."""

    @property
    def size(self) -> int:
        return self.x.shape[0]


def _mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.mse_loss(outputs, targets.reshape(outputs.shape))


LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LOSS_FUNCTIONS: dict[str, LossFunction] = {"cross_entropy": torch.nn.functional.cross_entropy, "mse": _mse}


def _loss_function(workload: Workload) -> LossFunction:
    """The workload's loss as a function (Workload has checked that a named loss is one of LOSS_FUNCTIONS)."""
    if not isinstance(workload.loss, str):
        return workload.loss
    if workload.loss not in LOSS_FUNCTIONS:
        choices = ", ".join(LOSS_FUNCTIONS)
        raise ConfigError(f"workload {workload.name!r}: unknown loss {workload.loss!r}; choose from {choices}")
    return LOSS_FUNCTIONS[workload.loss]


class ModuleProblem(Problem):
    """A Workload's model, data and loss behind the Problem interface."""

    # the data problems' flag: mini-batches, epochs and samples exist (accuracy only if `classification`)
    has_accuracy = True

    def __init__(
        self,
        workload: Workload,
        dtype=torch.float32,
        device=None,
        tags: dict | None = None,
        artifacts: dict | None = None,
    ):
        super().__init__()
        self.workload, self.name = workload, workload.name
        self.dtype, self.device = dtype, device
        self.classification = workload.classification
        self.default_target = workload.target  # the run's target when its config gives none
        self.loss_function = _loss_function(workload)
        self.record_tags = dict(tags or {})  # provenance a tracked run records (see tracking.run_facts)
        self.artifacts = dict(artifacts or {})  # artifact path -> bytes (the workload file's copy)
        cast = {split: self._cast(*getattr(workload, split)) for split in ("train", "val", "test")}
        (xt, yt), (xv, yv), (xs, ys) = cast["train"], cast["val"], cast["test"]
        self.dataset = Dataset(workload.name, xt, yt, xv, yv, xs, ys, workload.n_classes, tuple(xt.shape[1:]))
        self.n_train = xt.shape[0]
        self.module = self._fresh_module(0)
        self.names = [name for name, _ in self.module.named_parameters()]
        # each parameter tensor's shape, in the flat vector's order (optimizers that treat matrices apart read it)
        self.param_shapes = [tuple(p.shape) for _, p in self.module.named_parameters()]
        self.sizes = [p.numel() for _, p in self.module.named_parameters()]
        if not self.names:
            raise ConfigError(f"workload {self.name!r}: the model has no parameters to optimize")
        self.buffers = {name: b.to(device=device) for name, b in self.module.named_buffers()}
        self.n_params = sum(self.sizes)
        self._check_outputs()

    def _cast(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = y.to(self.dtype) if y.is_floating_point() else y.long()
        return x.to(device=self.device, dtype=self.dtype), y.to(self.device)

    def _fresh_module(self, seed: int) -> torch.nn.Module:
        """The workload's module initialized from `seed` (the global RNG is left as it was)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = self.workload.build_model()
            if isinstance(self.workload.model, torch.nn.Module) and seed:
                for sub in module.modules():  # a given instance: re-draw its initialization per seed
                    reset = getattr(sub, "reset_parameters", None)
                    if callable(reset):
                        reset()
        return module.to(device=self.device, dtype=self.dtype).eval()

    def _check_outputs(self) -> None:
        """One forward pass on two training samples: a model that does not fit the data is refused now."""
        x, y = self.dataset.x_train[:2], self.dataset.y_train[:2]
        try:
            with torch.no_grad():
                out = self._forward(self.init_params(0), x)
                value = self.loss_function(out, y)
        except Exception as exc:
            raise ConfigError(
                f"workload {self.name!r}: the model or loss fails on the training data "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            ) from None
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise ConfigError(
                f"workload {self.name!r}: the loss must return one number (the mean over the batch), "
                f"got {tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__}"
            )
        if self.classification and (out.dim() != 2 or out.shape[1] < self.dataset.n_classes):
            raise ConfigError(
                f"workload {self.name!r}: the model's outputs {tuple(out.shape)} need one column per "
                f"class ({self.dataset.n_classes} classes in the labels)"
            )

    # ---- the flat vector --------------------------------------------------------------------
    def unflatten(self, w: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of w (d,) as the module's named parameters."""
        return {name: part.view(shape) for name, part, shape in zip(self.names, w.split(self.sizes), self.param_shapes)}

    def init_params(self, seed: int) -> torch.Tensor:
        module = self._fresh_module(seed)
        return torch.cat([p.detach().reshape(-1) for p in module.parameters()]).to(self.dtype)

    def _forward(self, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.module, (self.unflatten(w), self.buffers), (x,))

    # ---- the Problem interface -------------------------------------------------------------------
    def batch(self, indices: torch.Tensor | None = None) -> SampleBatch:
        if indices is None:
            return SampleBatch(self.dataset.x_train, self.dataset.y_train)
        return SampleBatch(self.dataset.x_train[indices], self.dataset.y_train[indices])

    def sampler(self, batch_size: int, seed: int, order: str = "shuffled") -> BatchSampler:
        return BatchSampler(self.n_train, batch_size, seed, self.device, self._labels(order), order)

    def epoch_steps(self, batch_size: int, order: str = "shuffled") -> int:
        return epoch_steps(self._labels(order), batch_size, order)

    def _labels(self, order: str) -> torch.Tensor:
        if order != "shuffled" and not self.classification:
            raise ConfigError(f"order {order!r} sorts by class, and workload {self.name!r} has no class labels")
        return self.dataset.y_train if self.classification else torch.zeros(self.n_train, dtype=torch.long)

    def objective(self, w: torch.Tensor, batch: Batch | None) -> torch.Tensor:
        batch = batch if batch is not None else self.batch()
        return self.loss_function(self._forward(w, batch.x), batch.y)

    @torch.no_grad()
    def _loss_accuracy(self, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float | None]:
        total, correct = 0.0, 0
        for start in range(0, x.shape[0], EVAL_CHUNK):
            xs, ys = x[start : start + EVAL_CHUNK], y[start : start + EVAL_CHUNK]
            out = self._forward(w, xs)
            total += float(self.loss_function(out, ys)) * xs.shape[0]
            if self.classification:
                correct += int((out.argmax(dim=-1) == ys).sum())
        n = x.shape[0]
        return total / n, (correct / n if self.classification else None)

    def evaluate(self, w: torch.Tensor, splits: tuple[str, ...] = SPLITS) -> dict[str, float]:
        """Loss (and accuracy, for class labels) on the training, validation and test sets, or those of
        `splits` (uncounted)."""
        point = {}
        for split in splits:
            loss, accuracy = self._loss_accuracy(w, *self.dataset.part(split))
            point[f"{split}_loss"] = loss
            if accuracy is not None:
                point[f"{split}_accuracy"] = accuracy
        return point
