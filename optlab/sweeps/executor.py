"""Run a sweep's points: in this process, on a local process pool, or as Ray tasks.

Protocol (tune, then rerun): phase 1 runs the tuning trials (and the points of an untuned sweep),
batched where the engine can; the selection is read back from the store; phase 2 runs the reported
runs — the selected configuration of every group on the fresh rerun seeds, strategies run as given,
and series — each trained alone, so its wall time is its own; with `[rerun] timed_alone = N` only the
first N rerun seeds do, the others train batched, in the same queue. Tasks go out longest first
(sweeps/scheduling.py).

The parent process creates the store, the experiment and the parent run before any worker starts
(several processes creating a fresh SQLite store at once crash); workers get the tracking URI, the
experiment id and the parent run id, and each point becomes one nested child run. Points are sent
to `optlab.engine.run_many` in chunks of compatible configs (same problem, strategy and batch
size), so a batched run_many trains them together. A failing point (divergence, exception) is
recorded FAILED and never stops the others.

Faults: the sweep holds its lease (sweeps/lease.py) while it runs, so a second process running
the same sweep against the same store refuses or waits. Local workers die with the sweep process
(sweeps/pool.py); a worker that dies costs only the points it held: its RUNNING runs are recorded
FAILED ("worker died"), points it had not started go back to the queue once, and the sweep goes
on. A store or server lost for two heartbeats stops the sweep with one line. The parent run is
FINISHED only when every point has its outcome (FINISHED, or FAILED because it diverged);
otherwise it is FAILED naming the points without one, and a rerun runs exactly those.
"""

from __future__ import annotations

import inspect
import os
import socket
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from optlab.errors import ConfigError, OptlabError, StoreError
from optlab.sweeps import naming, resume, scheduling, seed_groups
from optlab.sweeps.efficiency import Efficiency, training_seconds
from optlab.sweeps.lease import Lease
from optlab.sweeps.spec import Point, SweepSpec
from optlab.tracking import accounting, saved_views
from optlab.tracking.accounting import timed
from optlab.tracking.failures import describe, is_storage_failure

if TYPE_CHECKING:  # selection needs scipy, mlflow is slow to import: imported where used, never by a worker
    from mlflow.entities import Run

    from optlab.config import RunConfig
    from optlab.sweeps import tuning

BACKENDS = ("local", "ray")
MAX_WORKERS = 10_000  # Ray tasks in flight at once


@dataclass(frozen=True)
class Task:
    """What a worker needs for one chunk: configs with their tags, and where to record them."""

    points: tuple[tuple[RunConfig, dict], ...]  # (RunConfig, tags)
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    batched: bool
    threads: int
    attempt: int = 0  # 1 when re-queued after its first worker died
    created_at: float = 0.0  # wall clock: when the sweep process handed it out


@dataclass(frozen=True)
class Outcome:
    point_hash: str
    status: str  # FINISHED | FAILED | KILLED | ERROR (no run recorded)
    reason: str | None = None


@dataclass
class SweepReport:
    name: str
    parent_run_id: str
    resumed: bool
    counts: dict[str, int]
    selections: dict[str, tuning.Selection]
    table: str
    seconds: float
    failures: list[tuple[str, str]] = field(default_factory=list)  # (point label, reason)
    # points without an outcome: (point hash, label, why) as read back; (label, why) once the run has ended
    incomplete: list[tuple[str, ...]] = field(default_factory=list)
    reruns: list[Point] = field(default_factory=list)  # the selected configurations' reruns
    phase_seconds: dict[str, float] = field(default_factory=dict)  # tuning / reruns / points
    objective: str | None = None
    load: tuple[str, str] = ("", "")  # load averages at start and end
    efficiency: Efficiency | None = None  # training time over wall time x workers

    @property
    def edge_flags(self) -> list[tuple[str, str]]:
        """(group, message) for every selection at the edge of its tuning grid."""
        return [(group, flag.text()) for group, s in self.selections.items() for flag in s.edge]


@dataclass(frozen=True)
class TaskResult:
    """What a worker sends back for a chunk: its outcomes and where its time went (tracking/accounting.py)."""

    outcomes: list[Outcome]
    timings: dict[str, tuple[float, int]]
    pid: int
    peak_rss_mb: float
    seconds: float = 0.0  # the chunk's time in the worker, from its first point to its last (start-up excluded)


# ---- the worker side ------------------------------------------------------------------------
def run_task_timed(task: Task) -> TaskResult:
    """`run_task` with the worker's timers and memory. Its start-up (spawn, imports) counts from when its
    first chunk was handed out: a worker spawned ahead started up while the sweep process did its own
    timed work, for which every worker slot is counted already."""
    spawned, started = accounting.take_spawned(), time.perf_counter()
    import torch  # noqa: F401

    from optlab.engine import run_many  # noqa: F401
    from optlab.tracking.point_recorder import PointRecorder  # noqa: F401

    if spawned is None:  # in this process, or a Ray worker: the first chunk's imports
        accounting.add("worker start-up", time.perf_counter() - started)
    else:
        accounting.add("worker start-up", max(0.0, time.time() - max(spawned, task.created_at)))
    began = time.perf_counter()
    outcomes = run_task(task)
    seconds = time.perf_counter() - began
    return TaskResult(outcomes, accounting.take(), accounting.process_id(), accounting.peak_rss_mb(), seconds)


