"""K copies of one network evaluated and differentiated together on stacked weights W of shape (K, d).

The hot path of batched training and of gradient-free populations: batched matrix multiplies, with the
backward pass written out by hand (an MLP's gradient is four lines per layer), which avoids building an
autograd graph on every step. Inputs are either shared by all K rows, x of shape (n, in), one
batch per row, x of shape (K, n, in), or one batch per group of m = K/S consecutive rows, x of shape
(S, n, in) (runs that differ only in learning rate draw the same batches). Shared or grouped inputs make
the first layer one wide matrix multiply per group instead of K skinny ones, and are gathered only once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from optlab.problem.network import NetworkSpec


def _first_layer(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor,
                 flat_weight: torch.Tensor | None = None) -> torch.Tensor:
    """x (n, in) shared, (K, n, in) per row or (S, n, in) per group; weight (K, out, in) -> (K, n, out).
    flat_weight: weight as a (K*out, in) matrix, when the caller reuses it across chunks."""
    k, out, inp = weight.shape
    if x.dim() == 3 and x.shape[0] == k:
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
    if x.dim() == 2:
        flat = flat_weight if flat_weight is not None else weight.reshape(k * out, inp)
        z = x @ flat.T              # one GEMM for all K rows
        return z.view(x.shape[0], k, out).transpose(0, 1) + bias.unsqueeze(1)
    s, n, _ = x.shape
    m = k // s
    z = torch.bmm(x, weight.reshape(s, m * out, inp).transpose(1, 2))   # (S, n, m*out)
    return z.view(s, n, m, out).transpose(1, 2).reshape(k, n, out) + bias.unsqueeze(1)


def _first_layer_weight_grad(delta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Gradient of the first layer's weights (K, out, in) from delta (K, n, out) and its input x."""
    k, n, out = delta.shape
    if x.dim() == 3 and x.shape[0] == k:
        return torch.bmm(delta.transpose(1, 2), x)
    if x.dim() == 2:  # (K*out, n) x (n, in)
        return (delta.transpose(0, 1).reshape(n, k * out).T @ x).view(k, out, -1)
    s = x.shape[0]
    m = k // s
    grouped = delta.view(s, m, n, out).permute(0, 1, 3, 2).reshape(s, m * out, n)
    return torch.bmm(grouped, x).view(k, out, -1)


def forward(spec: NetworkSpec, w: torch.Tensor, x: torch.Tensor, keep: bool = False, layers=None,
            flat_weight: torch.Tensor | None = None):
    """Logits (K, n, out) of K parameter vectors; with keep, also each layer's input (for backward).
    `layers`: spec.unflatten(w), when the caller keeps it across steps."""
    act = _ACT[spec.activation][0]
    layers = layers if layers is not None else spec.unflatten(w)
    inputs = []
    h = x
    for i, (weight, bias) in enumerate(layers):
        inputs.append(h)
        z = _first_layer(weight, bias, h, flat_weight) if i == 0 else torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))
        h = act(z) if i < len(layers) - 1 else z
    return (h, inputs) if keep else h


def cost_and_delta(cost: str, logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row mean cost (K,) and its gradient with respect to the logits (K, n, out).
    y is (n,) shared or (K, n); matches optlab.problem.cost."""
    k, n, out = logits.shape
    labels = y if y.dim() == 2 else y.expand(k, n)
    target = F.one_hot(labels, out).to(logits.dtype)
    if cost == "cross_entropy":
        log_probs = torch.log_softmax(logits, dim=-1)
        loss = -log_probs.gather(-1, labels.unsqueeze(-1)).squeeze(-1).mean(dim=-1)
        delta = (log_probs.exp() - target).div_(n)
    elif cost == "mse":
        s = torch.sigmoid(logits)
        diff = s - target
        loss = (diff * diff).sum(dim=-1).mean(dim=-1)
        delta = diff.mul_(s * (1 - s)).mul_(2.0 / n)
    else:
        raise ValueError(f"unknown cost {cost!r}")
    return loss, delta


def loss_and_grad(spec: NetworkSpec, cost: str, w: torch.Tensor, x: torch.Tensor,
                  y: torch.Tensor, layers=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row losses (K,) and gradients (K, d), each row's exactly as Problem.loss_and_grad gives it.
    y is (n,) shared or (K, n), whatever the shape of x."""
    layers = layers if layers is not None else spec.unflatten(w)
    logits, inputs = forward(spec, w, x, keep=True, layers=layers)
    loss, delta = cost_and_delta(cost, logits, y)
    derivative = _ACT[spec.activation][1]
    grads = []
    for i in range(len(layers) - 1, -1, -1):
        weight, _ = layers[i]
        h = inputs[i]
        g_weight = _first_layer_weight_grad(delta, h) if i == 0 else torch.bmm(delta.transpose(1, 2), h)
        grads.append(delta.sum(dim=1))
        grads.append(g_weight.flatten(1))
        if i > 0:
            delta = torch.bmm(delta, weight).mul_(derivative(inputs[i]))
    return loss, torch.cat(grads[::-1], dim=1)


@torch.no_grad()
def loss_accuracy(spec: NetworkSpec, cost: str, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                  chunk: int = 1 << 22) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row mean cost and accuracy (K,) on a data set, in chunks that bound memory at K*n*width."""
    k, n = w.shape[0], x.shape[-2]
    width = max(spec.sizes[1:])
    step = max(1, chunk // max(1, k * width))
    total_loss = torch.zeros(k, dtype=torch.float64, device=w.device)
    correct = torch.zeros(k, dtype=torch.float64, device=w.device)
    layers = spec.unflatten(w)
    weight = layers[0][0]
    flat = weight.reshape(k * weight.shape[1], weight.shape[2]) if x.dim() == 2 else None
    for start in range(0, n, step):
        xs = x[..., start:start + step, :]
        ys = y[..., start:start + step]
        logits = forward(spec, w, xs, layers=layers, flat_weight=flat)
        loss = _cost(cost, logits, ys)
        total_loss += loss.to(torch.float64) * xs.shape[-2]
        labels = ys if ys.dim() == 2 else ys.expand(k, -1)
        correct += (logits.argmax(dim=-1) == labels).sum(dim=-1).to(torch.float64)
    return total_loss / n, correct / n


def _cost(cost: str, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    from optlab.problem.cost import COSTS

    labels = y if y.dim() == 2 else y.expand(logits.shape[0], -1)
    return COSTS[cost][1](logits, labels)


# activation, and its derivative written in terms of the activation's output h (or input for relu)
_ACT = {
    "sigmoid": (torch.sigmoid, lambda h: h * (1 - h)),
    "tanh": (torch.tanh, lambda h: 1 - h * h),
    "relu": (torch.relu, lambda h: (h > 0).to(h.dtype)),
}
