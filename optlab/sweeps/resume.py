"""The sweep's state in the tracking store: its parent run, its finished points, stale runs.

A point is done when a child run of the sweep with its `optlab.point_hash` is FINISHED. A child
left RUNNING by a sweep process that died (SIGKILL, power loss) is marked KILLED on the next start,
so it is never left RUNNING forever and its point runs again. Only one sweep process per sweep
name is supported at a time: every run carries `optlab.owner=<host>:<pid>`, and a RUNNING run whose
owner is still alive on this host stops the new start with an error instead of being killed.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

from optlab.errors import OptlabError
from optlab.sweeps.describe import parent_description

OWNER_TAG = "optlab.owner"


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str | None) -> bool:
    """True when `owner` names a live process on this host other than this one."""
    if not owner or owner == owner_id():
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another host: we cannot tell; one sweep process per sweep is the contract
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def search_all(client, experiment_id: str, filter_string: str) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=filter_string, max_results=1000,
                                  page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def children(client, experiment_id: str, sweep: str) -> list:
    """The sweep's point runs (not its parent, not its seed-group runs)."""
    return [r for r in search_all(client, experiment_id, f"tags.`optlab.sweep` = '{_quote(sweep)}'")
            if r.data.tags.get("optlab.role") not in ("parent", "group")]


@dataclass
class SweepState:
    finished: dict[str, object]   # point_hash -> its FINISHED run
    killed: int                   # stale RUNNING runs marked KILLED by this call


def reconcile(client, experiment_id: str, sweep: str) -> SweepState:
    """Mark stale RUNNING children KILLED and return the finished runs by point hash."""
    from mlflow.entities import RunTag

    finished, killed = {}, 0
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
                raise OptlabError(f"sweep {sweep!r} is already running (run {run.info.run_id} owned by {owner}); "
                                  f"wait for it or stop that process first")
            client.log_batch(run.info.run_id, tags=[
                RunTag("optlab.status", "KILLED"),
                RunTag("optlab.failure_reason", f"interrupted: its sweep process ({owner or 'unknown'}) died")])
            client.set_terminated(run.info.run_id, "KILLED", end_time=int(time.time() * 1000))
            killed += 1
    return SweepState(finished, killed)


def open_parent(client, experiment_id: str, spec, extra_params: dict | None = None) -> tuple[str, bool]:
    """The parent run of this exact sweep file (reused on resume), or a new one.
    Returns (run_id, resumed)."""
    from mlflow.entities import Param

    filter_string = (f"tags.`optlab.sweep` = '{_quote(spec.name)}' and tags.`optlab.role` = 'parent' "
                     f"and tags.`optlab.spec_hash` = '{spec.spec_hash}'")
    found = search_all(client, experiment_id, filter_string)
    if found:
        run = min(found, key=lambda r: r.info.start_time)
        owner = run.data.tags.get(OWNER_TAG)
        if run.info.status == "RUNNING" and owner_alive(owner):
            raise OptlabError(f"sweep {spec.name!r} is already running (owned by {owner})")
        client.update_run(run.info.run_id, status="RUNNING")
        client.set_tag(run.info.run_id, OWNER_TAG, owner_id())
        return run.info.run_id, True
    tags = {"optlab.role": "parent", "optlab.sweep": spec.name, "optlab.spec_hash": spec.spec_hash,
            OWNER_TAG: owner_id(), "mlflow.note.content": parent_description(spec)}
    run = client.create_run(experiment_id, run_name=spec.name, tags=tags)
    params = {"grid_size": spec.grid_size, "n_points": len(spec.points),
              "tuning_objective": spec.objective or "none", "sweep_file": spec.path.name,
              **(extra_params or {})}
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
    client.log_text(run.info.run_id, spec.text, f"sweep/{spec.path.name}")
    return run.info.run_id, False


def finish_parent(client, run_id: str, counts: dict[str, int], status: str = "FINISHED") -> None:
    """A sweep that went through all its points is FINISHED even when some points FAILED
    (their count is in optlab.summary.failed); an interrupted sweep is KILLED."""
    from mlflow.entities import RunTag

    tags = [RunTag(f"optlab.summary.{k}", str(v)) for k, v in counts.items()]
    client.log_batch(run_id, tags=tags + [RunTag("optlab.status", status)])
    client.set_terminated(run_id, status)


def _quote(text: str) -> str:
    return text.replace("'", "\\'")
