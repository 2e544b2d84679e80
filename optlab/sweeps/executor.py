"""Run a sweep's points: in this process, on a local process pool, or as Ray tasks.

Protocol (tune, then rerun): phase 1 runs the tuning trials (and the points of an untuned sweep),
batched where the engine can; the selection is read back from the store; phase 2 runs the reported
runs — the selected configuration of every group on the fresh rerun seeds, strategies run as given,
and series — one at a time (`batched=False`), so each reported run's wall time is its own.

The parent process creates the store, the experiment and the parent run before any worker starts
(several processes creating a fresh SQLite store at once crash); workers get the tracking URI, the
experiment id and the parent run id, and each point becomes one nested child run. Points are sent
to `optlab.engine.run_many` in chunks of compatible configs (same problem, strategy and batch
size), so a batched run_many trains them together. A failing point (divergence, exception) is
recorded FAILED and never stops the others.
"""

from __future__ import annotations

import inspect
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace

from optlab.errors import ConfigError, OptlabError
from optlab.sweeps import naming, resume, seed_groups, tuning
from optlab.sweeps.spec import Point, SweepSpec

BACKENDS = ("local", "ray")
MAX_CHUNK = 16


@dataclass(frozen=True)
class Task:
    """What a worker needs for one chunk: configs with their tags, and where to record them."""
    points: tuple[tuple[object, dict], ...]   # (RunConfig, tags)
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    batched: bool
    threads: int


@dataclass(frozen=True)
class Outcome:
    point_hash: str
    status: str             # FINISHED | FAILED | KILLED | ERROR (no run recorded)
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
    failures: list[tuple[str, str]] = field(default_factory=list)   # (point label, reason)
    reruns: list[Point] = field(default_factory=list)                # the selected configurations' reruns
    phase_seconds: dict[str, float] = field(default_factory=dict)    # tuning / reruns / points
    objective: str | None = None
    load: tuple[str, str] = ("", "")                                 # load averages at start and end

    @property
    def edge_flags(self) -> list[tuple[str, str]]:
        """(group, message) for every selection at the edge of its tuning grid."""
        return [(group, flag.text()) for group, s in self.selections.items() for flag in s.edge]


# ---- the worker side ------------------------------------------------------------------------
def run_task(task: Task) -> list[Outcome]:
    """Run one chunk of points; importable by pool and Ray workers."""
    import torch

    from optlab.engine import run, run_many
    from optlab.tracking import RunRecorder

    torch.set_num_threads(task.threads)
    configs = [c for c, _ in task.points]
    tags = [t for _, t in task.points]

    def recorder(_config):
        return RunRecorder(experiment_id=task.experiment_id, parent_run_id=task.parent_run_id,
                           tracking_uri=task.tracking_uri)

    kwargs = {}
    if "batched" in inspect.signature(run_many).parameters:
        kwargs["batched"] = task.batched
    try:
        results = run_many(configs, make_recorder=recorder, extra_tags=tags, **kwargs)
        return [Outcome(t["optlab.point_hash"], r.status, r.reason) for t, r in zip(tags, results)]
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # an error outside a run (e.g. the store): say so, retry point by point below
        chunk_error = f"{type(exc).__name__}: {exc}"
        print(f"optlab: a chunk of {len(configs)} points failed ({chunk_error}); retrying them one by one",
              file=sys.stderr, flush=True)
    done = _finished_hashes(task, tags)
    outcomes = []
    for config, tag in task.points:
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
            outcomes.append(Outcome(point_hash, "ERROR", f"{type(exc).__name__}: {exc} (the chunk failed first: "
                                                         f"{chunk_error})"))
    return outcomes


def _finished_hashes(task: Task, tags: list[dict]) -> set[str]:
    from optlab.tracking.store import client as make_client

    try:
        client = make_client(task.tracking_uri)
        sweep = tags[0]["optlab.sweep"]
        return {r.data.tags.get("optlab.point_hash") for r in resume.children(client, task.experiment_id, sweep)
                if r.info.status == "FINISHED"}
    except Exception:
        return set()


