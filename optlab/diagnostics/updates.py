"""What the last parameter updates did: their size per layer relative to the weights, their norm, the
cosine between successive updates, and the distance travelled from the initial point.

An update is w after a step minus w before it, whatever the strategy (a gradient step, Adam's
preconditioned step, a line-search step), so these compare strategies on one footing: Karpathy's
update-to-weight ratio (about 1e-3 is healthy for SGD), the cosine of successive updates (near +1: a
steady direction; near -1: oscillation across a valley, as at the edge of stability), and the
distance from initialization (Cockpit's "Distance").
"""

from __future__ import annotations

import math

import torch

from optlab.problem.problem import Problem


def layer_slices(problem: Problem) -> list[tuple[str, slice]]:
    """Each layer's (weights and biases) slice of the flat vector: layer1, layer2, ...; one "all"
    slice for a problem without a network."""
    network = getattr(problem, "network", None)
    if network is None:
        return [("all", slice(0, problem.n_params))]
    slices, offset = [], 0
    for i, (fan_out, fan_in) in enumerate(network.layer_shapes, start=1):
        size = fan_out * fan_in + fan_out
        slices.append((f"layer{i}", slice(offset, offset + size)))
        offset += size
    return slices


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """cos of the angle between a and b (nan when either is zero)."""
    na, nb = float(a.norm()), float(b.norm())
    if na == 0 or nb == 0:
        return math.nan
    return float(torch.dot(a.to(torch.float64), b.to(torch.float64))) / (na * nb)


def update_metrics(
    params: torch.Tensor,
    updates: tuple[torch.Tensor, ...],
    initial: torch.Tensor | None,
    layers: list[tuple[str, slice]],
) -> dict[str, float]:
    """Metrics of the most recent updates (oldest first) at `params` (the point after the last update):
    `update_norm`, `update_ratio_<layer>` = |update| / |weights before it| per layer, `update_cosine` of
    the last two updates, `distance_from_init` = |params - initial|. A metric whose value is undefined
    (no update yet, a zero weight vector) is left out."""
    out = {}
    if initial is not None:
        out["distance_from_init"] = float((params - initial).norm())
    if updates:
        last = updates[-1]
        before = params - last
        out["update_norm"] = float(last.norm())
        for name, part in layers:
            weight = float(before[part].norm())
            if weight > 0:
                out[f"update_ratio_{name}"] = float(last[part].norm()) / weight
    if len(updates) >= 2:
        out["update_cosine"] = cosine(updates[-2], updates[-1])
    return {key: value for key, value in out.items() if math.isfinite(value)}
