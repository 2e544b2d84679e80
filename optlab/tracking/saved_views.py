"""Write optlab's saved views of an experiment (what they show is decided in ui.py) from its runs as the
store holds them.

The runs and the work-axis histories the views need are read in bulk: on a SQLite store of the checked
layout or a tracking server running optlab's app with plain queries (bulk_reads.py), elsewhere through
MLflow. MLflow's
`search_runs` and one `get_metric_history` per configuration took about 8 s of a 2,000-run sweep's end,
while both workers waited.
"""

from __future__ import annotations

import time
from collections import defaultdict

from optlab.tracking import bulk_runs, ui, ui_state
from optlab.tracking.bulk_reads import metric_histories, runs_with_tags

ROLE_TAG = "optlab.role"


def experiment_runs(client, experiment_id: str) -> list:
    """The experiment's active runs that carry an optlab role other than the sweep's parent."""
    runs = runs_with_tags(client.tracking_uri, experiment_id, {})
    if runs is None:
        runs, token = [], None
        while True:
            page = client.search_runs(
                [experiment_id], f"tags.`{ROLE_TAG}` != 'parent'", max_results=1000, page_token=token
            )
            runs += page
            token = page.token
            if not token:
                break
    return [r for r in runs if r.data.tags.get(ROLE_TAG, "parent") != "parent"]


def read_workloads(client, experiment_id: str) -> ui.Workloads:
    """The experiment's workloads as its runs say (one metric history per configuration of a workload
    tells whether a work axis spans decades: the batch sizes of one strategy may span them together)."""
    runs = experiment_runs(client, experiment_id)
    workloads = ui.Workloads(runs)
    sampled: dict[tuple[str, str], str] = {}  # (workload, configuration) -> the run whose history is read
    for run in runs:
        tags = run.data.tags
        workload = tags.get("optlab.workload")
        if workload not in workloads.role or tags.get(ROLE_TAG) != workloads.role[workload]:
            continue
        sampled.setdefault((workload, workloads.configuration(run)), run.info.run_id)
    points = metric_histories(client, list(sampled.values()), list(ui.WORK_AXES)) if sampled else {}
    histories: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for (workload, _), run_id in sampled.items():
        for x in ui.WORK_AXES:
            histories[workload][x] += list(points.get((run_id, x), {}).values())
    return ui.Workloads(runs, histories)


def save_views(client, experiment_id: str, now_ms: int | None = None, run_tags: list | None = None) -> dict[str, str]:
    """Write optlab's views of the experiment as its runs stand (view id -> name). A view optlab wrote
    before is replaced; one the user saved over (it no longer carries optlab's marker) is kept. The
    single views over every workload of earlier optlab versions are removed unless the user changed them.
    `run_tags`: other (run id, key, value) tags to set with the views' own run tags, in the same calls."""
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    tags = client.get_experiment(experiment_id).tags or {}
    for view_id in ui.LEGACY_VIEW_IDS:
        found = ui_state.read_envelope(tags.get(ui_state.VIEW_TAG_PREFIX + view_id, ""))
        if found and found.get("createdAt") == found.get("updatedAt"):
            client.delete_experiment_tag(experiment_id, ui_state.VIEW_TAG_PREFIX + view_id)
    written = {}
    workloads = read_workloads(client, experiment_id)
    write_run_tags(client, workloads.tag_changes, run_tags or [])
    colors = ui_state.pack(workloads.group_colors)
    if workloads.group_colors and len(colors) <= ui.MAX_TAG_VALUE and tags.get(ui.GROUP_COLORS_TAG) != colors:
        client.set_experiment_tag(experiment_id, ui.GROUP_COLORS_TAG, colors)
    for view_id, (name, state) in ui.views(workloads).items():
        key = ui_state.VIEW_TAG_PREFIX + view_id
        if key in tags:
            found = ui_state.read_envelope(tags[key])
            if ui.MARKER_KEY not in found:
                continue  # the user's own view under this id
            if found.get("name") == name and ui_state.read_state(tags[key]) == state:
                written[view_id] = name
                continue
        client.set_experiment_tag(experiment_id, key, ui.saved_view(name, state, now_ms))
        written[view_id] = name
    return written


def write_run_tags(client, changes: dict[str, dict[str, str | None]], more: list | None = None) -> None:
    """Set (or, where the value is None, delete) these tags of these runs, and the (run id, key, value) tags
    `more`: the sets in one transaction where the store allows it (bulk_runs.set_tags; one call per run
    through MLflow otherwise)."""
    bulk_runs.set_tags(
        client,
        [(run_id, key, value) for run_id, tags in changes.items() for key, value in tags.items() if value is not None]
        + list(more or []),
    )
    for run_id, tags in changes.items():
        for key in (key for key, value in tags.items() if value is None):
            client.delete_tag(run_id, key)