def run_task(task: Task) -> list[Outcome]:
    """Run one chunk of points; importable by pool and Ray workers."""
    import torch

    from optlab.engine import run, run_many
    from optlab.tracking.point_recorder import PointRecorder

    torch.set_num_threads(task.threads)
    configs = [c for c, _ in task.points]
    tags = [{**t, **worker_tags()} for _, t in task.points]

    def recorder(_config):
        return PointRecorder(task.tracking_uri, task.experiment_id, task.parent_run_id)

    kwargs = {}
    if "batched" in inspect.signature(run_many).parameters:
        kwargs["batched"] = task.batched
    try:
        results = run_many(configs, make_recorder=recorder, extra_tags=tags, **kwargs)
        return [Outcome(t["optlab.point_hash"], r.status, r.reason) for t, r in zip(tags, results)]
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # an error outside a run (e.g. the store): say so, retry point by point below
        if is_storage_failure(exc):  # retrying against a store that cannot be written is futile: report it
            why = f"storage: {describe(exc, task.tracking_uri)}"
            return [Outcome(t["optlab.point_hash"], "ERROR", why) for t in tags]
        chunk_error = f"{type(exc).__name__}: {exc}"
        print(
            f"optlab: a chunk of {len(configs)} points failed ({chunk_error}); retrying them one by one",
            file=sys.stderr,
            flush=True,
        )
    done = _finished_hashes(task, tags)
    outcomes = []
    for config, tag in zip(configs, tags):
        point_hash = tag["optlab.point_hash"]
        if point_hash in done:
            outcomes.append(Outcome(point_hash, "FINISHED"))
            continue
        try:
            result = run(config, recorder=recorder(config), extra_tags=dict(tag))
            outcomes.append(Outcome(point_hash, result.status, result.reason))
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            outcomes.append(
                Outcome(point_hash, "ERROR", f"{type(exc).__name__}: {exc} (the chunk failed first: {chunk_error})")
            )
    return outcomes


def worker_tags() -> dict[str, str]:
    """Where a run was trained: `optlab.node` is the Ray node id inside a Ray task, else the host
    name; `optlab.worker` is the training process as host:pid."""
    node = socket.gethostname()
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        try:
            node = ray.get_runtime_context().get_node_id()
        except Exception:  # noqa: BLE001 - not inside a Ray worker after all
            pass
    return {"optlab.node": node, resume.WORKER_TAG: resume.owner_id()}


def _finished_hashes(task: Task, tags: list[dict]) -> set[str]:
    from optlab.tracking.store import client as make_client

    try:
        client = make_client(task.tracking_uri)
        sweep = tags[0]["optlab.sweep"]
        return {
            r.data.tags.get("optlab.point_hash")
            for r in resume.children(client, task.experiment_id, sweep)
            if r.info.status == "FINISHED"
        }
    except Exception:
        return set()


