"""The sweep's state in the tracking store: its parent run, its finished points, stale runs.

A point is done when a child run of the sweep with its `optlab.point_hash` is FINISHED. A child
left RUNNING by a sweep process that died (SIGKILL, power loss) is marked KILLED on the next start,
so it is never left RUNNING forever and its point runs again. One sweep process per sweep name
runs at a time (the lease in sweeps/lease.py); besides, every run carries `optlab.owner=<host>:<pid>`
(the sweep process) and `optlab.worker=<host>:<pid>` (the process training it): a RUNNING run whose
owner is alive stops the new start, and one whose worker is still alive (an orphan of a dead
sweep) is waited for, so a rerun never races a live orphan.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from optlab.errors import OptlabError, StoreError
from optlab.sweeps.describe import parent_description
from optlab.tracking.failures import describe
from optlab.tracking.owners import OWNER_TAG, WORKER_TAG, owner_alive, owner_id  # noqa: F401 - part of this API

if TYPE_CHECKING:  # mlflow is imported lazily: it is slow to import
    from mlflow.entities import Run

ORPHAN_WAIT = 15.0  # seconds a new start waits for a live worker of a dead sweep to exit


def search_all(client, experiment_id: str, filter_string: str) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def quote(value: str) -> str | None:
    """`value` as a string literal of MLflow's search grammar, or None when it has none.

    MLflow strips the quotes of a literal without unescaping anything, so a value is written
    between single quotes when it has none, else between double quotes when it has none; a value
    holding both kinds has no literal. Every candidate is checked by parsing it back with MLflow's
    own parser (the one the store uses), followed by another clause, since a backslash before the
    closing quote escapes it (`'a\\' and ...`)."""
    from mlflow.utils.search_utils import SearchUtils

    for mark in ("'", '"'):
        if mark in value:
            continue
        literal = f"{mark}{value}{mark}"
        try:
            parsed = SearchUtils.parse_search_filter(f"tags.`k` = {literal} and tags.`next` = 'x'")
        except Exception:
            continue
        if len(parsed) == 2 and parsed[0].get("value") == value and parsed[1].get("value") == "x":
            return literal
    return None


def search_tags(client, experiment_id: str, tags: dict[str, str]) -> list:
    """Runs of the experiment whose tags equal `tags` exactly. Values without a literal in MLflow's
    grammar are compared here instead of in the store's filter, and every match is checked here
    (a store may compare case-insensitively). On a SQLite store of the checked layout, or a tracking
    server running optlab's app, they are read with plain queries (tracking/bulk_reads.runs_with_tags)."""
    from optlab.tracking.bulk_reads import runs_with_tags

    direct = runs_with_tags(client.tracking_uri, experiment_id, tags)
    if direct is not None:
        return direct
    clauses = []
    for key, value in tags.items():
        literal = quote(value)
        if literal is not None:
            clauses.append(f"tags.`{key}` = {literal}")
    found = search_all(client, experiment_id, " and ".join(clauses))
    return [r for r in found if all(r.data.tags.get(k) == v for k, v in tags.items())]


def children(client, experiment_id: str, sweep: str) -> list:
    """The sweep's point runs (not its parent, not its seed-group runs)."""
    return [
        r
        for r in search_tags(client, experiment_id, {"optlab.sweep": sweep})
        if r.data.tags.get("optlab.role") not in ("parent", "group")
    ]


@dataclass
class SweepState:
    finished: dict[str, Run]  # point_hash -> its FINISHED run
    killed: int  # stale RUNNING runs marked KILLED by this call


