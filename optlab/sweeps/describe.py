"""The sweep's parent-run description (MLflow's run description, markdown): what the sweep compares,
what is held fixed, how runs are chosen, and how to read them in the UI. Computed from the expanded
points, so it always matches what runs."""

from __future__ import annotations

import json
from collections import defaultdict

from optlab import references
from optlab.config import RunConfig
from optlab.tracking.ui import DEFAULT_VIEW_NAME, GROUPS_VIEW_NAME, WORKLOAD_VIEW_NAME

# settings a reader needs to know are fixed, when they are the same for every point: the workload's
FIXED_KEYS = RunConfig.workload_keys()
# settings never listed as varying: the compared strategies are listed on their own, seeds below
IGNORED = ("strategy", "options", *RunConfig.fields_with_role("seed", "evaluation", "measurement", "identity"))
ROLE_TEXT = {"tuning": "tuning trials", "rerun": "reported reruns on fresh seeds", "point": "runs"}


def _show(value) -> str:
    if isinstance(value, (list, tuple)):
        return "-".join(map(str, value)) if value else "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _set(values) -> str:
    """{a, b, ...} sorted when the values are numbers; None (the strategy's default) shown as 'default'."""
    numbers = all(isinstance(v, (int, float)) for v in values if v is not None)
    ordered = (
        sorted((v for v in values if v is not None), key=float) if numbers else [v for v in values if v is not None]
    )
    return "{" + ", ".join([_show(v) for v in ordered] + (["default"] if None in values else [])) + "}"


def _values(points, key) -> list:
    seen: dict[str, object] = {}
    for p in points:
        value = getattr(p.config, key, None)
        seen.setdefault(json.dumps(value, sort_keys=True, default=str), value)
    return list(seen.values())


def parent_description(spec) -> str:
    points = list(spec.points)
    lines = [spec.description.strip() or f"Sweep {spec.name}.", ""]
    if not points:
        return "\n".join(lines).strip()
    strategies = list(dict.fromkeys(references.display(p.config.strategy) for p in points))
    lines.append(
        f"**Compares** {len(strategies)} strateg{'y' if len(strategies) == 1 else 'ies'}: "
        + ", ".join(f"`{s}`" for s in strategies)
        + "."
    )
    keys = [k for k in vars(points[0].config) if k not in IGNORED]
    varying = {k: _values(points, k) for k in keys if len(_values(points, k)) > 1}
    tuned = {part.split("=", 1)[0] for p in points if p.trial for part in p.trial.split()}
    grid = {k: v for k, v in varying.items() if k not in tuned}
    if grid:
        lines.append("**Varies**: " + "; ".join(f"{k} ∈ {_set(values)}" for k, values in grid.items()) + ".")
    if tuned & set(varying):
        lines.append(
            "**Tuned**: "
            + "; ".join(f"{k} ∈ {_set(varying[k])}" for k in sorted(tuned & set(varying)))
            + " (per strategy where its grid differs)."
        )
    fixed = [
        f"{k} {_show(_values(points, k)[0])}"
        for k in FIXED_KEYS
        if k not in varying and _values(points, k)[0] not in (None, 0.0, "none", False)
    ]
    if fixed:
        lines.append("**Fixed**: " + ", ".join(fixed) + ".")
    seeds = sorted({p.config.seed for p in points})
    lines.append(f"**Seeds**: {', '.join(map(str, seeds))}.")
    roles: defaultdict[str, int] = defaultdict(int)
    for p in points:
        roles[p.role] += 1
    lines.append("**Runs**: " + ", ".join(f"{n} {ROLE_TEXT.get(r, r)}" for r, n in roles.items()) + ".")
    if spec.objective:
        lines.append(
            f"**Selection**: each tuning group's trials are scored by `{spec.objective}` (mean over "
            "seeds); the best is tagged `optlab.selected=true`."
        )
    series = sorted({p.series for p in points if p.series})
    if series:
        lines.append(
            "**Series**: "
            + ", ".join(f"`{s}`" for s in series)
            + " (extra runs over the same grid with fixed values, tagged `optlab.series`)."
        )
    lines += [
        "",
        "**How to read it**: each child run is one point; its name says what differs from the "
        "others. Each compared configuration with several seeds also has a seed-group run (its seeds are "
        "its children) holding the mean and 95 % bootstrap interval of the final metrics and the mean "
        f"curves. In this experiment's *Views* menu, *{DEFAULT_VIEW_NAME}* lists the reported runs of every "
        "workload with their workload, strategy and final metrics; "
        f"*{WORKLOAD_VIEW_NAME.format(workload='<workload>')}* shows one workload's runs grouped by "
        "configuration (each chart draws one line per configuration, the mean over seeds with its min-max "
        "band; when its runs exceed the 100 the UI loads, as many seeds of each as fit, as its name says), "
        f"*{GROUPS_VIEW_NAME.format(workload='<workload>')}* its seed groups with the mean and 95 % interval "
        "of the final accuracies; the charts draw the learning curves against gradient-equivalents and wall "
        "time, one colour per strategy (per configuration along an ordered scale where a strategy has several). "
        "`optlab report` draws the same runs with bands over seeds.",
    ]
    return "\n".join(lines)