# ---- the parent side ------------------------------------------------------------------------
def run_sweep(
    spec: SweepSpec,
    workers: int = 1,
    backend: str = "local",
    address: str | None = None,
    batched: bool = True,
    progress: bool = True,
    tracking_uri: str | None = None,
    wait: float = 0.0,
) -> SweepReport:
    """Run every point of `spec` not yet FINISHED in the store. `wait`: seconds to wait for another
    process running the same sweep against the same store to end (default: refuse at once)."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    local_cap = max(8, 4 * (os.cpu_count() or 1))
    if backend == "local" and workers > local_cap:
        raise ConfigError(
            f"--workers {workers} is more than 4 local processes per CPU ({os.cpu_count()} CPUs, cap "
            f"{local_cap}): they would only thrash; use --backend ray for a cluster"
        )
    if workers > MAX_WORKERS:
        raise ConfigError(f"--workers {workers} is above {MAX_WORKERS}")
    if address is not None and backend != "ray":
        raise ConfigError(f"--address {address!r} needs --backend ray")
    if address is not None:
        check_ray_address(address)  # before anything is recorded: Ray itself waits minutes for a wrong one
    started = time.perf_counter()
    accounting.take()  # this sweep's timers start at zero
    pool = start_pool(workers) if backend == "local" and workers > 1 else None
    try:
        return _open_and_execute(spec, workers, backend, address, batched, progress, tracking_uri, wait, started, pool)
    finally:
        if pool is not None:
            pool.close()


def start_pool(workers: int):
    """The sweep's worker processes, spawned now: they import torch while this process opens the store,
    and serve every phase of the sweep (a pool per phase paid their start-up twice)."""
    from optlab.sweeps.pool import WorkerPool

    pool = WorkerPool(workers, run_task_timed)
    pool.start()
    return pool


def _open_and_execute(spec, workers, backend, address, batched, progress, tracking_uri, wait, started, pool):
    import _thread

    from optlab.tracking.preflight import check_artifacts_writable
    from optlab.tracking.store import client as make_client
    from optlab.tracking.store import ensure_experiment
    from optlab.tracking.store import tracking_uri as default_uri

    with timed("sweep start"):
        uri = tracking_uri or default_uri()
        client = make_client(uri)  # creates the SQLite store here, in the parent
        experiment_id = ensure_experiment(client, spec.name, spec.description)
        check_artifacts_writable(client, experiment_id)
    in_process = backend == "ray" or workers == 1  # points train in (or are awaited by) this thread
    training = threading.Event()  # set while points run: a lost store may interrupt only then

    def on_lost(reason: str) -> None:
        # a run training in this thread is interrupted; a pool notices on its own (Lease.check)
        if in_process and training.is_set():
            _thread.interrupt_main()

    with Lease(client, spec.name, wait=wait, on_lost=on_lost) as lease:
        with timed("store reads"):
            state = resume.reconcile(client, experiment_id, spec.name)
        with timed("sweep start"):
            parent_run_id, resumed = resume.open_parent(
                client, experiment_id, spec, {"workers": workers, "backend": backend}
            )
        try:
            return _execute(
                spec,
                client,
                uri,
                experiment_id,
                parent_run_id,
                resumed,
                state,
                lease,
                workers,
                backend,
                address,
                batched,
                progress,
                started,
                training,
                pool,
            )
        except KeyboardInterrupt:
            if lease.lost:
                raise StoreError(stopped(spec.name, lease.lost)) from None
            raise


def _execute(
    spec,
    client,
    uri,
    experiment_id,
    parent_run_id,
    resumed,
    state,
    lease,
    workers,
    backend,
    address,
    batched,
    progress,
    started,
    training,
    pool=None,
) -> SweepReport:
    owner = resume.owner_id()
    efficiency = Efficiency(workers, 0.0)
    since_ms = int((time.time() - (time.perf_counter() - started)) * 1000)
    if progress:
        reruns = (
            f" + {sum(len(spec.rerun_seeds) for g in spec.groups.values() if g.tuned)} reruns of the "
            f"selected configurations"
            if spec.objective
            else ""
        )
        print(
            f"sweep {spec.name}: {len(spec.points)} points{reruns}, {len(state.finished)} already finished"
            + (f", {state.killed} interrupted runs marked KILLED" if state.killed else "")
            + f" [{backend}, {workers} worker{'s' if workers > 1 else ''}] parent run {parent_run_id}",
            file=sys.stderr,
        )
    from optlab.tracking import provenance

    load_start = provenance.load_average()
    threads = 1  # one torch thread per worker: on shared cores more threads ran 3-9x slower
    context = _Context(
        uri,
        experiment_id,
        parent_run_id,
        owner,
        threads,
        backend,
        address,
        workers,
        progress,
        client,
        lease,
        pool,
        efficiency,
    )
    status, outcomes, phases = "KILLED", [], {}
    if workers > 1 or backend == "ray":  # this process mostly waits while its workers train
        threading.Thread(target=warm_imports, name="optlab-warm-imports", daemon=True).start()
    try:
        training.set()
        phase_started = time.perf_counter()
        first = [p for p in spec.points if p.role != "rerun"]
        outcomes += run_phase(
            spec, first, set(state.finished), context, batched=batched, label="tuning" if spec.objective else "points"
        )
        phases["tuning" if spec.objective else "points"] = time.perf_counter() - phase_started
        if spec.objective:
            phase_started = time.perf_counter()
            reported, per_run = rerun_plan(spec, client, experiment_id)
            # the rerun seeds past `timed_alone` train batched where the engine can, in the same queue
            outcomes += run_phase(
                spec,
                reported,
                set(state.finished),
                context,
                batched=batched,
                label="reruns",
                alone=lambda p: p.alone,
                estimate=scheduling.measured(per_run),
            )
            phases["reruns"] = time.perf_counter() - phase_started
        training.clear()
        lease.check()
        status = "FINISHED"
        with timed("seed groups"):
            record_groups(client, experiment_id, parent_run_id, spec.name, progress)
    finally:
        training.clear()
        if lease.lost:  # the store is gone (or another process took the sweep over): write nothing more
            raise StoreError(stopped(spec.name, lease.lost))
        with timed("store reads"):
            runs = resume.children(client, experiment_id, spec.name)
            if close_stale_runs(client, experiment_id, spec.name, owner, runs):
                runs = resume.children(client, experiment_id, spec.name)
        report = summarize(client, experiment_id, spec, parent_run_id, resumed, set(state.finished), runs)
        labels = {p.point_hash: p.config.label() for p in spec.points + report.reruns}
        errors = {o.point_hash: str(o.reason) for o in outcomes if o.status == "ERROR"}  # an ERROR names its reason
        without_outcome = {h for h, _, _ in report.incomplete}  # an ERROR of a chunk may name finished points
        report.failures += [(labels.get(h, h), reason) for h, reason in errors.items() if h in without_outcome]
        report.incomplete = [(label, errors.get(h, why)) for h, label, why in report.incomplete]
        report.seconds = time.perf_counter() - started
        report.phase_seconds = phases
        report.load = (load_start, provenance.load_average())
        report.efficiency = measured(efficiency, report.seconds, runs, owner, since_ms)
        final, reason = status, None
        if report.incomplete:
            reason = incomplete_reason(report.incomplete)
            final = "FAILED" if status == "FINISHED" else status
        # the timing's context: which machine, and how busy it was (1/5/15-minute load) at start and end
        resume.finish_parent(
            client,
            parent_run_id,
            {
                **report.counts,
                "seconds": round(report.seconds, 1),
                **{f"{k}_seconds": round(v, 1) for k, v in phases.items()},
                "workers": workers,
                "machine": provenance.machine(),
                "load_start": report.load[0],
                "load_end": report.load[1],
                **report.efficiency.summary(),
            },
            final,
            reason,
        )
    return report


def warm_imports() -> None:
    """Import what selection and seed groups need (scipy: about a second of CPU) while the workers train,
    not after, when every worker slot would wait for it."""
    try:
        import optlab.analysis.curves  # noqa: F401
        import optlab.analysis.stats  # noqa: F401
        import optlab.sweeps.tuning  # noqa: F401
        import optlab.tracking.bulk_reads  # noqa: F401
    except Exception:  # noqa: BLE001 - imported again, and any error raised, where they are used
        pass


def measured(efficiency: Efficiency, seconds: float, runs, owner: str, since_ms: int) -> Efficiency:
    """The sweep's efficiency: its runs' recorded training time, its workers' timers (added as their
    results came in) and this process's own."""
    efficiency.wall = seconds
    efficiency.training, efficiency.runs = training_seconds(runs, owner, since_ms)
    efficiency.add(accounting.take(), in_workers=False)
    efficiency.peak_rss_mb = {"sweep process": accounting.peak_rss_mb(), **efficiency.peak_rss_mb}
    return efficiency


