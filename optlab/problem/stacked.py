"""K copies of one network evaluated and differentiated together on stacked weights W of shape (K, d).

The hot path of batched training and of gradient-free populations: batched matrix multiplies, with the
backward pass written out by hand (an MLP's gradient is four lines per layer), which avoids building an
autograd graph on every step. Inputs are either shared by all K rows, x of shape (n, in), one
batch per row, x of shape (K, n, in), or one batch per group of m = K/S consecutive rows, x of shape
(S, n, in) (runs that differ only in learning rate draw the same batches). Shared or grouped inputs make
the first layer one wide matrix multiply per group instead of K skinny ones, and are gathered only once.
Activations are kept features-before-samples, (K, width, n), so each layer is a GEMM with its bias fused.
The batched engine stores the parameters split (see `split`): the first layer of all rows contiguous.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # network.py delegates NetworkSpec.forward_many here: no import back at run time
    from optlab.problem.network import NetworkSpec


def _first_layer(
    weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor, flat_weight: torch.Tensor | None = None
) -> torch.Tensor:
    """x (n, in) shared, (K, n, in) per row or (S, n, in) per group; weight (K, out, in) -> (K, out, n).
    flat_weight: weight as a (K*out, in) matrix, when the caller reuses it across chunks."""
    k, out, inp = weight.shape
    if x.dim() == 3 and x.shape[0] == k:
        return torch.baddbmm(bias.unsqueeze(2), weight, x.transpose(1, 2))
    if x.dim() == 2:
        flat = flat_weight if flat_weight is not None else weight.reshape(k * out, inp)
        return torch.addmm(bias.reshape(k * out, 1), flat, x.T).view(k, out, -1)  # one GEMM for all K rows
    s, n, _ = x.shape
    m = k // s
    grouped = weight.reshape(s, m * out, inp)
    return torch.baddbmm(bias.reshape(s, m * out, 1), grouped, x.transpose(1, 2)).view(k, out, n)


def _first_layer_weight_grad(delta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Gradient of the first layer's weights (K, out, in) from delta (K, out, n) and its input x."""
    k, out, n = delta.shape
    if x.dim() == 3 and x.shape[0] == k:
        return torch.bmm(delta, x)
    if x.dim() == 2:  # (K*out, n) x (n, in)
        return (delta.reshape(k * out, n) @ x).view(k, out, -1)
    s = x.shape[0]
    return torch.bmm(delta.reshape(s, k // s * out, n), x).view(k, out, -1)


def _forward_t(spec: NetworkSpec, layers, x: torch.Tensor, flat_weight: torch.Tensor | None = None):
    """Transposed logits (K, out, n) and each layer's input (later ones transposed, (K, in, n)).
    Features before samples: every layer is then one (batched) GEMM with the bias fused, with no
    transposed copies, and the softmax runs over a strided dim, which torch's CPU kernel does far
    faster than over a short last dim."""
    act = _ACT[spec.activation][0]
    inputs = []
    h = x
    for i, (weight, bias) in enumerate(layers):
        inputs.append(h)
        z = _first_layer(weight, bias, h, flat_weight) if i == 0 else torch.baddbmm(bias.unsqueeze(2), weight, h)
        h = act(z) if i < len(layers) - 1 else z
    return h, inputs


def forward(spec: NetworkSpec, w: torch.Tensor, x: torch.Tensor, layers=None) -> torch.Tensor:
    """Logits (K, n, out) of K parameter vectors (a transposed view).
    `layers`: spec.unflatten(w), when the caller keeps it across steps."""
    return _forward_t(spec, layers if layers is not None else spec.unflatten(w), x)[0].transpose(1, 2)


def _labels(y: torch.Tensor, k: int) -> torch.Tensor:
    """(K, 1, n) labels from y (n,) shared or (K, n)."""
    return (y if y.dim() == 2 else y.expand(k, -1)).unsqueeze(1)


def _costs(cost: str, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-row mean cost (K,) of transposed logits (K, out, n); matches optlab.problem.cost."""
    if cost == "cross_entropy":
        return -torch.log_softmax(logits, dim=1).gather(1, labels).squeeze(1).mean(dim=-1)
    if cost == "mse":
        diff = torch.sigmoid(logits) - torch.zeros_like(logits).scatter_(1, labels, 1.0)
        return (diff * diff).sum(dim=1).mean(dim=-1)
    raise ValueError(f"unknown cost {cost!r}")


@lru_cache(maxsize=32)
def _minus_ones(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.full(shape, -1.0, dtype=dtype, device=device)


def cost_and_delta(cost: str, logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row mean cost (K,) and its gradient with respect to the transposed logits (K, out, n).
    y is (n,) shared or (K, n); matches optlab.problem.cost. Written with as few kernels as possible:
    at the reference net's size a step is a few dozen tiny ones, and each costs its dispatch."""
    k, out, n = logits.shape
    labels = _labels(y, k)
    if cost == "cross_entropy":
        log_probs = torch.log_softmax(logits, dim=1)
        loss = log_probs.gather(1, labels).mean(dim=(1, 2)).neg_()
        delta = log_probs.exp_().scatter_add_(1, labels, _minus_ones(tuple(labels.shape), logits.dtype, logits.device))
        delta.div_(n)  # softmax - one-hot, averaged over the batch
    elif cost == "mse":
        target = torch.zeros_like(logits).scatter_(1, labels, 1.0)
        s = torch.sigmoid(logits)
        diff = s - target
        loss = (diff * diff).sum(dim=1).mean(dim=-1)
        delta = diff.mul_(s * (1 - s)).mul_(2.0 / n)
    else:
        raise ValueError(f"unknown cost {cost!r}")
    return loss, delta


def losses(spec: NetworkSpec, cost: str, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-row losses (K,) of K parameter vectors on one batch (x shared, per row or per group)."""
    logits, _ = _forward_t(spec, spec.unflatten(w), x)
    return _costs(cost, logits, _labels(y, w.shape[0]))


def split(spec: NetworkSpec, w: torch.Tensor) -> list[torch.Tensor]:
    """(K, d) -> the first layer's weights (K, out*in) and the rest (K, d - out*in), each contiguous:
    stored so, the first layer of all rows is one (K*out, in) matrix, with no copy in forward or backward."""
    fan_out, fan_in = spec.layer_shapes[0]
    return [w[:, : fan_out * fan_in].contiguous(), w[:, fan_out * fan_in :].contiguous()]


def unflatten_parts(spec: NetworkSpec, parts: list[torch.Tensor]):
    """(weight, bias) views per layer into split(spec, w)."""
    first, rest = parts
    k = first.shape[0]
    (fan_out, fan_in), *tail = spec.layer_shapes
    layers, offset = [(first.view(k, fan_out, fan_in), rest[:, :fan_out])], fan_out
    for fan_out, fan_in in tail:
        end = offset + fan_out * fan_in
        layers.append((rest[:, offset:end].view(k, fan_out, fan_in), rest[:, end : end + fan_out]))
        offset = end + fan_out
    return layers


def loss_and_grads(
    spec: NetworkSpec, cost: str, layers, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Per-row losses (K,) and gradients as split() lays parameters out: [(K, out*in), (K, d - out*in)].
    y is (n,) shared or (K, n), whatever the shape of x."""
    logits, inputs = _forward_t(spec, layers, x)
    loss, delta = cost_and_delta(cost, logits, y)
    backward = _ACT[spec.activation][1]
    grads = []
    for i in range(len(layers) - 1, -1, -1):
        weight, _ = layers[i]
        h = inputs[i]
        g_weight = _first_layer_weight_grad(delta, h) if i == 0 else torch.bmm(delta, h.transpose(1, 2))
        grads.append(delta.sum(dim=2))
        grads.append(g_weight.flatten(1))
        if i > 0:
            delta = backward(torch.bmm(weight.transpose(1, 2), delta), h)
    return loss, [grads[-1], torch.cat(grads[-2::-1], dim=1)]


def loss_and_grad(
    spec: NetworkSpec, cost: str, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row losses (K,) and gradients (K, d), each row's exactly as Problem.loss_and_grad gives it."""
    loss, grads = loss_and_grads(spec, cost, spec.unflatten(w), x, y)
    return loss, torch.cat(grads, dim=1)


@torch.no_grad()
def loss_accuracy(
    spec: NetworkSpec, cost: str, layers, x: torch.Tensor, y: torch.Tensor, chunk: int = 1 << 22
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row mean cost and accuracy (K,) on a data set, in chunks that bound memory at K*n*width.
    layers: spec.unflatten(w) or unflatten_parts(spec, parts)."""
    weight = layers[0][0]
    k, n = weight.shape[0], x.shape[-2]
    width = max(spec.sizes[1:])
    step = max(1, chunk // max(1, k * width))
    total_loss = torch.zeros(k, dtype=torch.float64, device=weight.device)
    correct = torch.zeros(k, dtype=torch.float64, device=weight.device)
    flat = weight.reshape(k * weight.shape[1], weight.shape[2]) if x.dim() == 2 else None
    for start in range(0, n, step):
        xs = x[..., start : start + step, :]
        labels = _labels(y[..., start : start + step], k)
        logits, _ = _forward_t(spec, layers, xs, flat_weight=flat)
        total_loss += _costs(cost, logits, labels).to(torch.float64) * xs.shape[-2]
        predicted = logits.max(dim=1, keepdim=True).indices  # the first maximum, as argmax; far faster on CPU
        correct += (predicted == labels).sum(dim=(1, 2)).to(torch.float64)
    return total_loss / n, correct / n


# activation, and its backward (grad, h) -> grad * activation'(.) from the activation's output h, as one
# fused ATen kernel each (the ones autograd itself calls): grad * h (1 - h), grad (1 - h^2), grad [h > 0]
_Tensors = Callable[..., torch.Tensor]
_ACT: dict[str, tuple[_Tensors, _Tensors]] = {
    "sigmoid": (torch.sigmoid, torch.ops.aten.sigmoid_backward),
    "tanh": (torch.tanh, torch.ops.aten.tanh_backward),
    "relu": (torch.relu, lambda grad, h: torch.ops.aten.threshold_backward(grad, h, 0)),
}