# ---- the parent side ------------------------------------------------------------------------
def run_sweep(spec: SweepSpec, workers: int = 1, backend: str = "local", address: str | None = None,
              batched: bool = True, progress: bool = True, tracking_uri: str | None = None) -> SweepReport:
    from optlab.tracking.store import client as make_client, ensure_experiment, tracking_uri as default_uri

    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    if address is not None and backend != "ray":
        raise ConfigError(f"--address {address!r} needs --backend ray")
    started = time.perf_counter()
    uri = tracking_uri or default_uri()
    client = make_client(uri)                       # creates the SQLite store here, in the parent
    experiment_id = ensure_experiment(client, spec.name, spec.description)
    state = resume.reconcile(client, experiment_id, spec.name)
    parent_run_id, resumed = resume.open_parent(client, experiment_id, spec,
                                                {"workers": workers, "backend": backend})
    owner = resume.owner_id()
    if progress:
        reruns = (f" + {sum(len(spec.rerun_seeds) for g in spec.groups.values() if g.tuned)} reruns of the "
                  f"selected configurations" if spec.objective else "")
        print(f"sweep {spec.name}: {len(spec.points)} points{reruns}, {len(state.finished)} already finished"
              + (f", {state.killed} interrupted runs marked KILLED" if state.killed else "")
              + f" [{backend}, {workers} worker{'s' if workers > 1 else ''}] parent run {parent_run_id}",
              file=sys.stderr)
    from optlab.tracking import provenance

    load_start = provenance.load_average()
    threads = 1  # one torch thread per worker: on shared cores more threads ran 3-9x slower
    context = _Context(uri, experiment_id, parent_run_id, owner, threads, backend, address, workers, progress)
    status, outcomes, phases = "KILLED", [], {}
    try:
        phase_started = time.perf_counter()
        first = [p for p in spec.points if p.role != "rerun"]
        outcomes += run_phase(spec, first, set(state.finished), context, batched=batched, label="tuning"
                              if spec.objective else "points")
        phases["tuning" if spec.objective else "points"] = time.perf_counter() - phase_started
        if spec.objective:
            phase_started = time.perf_counter()
            reported = reported_points(spec, client, experiment_id)
            outcomes += run_phase(spec, reported, set(state.finished), context, batched=False, label="reruns")
            phases["reruns"] = time.perf_counter() - phase_started
        status = "FINISHED"
        record_groups(client, experiment_id, parent_run_id, spec.name, progress)
    finally:
        report = summarize(client, experiment_id, spec, parent_run_id, resumed, set(state.finished))
        labels = {p.point_hash: p.config.label() for p in spec.points + report.reruns}
        report.failures += [(labels.get(o.point_hash, o.point_hash), o.reason) for o in outcomes
                            if o.status == "ERROR"]
        report.seconds = time.perf_counter() - started
        report.phase_seconds = phases
        report.load = (load_start, provenance.load_average())
        # the timing's context: which machine, and how busy it was (1/5/15-minute load) at start and end
        resume.finish_parent(client, parent_run_id, {**report.counts, "seconds": round(report.seconds, 1),
                                                     **{f"{k}_seconds": round(v, 1) for k, v in phases.items()},
                                                     "workers": workers, "machine": provenance.machine(),
                                                     "load_start": report.load[0], "load_end": report.load[1]},
                             status)
    return report