def stopped(name: str, why: str) -> str:
    then = (
        "rerun it when the store is back"
        if why.startswith("lost the tracking store")
        else "check which process runs it now"
    )
    return f"sweep {name!r} stopped: {why}; {then} (finished points are kept)"


def incomplete_reason(incomplete: list[tuple[str, ...]], shown: int = 10) -> str:
    parts = [f"{label} ({why})" for label, why in incomplete[:shown]]
    more = f"; and {len(incomplete) - shown} more" if len(incomplete) > shown else ""
    return (
        f"{len(incomplete)} point{'s' if len(incomplete) != 1 else ''} without an outcome: " + "; ".join(parts) + more
    )


def close_stale_runs(client, experiment_id: str, sweep: str, owner: str, runs: list | None = None) -> int:
    """Runs this sweep process started that are still RUNNING (a worker killed after the grace
    period of an interruption) end KILLED now rather than at the next start. `runs`: the sweep's
    children as just read (else read here). Returns how many were ended."""
    from mlflow.entities import RunTag

    closed = 0
    for run in runs if runs is not None else resume.children(client, experiment_id, sweep):
        if run.info.status == "RUNNING" and run.data.tags.get(resume.OWNER_TAG) == owner:
            worker = run.data.tags.get(resume.WORKER_TAG)
            if resume.owner_alive(worker):
                continue  # still writing: it ends its run itself
            client.log_batch(
                run.info.run_id,
                tags=[RunTag("optlab.status", "KILLED"), RunTag("optlab.failure_reason", "interrupted")],
            )
            client.set_terminated(run.info.run_id, "KILLED")
            closed += 1
    return closed


