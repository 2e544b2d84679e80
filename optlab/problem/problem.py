"""The workload every strategy optimizes: L(w) = mean_p C(y_p, g(x_p, w)) over a flat vector w.

A Problem owns the data, the network and the cost, counts the work done on it (function and
gradient evaluations, curvature products, samples seen), and evaluates a point on train, validation and test.
Strategies reach the objective only through this narrow interface (AlgoPerf's workload/submission
split), which is what makes their costs comparable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from optlab.errors import ConfigError
from optlab.problem.cost import COSTS
from optlab.problem.data import Dataset
from optlab.problem.network import NetworkSpec

# the data splits an evaluation point measures loss and accuracy on; the loop may ask for fewer
SPLITS = ("train", "val", "test")


@dataclass
class Counters:
    function_evals: int = 0  # loss values computed (a gradient evaluation includes one)
    gradient_evals: int = 0  # gradients computed (each on one batch)
    curvature_products: int = 0  # Hessian- or Gauss-Newton-vector products
    samples_seen: int = 0  # training samples that went through any counted evaluation
    gradient_samples: int = 0  # ... of which in gradient evaluations
    curvature_samples: int = 0  # ... of which in curvature products

    # Relative cost of one sample in each kind of work, in units of one sample's gradient
    # (forward + backward ~ 3 forwards; a Hessian/Gauss-Newton-vector product ~ 2 gradients).
    FORWARD_COST, CURVATURE_COST = 1 / 3, 2.0

    def record(self, size: int, evaluations: int = 1, gradients: int = 0) -> None:
        """Count `evaluations` loss values (of which `gradients` came with a gradient) on `size` samples each."""
        self.function_evals += evaluations
        self.gradient_evals += gradients
        self.samples_seen += evaluations * size
        self.gradient_samples += gradients * size

    def record_curvature(self, size: int, products: int = 1) -> None:
        self.curvature_products += products
        self.curvature_samples += products * size
        self.samples_seen += products * size

    def gradient_equivalents(self, n_train: int) -> float:
        """Work done, in full-training-set gradients: the shared cost axis of all three families."""
        forward_only = self.samples_seen - self.gradient_samples - self.curvature_samples
        work = self.gradient_samples + self.FORWARD_COST * forward_only + self.CURVATURE_COST * self.curvature_samples
        return work / max(n_train, 1)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Batch:
    x: torch.Tensor
    y: torch.Tensor

    @property
    def size(self) -> int:
        return self.x.shape[-2] if self.x.dim() >= 2 else 1


ORDERS = {
    "shuffled": "a fresh random permutation of the training set every epoch, cut into batches",
    "sorted_by_class": "every epoch visits the classes in order (all 0s, then all 1s, ...); each class is "
    "shuffled and cut into batches of that class alone (class-sorted data breaks SGD)",
}


def epoch_batches(
    labels: torch.Tensor, batch_size: int, generator: torch.Generator, order: str = "shuffled"
) -> list[torch.Tensor]:
    """The index batches of one epoch over n = len(labels) samples, drawn from `generator`.
    shuffled: one permutation of all n, cut into batches of `batch_size` (the last may be smaller);
    sorted_by_class: classes in ascending order, each permuted and cut on its own, so every batch
    holds one class (each class's last batch may be smaller)."""
    n = labels.shape[-1]
    if order == "shuffled":
        return list(torch.randperm(n, generator=generator).split(batch_size))
    if order == "sorted_by_class":
        labels = labels.cpu()
        batches = []
        for label in torch.unique(labels).tolist():
            members = torch.nonzero(labels == label).squeeze(1)
            batches.extend(members[torch.randperm(members.numel(), generator=generator)].split(batch_size))
        return batches
    raise ConfigError(f"unknown order {order!r}; choose from {', '.join(ORDERS)}")


def epoch_steps(labels: torch.Tensor, batch_size: int, order: str = "shuffled") -> int:
    """How many batches `epoch_batches` cuts one epoch into."""
    if order == "sorted_by_class":
        return sum(math.ceil(int(count) / batch_size) for count in torch.unique(labels.cpu(), return_counts=True)[1])
    return math.ceil(labels.shape[-1] / batch_size)


class BatchSampler:
    """Mini-batches by index in the given order (a fresh draw every epoch), no Python per sample."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        device=None,
        labels: torch.Tensor | None = None,
        order: str = "shuffled",
    ):
        if order != "shuffled" and labels is None:
            raise ConfigError(f"order {order!r} needs the training labels")
        self.n, self.batch_size, self.order = n, batch_size, order
        self.labels = labels if labels is not None else torch.zeros(n, dtype=torch.long)
        self.generator = torch.Generator().manual_seed(seed)
        self.device = device
        self._batches: list[torch.Tensor] = []

    def next_indices(self) -> torch.Tensor:
        if self.batch_size >= self.n:
            return torch.arange(self.n, device=self.device)
        if not self._batches:
            self._batches = [
                b.to(self.device)
                for b in reversed(epoch_batches(self.labels, self.batch_size, self.generator, self.order))
            ]
        return self._batches.pop()


class Problem:
    """Base class of workloads: a parameter vector, a loss, its gradient, and evaluation."""

    name: str = "problem"
    has_accuracy: bool = False

    def __init__(self):
        self.counters = Counters()

    n_params: int
    n_train: int = 1
    dtype: torch.dtype  # every workload's parameters and data share one dtype and device
    device: torch.device | str | None

    def init_params(self, seed: int) -> torch.Tensor:
        raise NotImplementedError

    def batch(self, indices: torch.Tensor | None = None) -> Batch | None:
        return None

    def data_batch(self, indices: torch.Tensor | None = None) -> Batch:
        """The training samples `indices` (all of them when None), for what needs data to work on."""
        batch = self.batch(indices)
        if batch is None:
            raise ConfigError(f"{self.name!r} has no training data (a test function): this needs a data workload")
        return batch

    def epoch_steps(self, batch_size: int, order: str = "shuffled") -> int:
        """Mini-batch steps in one epoch visited in `order` (problems with training data)."""
        raise ConfigError(f"{self.name!r} has no training data to cut into mini-batches")

    def objective(self, w: torch.Tensor, batch: Batch | None) -> torch.Tensor:
        """Uncounted loss value (differentiable in w): what curvature and probes build on."""
        raise NotImplementedError

    def objective_many(self, ws: torch.Tensor, batch: Batch | None) -> torch.Tensor:
        """Uncounted losses of K parameter vectors (K, d) -> (K,)."""
        return torch.stack([self.objective(w, batch) for w in ws])

    def _count(self, batch: Batch | None, evaluations: int = 1, gradients: int = 0):
        self.counters.record(batch.size if batch is not None else 1, evaluations, gradients)

    def count_curvature(self, batch: Batch | None, products: int = 1) -> None:
        """Record `products` Hessian- or Gauss-Newton-vector products on `batch` (None: training set)."""
        size = batch.size if batch is not None else (self.n_train if self.has_accuracy else 1)
        self.counters.record_curvature(size, products)

    def loss(self, w: torch.Tensor, batch: Batch | None = None) -> torch.Tensor:
        """Counted loss L(w) on a batch (the whole training set when batch is None)."""
        batch = batch if batch is not None else self.batch()
        self._count(batch)
        return self.objective(w, batch)

    def losses(self, ws: torch.Tensor, batch: Batch | None = None) -> torch.Tensor:
        """Counted losses of K candidates evaluated together: K function evaluations."""
        batch = batch if batch is not None else self.batch()
        self._count(batch, evaluations=ws.shape[0])
        with torch.no_grad():
            return self.objective_many(ws, batch)

    def loss_and_grad(self, w: torch.Tensor, batch: Batch | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Counted loss and gradient at w (one function and one gradient evaluation)."""
        batch = batch if batch is not None else self.batch()
        self._count(batch, gradients=1)
        with torch.enable_grad():
            w = w.detach().requires_grad_(True)
            value = self.objective(w, batch)
            (grad,) = torch.autograd.grad(value, w)
        return value.detach(), grad

    def evaluate(self, w: torch.Tensor, splits: tuple[str, ...] = SPLITS) -> dict[str, float]:
        """Uncounted loss (and accuracy) at w on each of `splits` (a subset of SPLITS), keyed
        `{split}_loss` / `{split}_accuracy`."""
        raise NotImplementedError


class NetworkProblem(Problem):
    """A network, a cost and a dataset: the reference workload (784-16-16-10 sigmoid on MNIST)."""

    has_accuracy = True

    def __init__(
        self, dataset: Dataset, network: NetworkSpec, cost: str = "cross_entropy", dtype=torch.float32, device=None
    ):
        super().__init__()
        if cost not in COSTS:
            raise ConfigError(f"unknown cost {cost!r}; choose from {', '.join(COSTS)}")
        if network.n_inputs != dataset.n_features or network.n_outputs != dataset.n_classes:
            raise ConfigError(
                f"network {network.sizes} does not fit dataset {dataset.name!r} "
                f"({dataset.n_features} inputs, {dataset.n_classes} classes)"
            )
        self.name = dataset.name
        self.dataset = dataset.to(device=device, dtype=dtype)
        self.network, self.cost_name = network, cost
        self.cost = COSTS[cost][1]
        self.dtype, self.device = dtype, device
        self.n_params = network.n_params
        self.n_train = dataset.n_train

    def init_params(self, seed: int) -> torch.Tensor:
        return self.network.init_params(seed, dtype=self.dtype, device=self.device)

    def batch(self, indices: torch.Tensor | None = None) -> Batch:
        if indices is None:
            return Batch(self.dataset.x_train, self.dataset.y_train)
        return Batch(self.dataset.x_train[indices], self.dataset.y_train[indices])

    def sampler(self, batch_size: int, seed: int, order: str = "shuffled") -> BatchSampler:
        return BatchSampler(self.n_train, batch_size, seed, self.device, self.dataset.y_train, order)

    def epoch_steps(self, batch_size: int, order: str = "shuffled") -> int:
        return epoch_steps(self.dataset.y_train, batch_size, order)

    def objective(self, w: torch.Tensor, batch: Batch | None) -> torch.Tensor:
        batch = batch if batch is not None else self.batch()
        return self.cost(self.network.forward(w, batch.x), batch.y)

    def objective_many(self, ws: torch.Tensor, batch: Batch | None) -> torch.Tensor:
        from optlab.problem import stacked  # batched matmuls; a shared batch is one GEMM

        batch = batch if batch is not None else self.batch()
        return stacked.losses(self.network, self.cost_name, ws, batch.x, batch.y)

    @torch.no_grad()
    def _loss_accuracy(self, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        logits = self.network.forward(w, x)
        return float(self.cost(logits, y)), float((logits.argmax(dim=-1) == y).to(torch.float64).mean())

    def evaluate(self, w: torch.Tensor, splits: tuple[str, ...] = SPLITS) -> dict[str, float]:
        """Loss and accuracy on the training, validation and test sets, or those of `splits` (uncounted,
        like AlgoPerf's)."""
        point = {}
        for split in splits:
            x, y = self.dataset.part(split)
            point[f"{split}_loss"], point[f"{split}_accuracy"] = self._loss_accuracy(w, x, y)
        return point

    @torch.no_grad()
    def predict_proba(self, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        from optlab.problem.cost import outputs

        return outputs(self.cost_name, self.network.forward(w, x.to(self.dtype)))