def reconcile(client, experiment_id: str, sweep: str) -> SweepState:
    """Mark stale RUNNING children KILLED and return the finished runs by point hash."""
    from mlflow.entities import RunTag

    finished: dict[str, Run] = {}
    killed = 0
    for run in children(client, experiment_id, sweep):
        status = run.info.status
        point = run.data.tags.get("optlab.point_hash")
        if status == "FINISHED" and point:
            # keep the earliest: a duplicate can only come from an external writer
            if point not in finished or run.info.start_time < finished[point].info.start_time:
                finished[point] = run
        elif status in ("RUNNING", "SCHEDULED"):
            owner = run.data.tags.get(OWNER_TAG)
            if owner_alive(owner):
                raise OptlabError(
                    f"sweep {sweep!r} is already running (run {run.info.run_id} owned by {owner}); "
                    f"wait for it or stop that process first"
                )
            wait_for_orphan(run.data.tags.get(WORKER_TAG), run.info.run_id)
            client.log_batch(
                run.info.run_id,
                tags=[
                    RunTag("optlab.status", "KILLED"),
                    RunTag("optlab.failure_reason", f"interrupted: its sweep process ({owner or 'unknown'}) died"),
                ],
            )
            client.set_terminated(run.info.run_id, "KILLED", end_time=int(time.time() * 1000))
            killed += 1
    return SweepState(finished, killed)


def open_parent(client, experiment_id: str, spec, extra_params: dict | None = None) -> tuple[str, bool]:
    """The parent run of this exact sweep file (reused on resume), or a new one.
    Returns (run_id, resumed)."""
    from mlflow.entities import Param

    found = search_tags(
        client, experiment_id, {"optlab.sweep": spec.name, "optlab.role": "parent", "optlab.spec_hash": spec.spec_hash}
    )
    if found:
        run = min(found, key=lambda r: r.info.start_time)
        owner = run.data.tags.get(OWNER_TAG)
        if run.info.status == "RUNNING" and owner_alive(owner):
            raise OptlabError(f"sweep {spec.name!r} is already running (owned by {owner})")
        client.update_run(run.info.run_id, status="RUNNING")
        client.set_tag(run.info.run_id, OWNER_TAG, owner_id())
        return run.info.run_id, True
    tags = {
        "optlab.role": "parent",
        "optlab.sweep": spec.name,
        "optlab.spec_hash": spec.spec_hash,
        OWNER_TAG: owner_id(),
        "mlflow.note.content": parent_description(spec),
    }
    run = client.create_run(experiment_id, run_name=spec.name, tags=tags)
    params = {
        "grid_size": spec.grid_size,
        "n_points": len(spec.points),
        "tuning_objective": spec.objective or "none",
        "sweep_file": spec.path.name,
        **(extra_params or {}),
    }
    try:
        client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
        client.log_text(run.info.run_id, spec.text, f"sweep/{spec.path.name}")
    except Exception as exc:  # a parent that cannot be written is ended FAILED, never left RUNNING
        why = describe(exc, client.tracking_uri)
        try:
            client.set_tag(run.info.run_id, "optlab.failure_reason", f"storage: {why}")
            client.set_terminated(run.info.run_id, "FAILED")
        except Exception:  # noqa: BLE001 - the next start reconciles it
            pass
        raise StoreError(f"sweep {spec.name!r}: cannot record its parent run: {why}") from exc
    return run.info.run_id, False


def wait_for_orphan(worker: str | None, run_id: str, timeout: float = ORPHAN_WAIT) -> None:
    """Wait until the worker process named by a stale run is gone; refuse when it outlives `timeout`."""
    deadline = time.monotonic() + timeout
    while worker is not None and owner_alive(worker):
        if time.monotonic() >= deadline:
            raise OptlabError(
                f"a worker of an earlier sweep ({worker}) is still training run {run_id}; "
                f"stop that process (kill {worker.rpartition(':')[2]}) and rerun"
            )
        time.sleep(0.2)


def finish_parent(
    client, run_id: str, counts: dict[str, float | str], status: str = "FINISHED", reason: str | None = None
) -> None:
    """FINISHED when every point has its outcome; FAILED naming the points that have none
    (`reason`); KILLED when the sweep was interrupted."""
    from mlflow.entities import RunTag

    tags = [RunTag(f"optlab.summary.{k}", str(v)) for k, v in counts.items()] + [RunTag("optlab.status", status)]
    if reason:
        tags.append(RunTag("optlab.failure_reason", reason[:5000]))
    elif "optlab.failure_reason" in client.get_run(run_id).data.tags:  # left by an earlier attempt
        client.delete_tag(run_id, "optlab.failure_reason")
    client.log_batch(run_id, tags=tags)
    client.set_terminated(run_id, status)