def record_groups(client, experiment_id: str, parent_run_id: str, sweep: str, progress: bool) -> None:
    """One run per compared configuration, aggregating its seeds (seed_groups.py). The runs themselves are
    recorded already: a failure here is reported and leaves the sweep's result intact."""
    from optlab.tracking.bulk_runs import set_tags

    pending: list[tuple[str, str, str]] = []  # the runs' group and verdict tags, set with the views' run tags
    try:
        groups = seed_groups.record(client, experiment_id, parent_run_id, sweep, tags_out=pending)
    except Exception as exc:  # noqa: BLE001 - the aggregate view must never cost the recorded runs
        if is_storage_failure(exc):
            raise  # the store is gone: the sweep stops with one line, not a warning and then an error
        print(
            f"optlab: warning: seed-group runs of sweep {sweep!r} not recorded: {type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        if pending:  # the groups recorded before the failure keep their runs
            set_tags(client, pending)
        return
    if progress and groups:
        print(f"sweep {sweep}: {len(groups)} seed-group runs (one per compared configuration)", file=sys.stderr)
    try:
        saved_views.save_views(client, experiment_id, run_tags=pending)
        pending = []
    except Exception as exc:  # noqa: BLE001 - the UI's views must never cost the recorded runs
        if is_storage_failure(exc):
            raise
        print(
            f"optlab: warning: the UI views of sweep {sweep!r} not saved: {type(exc).__name__}: {exc}", file=sys.stderr
        )
    if pending:  # the views failed before their tags were set: the groups' own tags still are
        set_tags(client, pending)


@dataclass(frozen=True)
class _Context:
    """Where and how a phase runs its points."""

    uri: str
    experiment_id: str
    parent_run_id: str
    owner: str
    threads: int
    backend: str
    address: str | None
    workers: int
    progress: bool
    client: object  # the parent's store client (a dead worker's runs are recorded through it)
    lease: Lease  # the sweep's lease: a pool stops when it is lost
    pool: object = None  # the sweep's WorkerPool (local, --workers > 1): one for every phase
    efficiency: Efficiency | None = None  # where the workers' timers are added up


def run_phase(
    spec: SweepSpec,
    points: list[Point],
    finished: set[str],
    context: _Context,
    batched: bool,
    label: str,
    alone=lambda point: False,
    estimate=None,
) -> list[Outcome]:
    """Run the points of one phase that are not finished yet; `batched` lets the engine train
    compatible points together, except the points `alone` says train alone (reported runs timed alone);
    `estimate(point)`: its length, to hand out the longest tasks first (default: its planned work)."""
    estimate = estimate or scheduling.planned(spec.work)
    pending = [p for p in points if p.point_hash not in finished]
    if context.progress and points:
        trained_alone = sum(1 for p in pending if not batched or alone(p))
        print(
            f"sweep {spec.name} {label}: {len(points)} points, {len(points) - len(pending)} already finished, "
            f"{len(pending)} to run"
            + (f" ({trained_alone} each trained alone)" if trained_alone and trained_alone < len(pending) else "")
            + (" (each trained alone)" if pending and trained_alone == len(pending) else ""),
            file=sys.stderr,
        )
    with timed("planning"):
        names = naming.sweep_names(spec, points)
        tasks = [
            Task(
                tuple(
                    (
                        replace(p.config, run_name=names[p.point_hash]),
                        {**p.tags(spec.name), resume.OWNER_TAG: context.owner},
                    )
                    for p in chunk
                ),
                context.uri,
                context.experiment_id,
                context.parent_run_id,
                batched,
                context.threads,
                created_at=time.time(),
            )
            for chunk in scheduling.longest_first(
                scheduling.chunk_points(pending, context.workers, batched, alone), estimate
            )
        ]
    outcomes: list[Outcome] = []
    efficiency = context.efficiency if context.efficiency is not None else Efficiency(context.workers, 0.0)
    if context.backend == "ray":
        _run_ray(tasks, context.address, context.workers, context.progress, outcomes, efficiency)
    elif context.workers == 1:
        _run_local(tasks, context.progress, outcomes)
    else:
        _run_pool(
            tasks, context.workers, context.progress, outcomes, context.client, context.lease, context.pool, efficiency
        )
    return outcomes


def add_result(efficiency: Efficiency, result: TaskResult) -> list[Outcome]:
    """A worker's result: its outcomes; its timers and memory go to the sweep's efficiency (the timers of
    a chunk run in this process are this process's own already)."""
    if result.pid != accounting.process_id():
        efficiency.add(result.timings, in_workers=True)
        efficiency.in_tasks += result.seconds
        peak = efficiency.peak_rss_mb.get("worker (max)", 0.0)
        efficiency.peak_rss_mb["worker (max)"] = max(peak, result.peak_rss_mb)
    return result.outcomes


def reported_points(spec: SweepSpec, client, experiment_id: str) -> list[Point]:
    """Phase 2's points: strategies run as given and series (known up front), and the reruns of each
    group's selected trial as the store now says (a failed group reruns nothing)."""
    return rerun_plan(spec, client, experiment_id)[0]


def rerun_plan(spec: SweepSpec, client, experiment_id: str) -> tuple[list[Point], dict[str, float]]:
    """The reported points (reported_points) and the training seconds per run each tuning group measured
    (to hand out the longest tasks first), from one read of the store."""
    with timed("store reads"):
        latest = latest_runs(client, experiment_id, spec)
    with timed("selection"):
        _, selections = read_selection(spec, latest)
    known = [p for p in spec.points if p.role == "rerun"]
    reported = known + spec.reruns({g: s.trial for g, s in selections.items()})
    return reported, scheduling.seconds_per_run(latest.values())


def _bar(total: int, progress: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="point", disable=not progress, dynamic_ncols=True, file=sys.stderr)


def _total(tasks: list[Task]) -> int:
    return sum(len(t.points) for t in tasks)


def _run_local(tasks: list[Task], progress: bool, outcomes: list[Outcome]) -> None:
    with _bar(_total(tasks), progress) as bar:
        for task in tasks:
            outcomes += run_task(task)
            bar.update(len(task.points))


def _run_pool(
    tasks: list[Task],
    workers: int,
    progress: bool,
    outcomes: list[Outcome],
    client,
    lease: Lease,
    pool=None,
    efficiency: Efficiency | None = None,
) -> None:
    from optlab.sweeps.pool import WorkerPool

    efficiency = efficiency if efficiency is not None else Efficiency(workers, 0.0)
    with _bar(_total(tasks), progress) as bar:

        def on_result(task: Task, value: TaskResult) -> None:
            outcomes.extend(add_result(efficiency, value))
            bar.update(len(task.points))

        def on_error(task: Task, text: str) -> None:
            outcomes.extend(Outcome(tag["optlab.point_hash"], "ERROR", text) for _, tag in task.points)
            bar.update(len(task.points))

        def on_death(task: Task, death) -> list[Task]:
            retry, lost = account_dead_worker(client, task, death)
            outcomes.extend(lost)
            bar.update(len(task.points) - (len(retry[0].points) if retry else 0))
            if progress:
                print(
                    f"\noptlab: {death.describe()}: {len(task.points) - (len(retry[0].points) if retry else 0)} "
                    f"point(s) lost, {len(retry[0].points) if retry else 0} queued again; the sweep goes on",
                    file=sys.stderr,
                )
            return retry

        if pool is None:
            WorkerPool(workers, run_task_timed).run(tasks, on_result, on_death, on_error, check=lease.check)
        else:
            pool.run(tasks, on_result, on_death, on_error, check=lease.check, close=False)


def account_dead_worker(client, task: Task, death) -> tuple[list[Task], list[Outcome]]:
    """A worker died holding `task`: its RUNNING runs are recorded FAILED with the reason; points it
    never started are queued again once (a second death marks them lost). Returns (tasks to queue,
    outcomes of the points lost without a run)."""
    from dataclasses import replace

    from mlflow.entities import RunTag

    why = death.describe()
    worker = f"{resume.owner_id().rpartition(':')[0]}:{death.pid}"
    sweep = task.points[0][1]["optlab.sweep"]
    hashes = {tag["optlab.point_hash"] for _, tag in task.points}
    started = set()
    for run in resume.children(client, task.experiment_id, sweep):
        point = run.data.tags.get("optlab.point_hash")
        if point not in hashes or run.data.tags.get(resume.WORKER_TAG) != worker:
            continue
        started.add(point)
        if run.info.status == "RUNNING":
            client.log_batch(
                run.info.run_id, tags=[RunTag("optlab.status", "FAILED"), RunTag("optlab.failure_reason", why)]
            )
            client.set_terminated(run.info.run_id, "FAILED")
    unstarted = tuple((c, t) for c, t in task.points if t["optlab.point_hash"] not in started)
    if not unstarted:
        return [], []
    if task.attempt == 0:
        return [replace(task, points=unstarted, attempt=1)], []
    return [], [Outcome(t["optlab.point_hash"], "ERROR", f"{why} before it started this point") for _, t in unstarted]


RAY_TASK_RETRIES = 3  # a task whose worker or node dies is resubmitted, on any node that is left
RAY_CONNECT_TIMEOUT = 10.0  # seconds to reach the head's port before giving up


def check_ray_address(address: str) -> None:
    """Refuse a --address whose head cannot be reached, in one line: `ray.init` would retry for
    minutes. 'auto' and Ray client addresses (ray://...) are left to Ray."""
    import socket

    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address!r} is not HOST:PORT (the head node's `ray start --port`)")
    try:
        socket.create_connection((host, int(port)), timeout=RAY_CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise OptlabError(
            f"cannot reach the Ray head at {address}: {exc.strerror or exc} "
            f"(is `ray start --head --port {port}` running there?)"
        ) from None


def _run_ray(
    tasks: list[Task],
    address: str | None,
    workers: int,
    progress: bool,
    outcomes: list[Outcome],
    efficiency: Efficiency | None = None,
) -> None:
    try:
        import ray
    except ImportError:
        raise OptlabError("the ray backend needs Ray: pip install 'optlab[ray]'") from None
    # workers on other machines see none of this process's environment: send what tracking and
    # optlab read (MLFLOW_TRACKING_URI, credentials and timeouts of an MLflow server, OPTLAB_*)
    env = {k: v for k, v in os.environ.items() if k == "PYTHONPATH" or k.startswith(("MLFLOW_", "OPTLAB_"))}
    uri = tasks[0].tracking_uri if tasks else ""
    if address is not None and uri.startswith("sqlite:"):
        print(
            f"optlab: warning: Ray tasks on other machines cannot reach {uri}; point MLFLOW_TRACKING_URI at "
            f"a shared MLflow server (e.g. PostgreSQL-backed)",
            file=sys.stderr,
        )
    started_here = not ray.is_initialized()
    if started_here:
        options: dict[str, Any] = {
            "runtime_env": {"env_vars": env},
            "include_dashboard": False,
            "log_to_driver": False,
            "configure_logging": False,
        }
        if address is None:
            options["num_cpus"] = workers  # a local instance: one task per worker
        try:
            ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:  # e.g. a missing or wrong RAY_AUTH_TOKEN
            raise OptlabError(f"cannot join the Ray cluster at {address}: {_first_line(exc)}") from None
    try:
        remote = ray.remote(num_cpus=1, max_retries=RAY_TASK_RETRIES)(run_ray_task)
        refs = {remote.remote(task): task for task in tasks}
        with _bar(_total(tasks), progress) as bar:
            waiting = list(refs)
            while waiting:
                done, waiting = ray.wait(waiting, num_returns=1)
                task = refs[done[0]]
                try:
                    result = ray.get(done[0])
                    outcomes += add_result(efficiency, result) if efficiency is not None else result.outcomes
                except ray.exceptions.RayError as exc:  # lost for good: retries used up, or the cluster went away
                    reason = f"Ray task lost: {type(exc).__name__}: {_first_line(exc)}"
                    outcomes += [Outcome(tag["optlab.point_hash"], "ERROR", reason) for _, tag in task.points]
                bar.update(len(task.points))
        _close_orphans(tasks)
    finally:
        if started_here:
            ray.shutdown()


RAY_TASK_TAG = "optlab.ray_task"  # Ray keeps a task's id across its retries


def run_ray_task(task: Task) -> TaskResult:
    """`run_task` as a Ray task. Ray reruns a task whose worker or node died (max_retries); the
    runs of a lost attempt carry the same task id, so a retry skips the points that attempt already
    FINISHED and marks the ones it left RUNNING KILLED before training them again."""
    import ray

    from optlab.tracking.store import client as make_client

    task_id = ray.get_runtime_context().get_task_id()
    done: set[str] = set()
    if task.points and task_id:
        client = make_client(task.tracking_uri)
        for run in resume.search_all(client, task.experiment_id, f"tags.`{RAY_TASK_TAG}` = '{task_id}'"):
            point = run.data.tags.get("optlab.point_hash")
            if run.info.status == "FINISHED":
                done.add(point)
            elif run.info.status in ("RUNNING", "SCHEDULED"):
                _mark_lost(client, run, "; the task was retried")
    rest = tuple((c, {**t, RAY_TASK_TAG: task_id}) for c, t in task.points if t["optlab.point_hash"] not in done)
    skipped = [Outcome(t["optlab.point_hash"], "FINISHED") for _, t in task.points if t["optlab.point_hash"] in done]
    if not rest:
        return TaskResult(skipped, accounting.take(), accounting.process_id(), accounting.peak_rss_mb())
    result = run_task_timed(
        Task(rest, task.tracking_uri, task.experiment_id, task.parent_run_id, task.batched, task.threads)
    )
    return replace(result, outcomes=skipped + result.outcomes)


def _close_orphans(tasks: list[Task]) -> None:
    """After every task has returned, a child of this sweep process still RUNNING was being trained
    by a worker that died (its task was retried elsewhere, or lost): mark it KILLED."""
    from optlab.tracking.store import client as make_client

    if not tasks or not tasks[0].points:
        return
    first = tasks[0].points[0][1]
    owner, sweep = first[resume.OWNER_TAG], first["optlab.sweep"]
    client = make_client(tasks[0].tracking_uri)
    for run in resume.children(client, tasks[0].experiment_id, sweep):
        if run.info.status in ("RUNNING", "SCHEDULED") and run.data.tags.get(resume.OWNER_TAG) == owner:
            _mark_lost(client, run)


def _mark_lost(client, run, detail: str = "") -> None:
    from mlflow.entities import RunTag

    node = run.data.tags.get("optlab.node", "unknown")
    client.log_batch(
        run.info.run_id,
        tags=[
            RunTag("optlab.status", "KILLED"),
            RunTag("optlab.failure_reason", f"interrupted: its Ray worker on node {node} was lost{detail}"),
        ],
    )
    client.set_terminated(run.info.run_id, "KILLED", end_time=int(time.time() * 1000))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else ""


# ---- after the points -----------------------------------------------------------------------
def latest_runs(client, experiment_id: str, spec: SweepSpec, runs: list | None = None) -> dict[str, Run]:
    """The run of each point hash that counts: a FINISHED run wins; otherwise the most recent attempt.
    `runs`: the sweep's children as just read (else read here)."""
    latest: dict[str, Run] = {}
    for run in runs if runs is not None else resume.children(client, experiment_id, spec.name):
        point = run.data.tags.get("optlab.point_hash")
        best = latest.get(point)
        if best is None or _rank(run) > _rank(best):
            latest[point] = run
    return latest


def read_selection(spec: SweepSpec, latest: dict) -> tuple[list[tuning.Trial], dict[str, tuning.Selection]]:
    """The tuning trials recorded so far and each group's selection (reads validation metrics only).
    A group is selected only once every one of its trials has an outcome (FINISHED, or FAILED because
    it diverged): a trial lost to a dead worker or a full disk is rerun first, never silently skipped."""
    from optlab.sweeps import tuning

    trials, unfinished = [], set()
    for point in spec.points:
        if point.role != "tuning":
            continue
        run = latest.get(point.point_hash)
        if run is None or outcome_missing(run) is not None:
            unfinished.add(point.group)
            continue
        group, trial = point.tuning_key
        trials.append(tuning.Trial(run.info.run_id, group, trial, run.info.status, dict(run.data.metrics)))
    selections = tuning.select(trials, spec.objective, spec.groups) if spec.objective else {}
    return trials, {group: s for group, s in selections.items() if group not in unfinished}


def summarize(
    client,
    experiment_id: str,
    spec: SweepSpec,
    parent_run_id: str,
    resumed: bool,
    finished_before: set[str],
    runs: list | None = None,
) -> SweepReport:
    """Read the sweep back from the store: statuses per point, tuning selection, reruns, the table.
    Tags every trial selected true/false and every rerun of an earlier, different selection false."""
    from optlab.tracking.bulk_runs import set_tags

    with timed("store reads"):
        latest = latest_runs(client, experiment_id, spec, runs)
    with timed("selection"):
        trials, selections = read_selection(spec, latest)
        reruns = spec.reruns({g: sel.trial for g, sel in selections.items()})
        points = spec.points + reruns
        current = {p.point_hash for p in points}
        # every trial selected true/false (tuning.mark's tags), every stale rerun false: only the tags that
        # change, in one transaction where the store allows it
        picked = {run_id for s in selections.values() for run_id in s.run_ids}
        runs_by_id = {run.info.run_id: run for run in latest.values()}
        changes = [(t.run_id, "optlab.selected", "true" if t.run_id in picked else "false") for t in trials]
        changes += [
            (run.info.run_id, "optlab.selected", "false")
            for run in latest.values()
            if run.data.tags.get("optlab.role") == "rerun" and run.data.tags.get("optlab.point_hash") not in current
        ]
        set_tags(
            client,
            [
                (run_id, key, value)
                for run_id, key, value in changes
                if run_id not in runs_by_id or runs_by_id[run_id].data.tags.get(key) != value
            ],
        )
    rows: defaultdict[str, defaultdict[str, Any]] = defaultdict(lambda: defaultdict(int))  # counts and texts
    failures: list[tuple[str, str]] = []
    incomplete: list[tuple[str, ...]] = []  # (point hash, label, why)
    for point in points:
        run = latest.get(point.point_hash)
        status = run.info.status if run is not None else "MISSING"
        why = outcome_missing(run)
        if why is not None:
            incomplete.append((point.point_hash, point.config.label(), why))
        key = f"series {point.series}" if point.series else point.group if point.group else "points"
        row = rows[key]
        row["points"] += 1
        if point.point_hash in finished_before:
            row["skipped"] += 1
        elif status == "FINISHED":
            row["finished"] += 1
        elif status == "FAILED" and run is not None:
            row["failed"] += 1
            failures.append((point.config.label(), run.data.tags.get("optlab.failure_reason", "")))
        else:
            row["missing"] += 1
        if point.group is not None:
            row["trials"] = point.trials or 0
    objective = spec.objective
    for group, selection in selections.items():  # non-empty only for a sweep with an objective
        rows[group]["selected"] = selection.text(objective) if objective is not None else selection.trial
        rows[group]["edge"] = "; ".join(flag.text() for flag in selection.edge)
    for name, declared in spec.groups.items():
        if declared.tuned and name in rows and name not in selections:
            rows[name]["selected"] = "nothing (every trial failed)"
        elif not declared.tuned and name in rows:
            rows[name]["selected"] = "(as given)"
    counts = {
        k: sum(int(r.get(k, 0)) for r in rows.values()) for k in ("points", "finished", "failed", "skipped", "missing")
    }
    counts["selected"] = sum(len(s.run_ids) for s in selections.values())
    counts["reruns"] = len(reruns) + sum(p.role == "rerun" for p in spec.points)
    order = {name: i for i, name in enumerate(spec.groups)}
    return SweepReport(
        spec.name,
        parent_run_id,
        resumed,
        counts,
        selections,
        _table(rows, counts, order),
        0.0,
        failures,
        incomplete,
        reruns=reruns,
        objective=spec.objective,
    )


def outcome_missing(run) -> str | None:
    """None when `run` is a point's outcome: FINISHED, or FAILED because the optimizer diverged (a
    result, the same on every rerun); otherwise why the point has no outcome yet."""
    if run is None:
        return "not run"
    reason = run.data.tags.get("optlab.failure_reason", "")
    if run.info.status == "FINISHED" or (run.info.status == "FAILED" and reason.startswith("diverged")):
        return None
    return f"{run.info.status}: {reason}" if reason else run.info.status


def _rank(run) -> tuple[int, int]:
    return (run.info.status == "FINISHED", run.info.start_time or 0)


def _table(rows: dict, counts: dict, order: dict) -> str:
    import pandas as pd

    columns = ["points", "finished", "failed", "skipped", "missing", "trials", "selected", "edge of grid"]
    # tuning groups first, in file order; untuned points and series after them
    keys = sorted(rows, key=lambda k: (k not in order, order.get(k, 0), k))
    frame = pd.DataFrame(
        [
            {c: rows[k].get("edge" if c == "edge of grid" else c, "" if c in columns[5:] else 0) for c in columns}
            for k in keys
        ],
        index=keys,
    )
    if not (frame["edge of grid"] != "").any():
        frame = frame.drop(columns=["edge of grid"])
    if not order:
        frame = frame.drop(columns=["trials", "selected"])
    total = {c: counts[c] for c in columns[:5]}
    if order:
        total["selected"] = f"{counts['selected']} trial runs selected, {counts['reruns']} reruns"
    frame.loc["total"] = [total.get(c, "") for c in frame.columns]
    frame.index.name = "group"
    return frame.to_string()
