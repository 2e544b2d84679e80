"""Run names that say what differs: within one sweep every run's name is unique and made of its strategy,
its declared workload (when the sweep has several), its tuned values, every setting that varies across
the sweep (grid axes, series values), the series it belongs to,
its role when the sweep has both tuning trials and reruns, and its seed, e.g.
`adam lr=0.001 hidden=512 p=0.6 seed=3`, `sgd [mnist5k-relu-ce] lr=0.1 rerun seed=102` or
`minibatch lr=0.03 B=64 [fixed_lr] rerun seed=100`.

A name is a label for people (MLflow's run name); a run's identity stays its point hash."""

from __future__ import annotations

import json
from collections import Counter

from optlab import references
from optlab.config import RunConfig

# settings never named among what varies: the strategy leads the name and the seed ends it; the others are
# identity or bookkeeping, not what a reader compares
SILENT = ("strategy", *RunConfig.fields_with_role("seed", "device", "evaluation", "measurement", "identity"))
SHORT = {k: RunConfig.declared(k)["short"] for k in RunConfig.field_names() if RunConfig.declared(k)["short"]}


def _show(value) -> str:
    if isinstance(value, (list, tuple)):
        return "-".join(map(str, value))
    if isinstance(value, dict):
        return ",".join(f"{k}={_show(v)}" for k, v in sorted(value.items()))
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return f"{value:g}"
    return str(value)


def _key(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _tuned(point) -> list[str]:
    trial = getattr(point, "trial", None) or ""
    return [part.split("=", 1)[0] for part in trial.split() if "=" in part]


def workload_name(point) -> str:
    """The declared workload a point runs on (`[workloads.NAME]`), '' when the sweep declares none."""
    return (getattr(point, "workload", "") or "").split(" ", 1)[0]


def varying_keys(points) -> list[str]:
    """Config fields whose value differs between points of one strategy on one declared workload (in field
    order): the sweep's axes. A value that differs only between strategies (an override: spsa's batch
    size) is part of what the strategy is; one that differs only between declared workloads is what the
    workload's name says."""
    if not points:
        return []
    fields = [k for k in vars(points[0].config) if k not in SILENT]
    groups: dict[tuple, list] = {}
    for p in points:
        groups.setdefault((p.config.strategy, workload_name(p)), []).append(p)
    return [
        k
        for k in fields
        if any(len({_key(getattr(p.config, k, None)) for p in group}) > 1 for group in groups.values())
    ]


def sweep_names(spec, extra=()) -> dict[str, str]:
    """Names for the points of a sweep file and `extra` points of it (its reruns, known after tuning). A
    tuned sweep with rerun seeds names the role of every run, in both phases, so a name never changes."""
    points = list({p.point_hash: p for p in [*spec.points, *extra]}.values())
    roles = {p.role for p in points}
    if spec.objective and getattr(spec, "rerun_seeds", ()):
        roles.add("rerun")
    return run_names(points, roles)


def run_names(points, roles: set | None = None) -> dict[str, str]:
    """point_hash -> a name unique among `points` (all the points of one sweep, reruns included); `roles`:
    the roles the sweep has (default: those of `points`)."""
    points = list(points)
    varying = varying_keys(points)
    named_workloads = len({workload_name(p) for p in points}) > 1
    roles = roles if roles is not None else {p.role for p in points}
    name_role = {"tuning", "rerun"} <= roles
    names = {}
    for p in points:
        tuned = _tuned(p)
        parts = [references.display(p.config.strategy)] + ([f"[{workload_name(p)}]"] if named_workloads else [])
        parts += [f"{SHORT.get(k, k)}={_show(getattr(p.config, k))}" for k in tuned if hasattr(p.config, k)]
        parts += [
            f"{SHORT.get(k, k)}={_show(getattr(p.config, k))}"
            for k in varying
            if k not in tuned and getattr(p.config, k) not in (None, {}, "")
        ]
        if getattr(p, "series", None):
            # a series run may share its values with a tuned run (a fixed-lr series at a grid value)
            parts.append(f"[{p.series}]")
        if name_role and p.role in ("tuning", "rerun"):
            parts.append(p.role)
        names[p.point_hash] = " ".join(parts + [f"seed={p.config.seed}"])
    # two points the rules above cannot tell apart (should not happen) keep both visible, by their hash
    result = dict(names)
    final = Counter(result.values())
    for p in points:
        if final[result[p.point_hash]] > 1:
            result[p.point_hash] += f" #{p.point_hash[:6]}"
    return result