def record_groups(client, experiment_id: str, parent_run_id: str, sweep: str, progress: bool) -> None:
    """One run per compared configuration, aggregating its seeds (seed_groups.py). The runs themselves are
    recorded already: a failure here is reported and leaves the sweep's result intact."""
    try:
        groups = seed_groups.record(client, experiment_id, parent_run_id, sweep)
    except Exception as exc:  # noqa: BLE001 - the aggregate view must never cost the recorded runs
        print(f"optlab: warning: seed-group runs of sweep {sweep!r} not recorded: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return
    if progress and groups:
        print(f"sweep {sweep}: {len(groups)} seed-group runs (one per compared configuration)", file=sys.stderr)


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


def run_phase(spec: SweepSpec, points: list[Point], finished: set[str], context: _Context, batched: bool,
              label: str) -> list[Outcome]:
    """Run the points of one phase that are not finished yet; `batched` lets the engine train
    compatible points together (tuning), or not (reported runs, timed alone)."""
    pending = [p for p in points if p.point_hash not in finished]
    if context.progress and points:
        print(f"sweep {spec.name} {label}: {len(points)} points, {len(points) - len(pending)} already finished, "
              f"{len(pending)} to run" + ("" if batched else " (each trained alone)"), file=sys.stderr)
    names = naming.sweep_names(spec, points)
    tasks = [Task(tuple((replace(p.config, run_name=names[p.point_hash]),
                         {**p.tags(spec.name), resume.OWNER_TAG: context.owner}) for p in chunk),
                  context.uri, context.experiment_id, context.parent_run_id, batched, context.threads)
             for chunk in chunk_points(pending, context.workers)]
    outcomes: list[Outcome] = []
    if context.backend == "ray":
        _run_ray(tasks, context.address, context.workers, context.progress, outcomes)
    elif context.workers == 1:
        _run_local(tasks, context.progress, outcomes)
    else:
        _run_pool(tasks, context.workers, context.progress, outcomes)
    return outcomes


def reported_points(spec: SweepSpec, client, experiment_id: str) -> list[Point]:
    """Phase 2's points: strategies run as given and series (known up front), and the reruns of each
    group's selected trial as the store now says (a failed group reruns nothing)."""
    latest = latest_runs(client, experiment_id, spec)
    _, selections = read_selection(spec, latest)
    known = [p for p in spec.points if p.role == "rerun"]
    return known + spec.reruns({g: s.trial for g, s in selections.items()})


def chunk_points(points: list[Point], workers: int) -> list[list[Point]]:
    """Compatible points together (same problem, strategy, batch size), at most MAX_CHUNK per
    chunk and small enough that every worker gets work."""
    groups: dict[tuple, list[Point]] = defaultdict(list)
    for p in points:
        c = p.config
        # coarse on purpose (e.g. label noise levels share a chunk): run_many splits what it cannot batch
        groups[(c.strategy, c.batch_size, c.dataset, c.variant, c.train_size, c.hidden,
                c.activation, c.cost, c.standardize, c.dtype)].append(p)
    size = max(1, min(MAX_CHUNK, -(-len(points) // (2 * workers)) if workers > 1 else MAX_CHUNK))
    return [group[i:i + size] for group in groups.values() for i in range(0, len(group), size)]


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


def _run_pool(tasks: list[Task], workers: int, progress: bool, outcomes: list[Outcome]) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn: forking a parent that holds torch/SQLite threads and connections is unsafe
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool, \
            _bar(_total(tasks), progress) as bar:
        futures = {pool.submit(run_task, task): task for task in tasks}
        try:
            for future in as_completed(futures):
                outcomes += future.result()
                bar.update(len(futures[future].points))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _run_ray(tasks: list[Task], address: str | None, workers: int, progress: bool,
             outcomes: list[Outcome]) -> None:
    try:
        import ray
    except ImportError:
        raise OptlabError("the ray backend needs Ray: pip install 'optlab[ray]'") from None
    env = {k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "OPTLAB_HOME", "MLFLOW_TRACKING_URI")}
    uri = tasks[0].tracking_uri if tasks else ""
    if address is not None and uri.startswith("sqlite:"):
        print(f"optlab: warning: Ray tasks on other machines cannot reach {uri}; point MLFLOW_TRACKING_URI at "
              f"a shared MLflow server (e.g. PostgreSQL-backed)", file=sys.stderr)
    started_here = not ray.is_initialized()
    if started_here:
        options = {"runtime_env": {"env_vars": env}, "include_dashboard": False, "log_to_driver": False,
                   "configure_logging": False}
        if address is None:
            options["num_cpus"] = workers  # a local instance: one task per worker
        ray.init(address=address, **options)
    try:
        remote = ray.remote(num_cpus=1)(run_task)
        refs = {remote.remote(task): task for task in tasks}
        with _bar(_total(tasks), progress) as bar:
            waiting = list(refs)
            while waiting:
                done, waiting = ray.wait(waiting, num_returns=1)
                outcomes += ray.get(done[0])
                bar.update(len(refs[done[0]].points))
    finally:
        if started_here:
            ray.shutdown()


# ---- after the points -----------------------------------------------------------------------
def latest_runs(client, experiment_id: str, spec: SweepSpec) -> dict[str, object]:
    """The run of each point hash that counts: a FINISHED run wins; otherwise the most recent attempt."""
    latest: dict[str, object] = {}
    for run in resume.children(client, experiment_id, spec.name):
        point = run.data.tags.get("optlab.point_hash")
        best = latest.get(point)
        if best is None or _rank(run) > _rank(best):
            latest[point] = run
    return latest


def read_selection(spec: SweepSpec, latest: dict) -> tuple[list[tuning.Trial], dict[str, tuning.Selection]]:
    """The tuning trials recorded so far and each group's selection (reads validation metrics only)."""
    trials = []
    for point in spec.points:
        run = latest.get(point.point_hash)
        if point.role == "tuning" and run is not None and run.info.status in ("FINISHED", "FAILED"):
            trials.append(tuning.Trial(run.info.run_id, point.group, point.trial, run.info.status,
                                       dict(run.data.metrics)))
    selections = tuning.select(trials, spec.objective, spec.groups) if spec.objective else {}
    return trials, selections


def summarize(client, experiment_id: str, spec: SweepSpec, parent_run_id: str, resumed: bool,
              finished_before: set[str]) -> SweepReport:
    """Read the sweep back from the store: statuses per point, tuning selection, reruns, the table.
    Tags every trial selected true/false and every rerun of an earlier, different selection false."""
    from mlflow.entities import RunTag

    latest = latest_runs(client, experiment_id, spec)
    trials, selections = read_selection(spec, latest)
    if trials:
        tuning.mark(client, trials, selections)
    reruns = spec.reruns({g: sel.trial for g, sel in selections.items()})
    points = spec.points + reruns
    current = {p.point_hash for p in points}
    for run in latest.values():
        if (run.data.tags.get("optlab.role") == "rerun" and run.data.tags.get("optlab.point_hash") not in current
                and run.data.tags.get("optlab.selected") != "false"):
            client.log_batch(run.info.run_id, tags=[RunTag("optlab.selected", "false")])
    rows, failures = defaultdict(lambda: defaultdict(int)), []
    for point in points:
        run = latest.get(point.point_hash)
        status = run.info.status if run is not None else "MISSING"
        key = (f"series {point.series}" if point.series else point.group if point.group else "points")
        row = rows[key]
        row["points"] += 1
        if point.point_hash in finished_before:
            row["skipped"] += 1
        elif status == "FINISHED":
            row["finished"] += 1
        elif status == "FAILED":
            row["failed"] += 1
            failures.append((point.config.label(), run.data.tags.get("optlab.failure_reason", "")))
        else:
            row["missing"] += 1
        if point.group is not None:
            row["trials"] = point.trials or 0
    for group, selection in selections.items():
        rows[group]["selected"] = selection.text(spec.objective)
        rows[group]["edge"] = "; ".join(flag.text() for flag in selection.edge)
    for name, group in spec.groups.items():
        if group.tuned and name in rows and name not in selections:
            rows[name]["selected"] = "nothing (every trial failed)"
        elif not group.tuned and name in rows:
            rows[name]["selected"] = "(as given)"
    counts = {k: sum(int(r.get(k, 0)) for r in rows.values())
              for k in ("points", "finished", "failed", "skipped", "missing")}
    counts["selected"] = sum(len(s.run_ids) for s in selections.values())
    counts["reruns"] = len(reruns) + sum(p.role == "rerun" for p in spec.points)
    order = {name: i for i, name in enumerate(spec.groups)}
    return SweepReport(spec.name, parent_run_id, resumed, counts, selections, _table(rows, counts, order), 0.0,
                       failures, reruns=reruns, objective=spec.objective)


def _rank(run) -> tuple[int, int]:
    return (run.info.status == "FINISHED", run.info.start_time or 0)


def _table(rows: dict, counts: dict, order: dict) -> str:
    import pandas as pd

    columns = ["points", "finished", "failed", "skipped", "missing", "trials", "selected", "edge of grid"]
    # tuning groups first, in file order; untuned points and series after them
    keys = sorted(rows, key=lambda k: (k not in order, order.get(k, 0), k))
    frame = pd.DataFrame([{c: rows[k].get("edge" if c == "edge of grid" else c, "" if c in columns[5:] else 0)
                           for c in columns} for k in keys], index=keys)
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
