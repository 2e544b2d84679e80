"""Gradient statistics from per-sample gradients: gradient norm, noise scale B_simple and GSNR.

The population is the training set (n samples): SGD draws its batches from it, so the gradient it
estimates is G = grad L = mean_i g_i and the covariance of one sample's gradient is
Sigma = (1/n) sum_i (g_i - G)(g_i - G)^T. Then a batch of B samples drawn with replacement has
E|g_B|^2 = |G|^2 + tr(Sigma) / B, and the noise scale of McCandlish et al. (2018) is
B_simple = tr(Sigma) / |G|^2: batches much larger than it waste computation. The gradient
signal-to-noise ratio of parameter j (Liu et al. 2020) is G_j^2 / Sigma_jj, averaged over parameters.

G is computed exactly (one gradient over the whole training set). The per-sample gradients g_i come
from torch.func (vmap of grad of the one-sample loss) on a subset S of m samples drawn uniformly
without replacement, in chunks (m x d floats at once would be m * 52 kB on the reference net). For a
network they are taken with respect to each layer's weight and bias tensors, not the flat vector:
differentiating through the flat vector's slices zero-fills and adds an (m, d) tensor per layer,
which made vmap(grad) 50 times slower than the gradient of the same batch. Their
variance is centred on the subset's own mean and merged across chunks exactly (Chan et al. 1979), so a
parameter whose gradient is the same for every sample has variance exactly 0. The unbiased estimate
of the population variance from the subset is ((n - 1) / n) * M2 / (m - 1), where M2 is the sum of
squared deviations: with m = n it is the exact population variance M2 / n.

The GSNR of a parameter takes its numerator from the same samples as its variance, the subset's mean
g_S (exactly G when m = n): the exact G over a subset's variance is inconsistent for parameters fed by
rare inputs (a pixel no image of the subset inks has per-sample gradients of 1e-18 and a variance of
1e-34 there, while G, fed by the images outside it, is 1e-6: a ratio of 1e20 that swamped the mean).
For m < n it is the plug-in estimate (Liu et al.; Cockpit), biased up by about 1/m per parameter.

Two kernels compute the per-sample moments, behind `sample_moments`:
- `vmap` (the reference, any problem): the per-sample gradients themselves, as above;
- `factored` (optlab's fully connected networks, chosen by `auto`): sample i's gradient of layer l is the
  outer product delta_i a_i^T of its pre-activation gradient and its input (problem/layer_statistics.py),
  so the per-parameter sum and sum of squares over the samples are delta^T a and (delta^2)^T (a^2): two
  GEMMs per layer in float64 from one forward and one backward pass, no (m, d) matrix. M2 = sum of
  squares - sum^2 / m then carries rounding of at most a few m * eps of the sum of squares; below that
  bound it is set to 0, so a parameter whose gradient is the same for every sample has variance exactly 0
  (a relative spread that small is far below what float32 per-sample gradients resolve).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.func import grad, vmap

from optlab.problem.layer_statistics import layer_statistics
from optlab.problem.problem import Batch, NetworkProblem, Problem

CHUNK = 256  # per-sample gradients held at once: 256 x 13,002 floats (13 MB) on the reference net
FACTORED_CHUNK = 4096  # samples per pass of the factored kernel (their layer inputs and deltas held at once)
KERNELS = ("auto", "vmap", "factored")


@dataclass(frozen=True)
class GradientNoise:
    grad_norm: float  # |G|: the full-training-set gradient's norm
    trace_sigma: float  # tr(Sigma): the per-sample gradient covariance's trace (population = training set)
    b_simple: float  # tr(Sigma) / |G|^2 (nan when G = 0)
    gsnr: float  # mean over parameters with Sigma_jj > 0 of g_S,j^2 / Sigma_jj (nan when none)
    samples: int  # m: per-sample gradients the estimates came from
    population: int  # n: training-set size


def full_gradient(problem: Problem, w: torch.Tensor) -> torch.Tensor:
    """grad L(w) over the whole training set (uncounted: a measurement, not the strategy's work)."""
    with torch.enable_grad():
        point = w.detach().requires_grad_(True)
        (gradient,) = torch.autograd.grad(problem.objective(point, problem.batch()), point)
    return gradient.detach()


def per_sample_parts(problem: Problem, w: torch.Tensor, batch: Batch) -> list[torch.Tensor]:
    """The gradient of each sample's loss by torch.func (vmap of grad of the one-sample loss), as
    (m, size) blocks whose concatenation along dim 1 is the (m, d) matrix of per-sample gradients of
    the flat vector: one block per layer weight and bias for a network, one block otherwise."""
    w = w.detach()
    if not plain_network(problem):

        def sample_loss(weights, x, y):
            return problem.objective(weights, Batch(x.unsqueeze(0), y.unsqueeze(0)))

        return [vmap(grad(sample_loss), in_dims=(None, 0, 0))(w, batch.x, batch.y)]

    assert isinstance(problem, NetworkProblem)  # plain_network
    network = problem.network
    layers = tuple(tensor for pair in network.unflatten(w) for tensor in pair)

    def layer_loss(tensors, x, y):
        pairs = list(zip(tensors[0::2], tensors[1::2]))
        return problem.cost(network.forward_layers(pairs, x.unsqueeze(0)), y.unsqueeze(0))

    blocks = vmap(grad(layer_loss), in_dims=(None, 0, 0))(layers, batch.x, batch.y)
    return [block.flatten(start_dim=1) for block in blocks]


def per_sample_gradients(problem: Problem, w: torch.Tensor, batch: Batch) -> torch.Tensor:
    """(m, d): the gradient of each sample's loss with respect to the flat parameter vector."""
    return torch.cat(per_sample_parts(problem, w, batch), dim=1)


def plain_network(problem: Problem) -> bool:
    """Whether `problem` is an optlab network whose objective is its cost of its forward pass (a subclass
    that changes the objective is not): its per-sample gradients may then be taken layer by layer."""
    return isinstance(problem, NetworkProblem) and type(problem).objective is NetworkProblem.objective


def sample_moments(
    problem: Problem, w: torch.Tensor, indices: torch.Tensor, chunk: int = CHUNK, kernel: str = "auto"
) -> tuple[int, torch.Tensor, torch.Tensor]:
    """(m, mean, M2) of the per-sample gradients of the samples `indices`: M2 is the per-parameter sum
    of squared deviations from the mean, in float64. `kernel`: see the module doc (`chunk` is the vmap
    kernel's)."""
    if kernel not in KERNELS:
        raise ValueError(f"unknown per-sample kernel {kernel!r}; choose from {', '.join(KERNELS)}")
    if not len(indices):
        raise ValueError("sample_moments needs at least one sample index")
    factored = plain_network(problem)
    if kernel == "factored" and not factored:
        raise ValueError(f"the factored kernel needs an optlab network problem, not {type(problem).__name__}")
    if factored and kernel != "vmap":
        return factored_moments(problem, w, indices)
    return vmap_moments(problem, w, indices, chunk)


def factored_moments(
    problem: Problem, w: torch.Tensor, indices: torch.Tensor, chunk: int = FACTORED_CHUNK
) -> tuple[int, torch.Tensor, torch.Tensor]:
    """sample_moments of a network from per-layer sums delta^T a and (delta^2)^T (a^2) (module doc)."""
    assert isinstance(problem, NetworkProblem)  # plain_network
    sums: list[torch.Tensor] = []  # per layer (out, in + 1): the bias is the last column
    squares: list[torch.Tensor] = []
    for part in indices.split(chunk):
        batch = problem.data_batch(part)
        inputs, deltas, _ = layer_statistics(problem.network, w, batch.x, batch.y, problem.cost_name)
        pairs = [(a.to(torch.float64), delta.to(torch.float64)) for a, delta in zip(inputs, deltas)]
        part_sums = [delta.T @ a for a, delta in pairs]
        part_squares = [delta.square().T @ a.square() for a, delta in pairs]
        sums = [s + t for s, t in zip(sums, part_sums)] if sums else part_sums
        squares = [s + t for s, t in zip(squares, part_squares)] if squares else part_squares
    count = len(indices)
    flat_sum, flat_square = _flat(sums), _flat(squares)
    mean = flat_sum / count
    m2 = flat_square - flat_sum * mean
    m2[m2 <= 4 * count * torch.finfo(torch.float64).eps * flat_square] = 0.0  # rounding, not spread (module doc)
    return count, mean, m2


def _flat(per_layer: list[torch.Tensor]) -> torch.Tensor:
    """Per-layer (out, in + 1) blocks -> the flat parameter order: each layer's weight row by row, then its bias."""
    return torch.cat([piece for block in per_layer for piece in (block[:, :-1].reshape(-1), block[:, -1])])


def vmap_moments(
    problem: Problem, w: torch.Tensor, indices: torch.Tensor, chunk: int = CHUNK
) -> tuple[int, torch.Tensor, torch.Tensor]:
    """sample_moments from the per-sample gradients themselves. Each chunk's moments are taken two-pass on the
    values shifted by the chunk's first sample (so a parameter whose gradient is the same for every sample has
    deviations of exactly 0: no rounding residue for the GSNR to divide by), merged across chunks in float64."""
    count, mean, m2 = 0, None, None
    for part in indices.split(chunk):
        blocks = per_sample_parts(problem, w, problem.data_batch(part))
        k = blocks[0].shape[0]
        shifted = [block - block[:1] for block in blocks]
        offsets = [d.mean(dim=0) for d in shifted]
        part_mean = torch.cat([block[0] + mu for block, mu in zip(blocks, offsets)]).to(torch.float64)
        part_m2 = torch.cat([d.sub_(mu).square_().sum(dim=0) for d, mu in zip(shifted, offsets)]).to(torch.float64)
        if mean is None or m2 is None:
            count, mean, m2 = k, part_mean, part_m2
            continue
        delta = part_mean - mean
        total = count + k
        mean = mean + delta * (k / total)
        m2 = m2 + part_m2 + delta**2 * (count * k / total)
        count = total
    assert mean is not None and m2 is not None  # at least one chunk (checked above)
    return count, mean, m2


def noise_from_moments(
    gradient: torch.Tensor, samples: int, mean: torch.Tensor, m2: torch.Tensor, population: int
) -> GradientNoise:
    """The statistics from the exact gradient G and the per-sample moments (mean, M2) of m samples of n."""
    if samples < 2:
        raise ValueError(f"a gradient variance needs at least 2 per-sample gradients, got {samples}")
    g = gradient.to(torch.float64)
    variance = m2 * ((population - 1) / population / (samples - 1))  # unbiased for Sigma_jj
    trace = float(variance.sum())
    g2 = float(g @ g)
    varying = variance > 0
    gsnr = float((mean[varying] ** 2 / variance[varying]).mean()) if bool(varying.any()) else math.nan
    return GradientNoise(
        grad_norm=math.sqrt(g2),
        trace_sigma=trace,
        b_simple=trace / g2 if g2 > 0 else math.nan,
        gsnr=gsnr,
        samples=samples,
        population=population,
    )


def gradient_noise(
    problem: Problem, w: torch.Tensor, indices: torch.Tensor | None = None, chunk: int = CHUNK, kernel: str = "auto"
) -> GradientNoise:
    """Gradient norm, tr(Sigma), B_simple and GSNR at w; per-sample gradients on `indices` (default: the
    whole training set), which must be distinct samples drawn uniformly for the estimates to be unbiased."""
    n = problem.n_train
    if indices is None:
        indices = torch.arange(n, device=w.device)
    samples, mean, m2 = sample_moments(problem, w, indices, chunk, kernel)
    return noise_from_moments(full_gradient(problem, w), samples, mean, m2, n)


def subset(n: int, size: int, seed: int, device=None) -> torch.Tensor:
    """`size` distinct training indices drawn uniformly (all n, in order, when size >= n), sorted."""
    if size >= n:
        return torch.arange(n, device=device)
    chosen = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:size]
    return chosen.sort().values.to(device)
