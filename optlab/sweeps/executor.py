"""Run a sweep's points: in this process, on a local process pool, or as Ray tasks.

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
from dataclasses import dataclass, field

from optlab.errors import ConfigError, OptlabError
from optlab.sweeps import resume, tuning
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
    pending = [p for p in spec.points if p.point_hash not in state.finished]
    skipped = len(spec.points) - len(pending)
    if progress:
        print(f"sweep {spec.name}: {len(spec.points)} points, {skipped} already finished, "
              f"{len(pending)} to run" + (f", {state.killed} interrupted runs marked KILLED" if state.killed else "")
              + f" [{backend}, {workers} worker{'s' if workers > 1 else ''}] parent run {parent_run_id}",
              file=sys.stderr)
    threads = 1  # one torch thread per worker: on shared cores more threads ran 3-9x slower
    tasks = [Task(tuple((p.config, {**p.tags(spec.name), resume.OWNER_TAG: owner}) for p in chunk), uri,
                  experiment_id, parent_run_id, batched, threads)
             for chunk in chunk_points(pending, workers)]
    status, outcomes = "KILLED", []
    try:
        if backend == "ray":
            _run_ray(tasks, address, workers, progress, outcomes)
        elif workers == 1:
            _run_local(tasks, progress, outcomes)
        else:
            _run_pool(tasks, workers, progress, outcomes)
        status = "FINISHED"
    finally:
        report = summarize(client, experiment_id, spec, parent_run_id, resumed, set(state.finished))
        labels = {p.point_hash: p.config.label() for p in spec.points}
        report.failures += [(labels[o.point_hash], o.reason) for o in outcomes if o.status == "ERROR"]
        report.seconds = time.perf_counter() - started
        resume.finish_parent(client, parent_run_id, {**report.counts, "seconds": round(report.seconds, 1)},
                             status)
    return report


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
def summarize(client, experiment_id: str, spec: SweepSpec, parent_run_id: str, resumed: bool,
              finished_before: set[str]) -> SweepReport:
    """Read the sweep back from the store: statuses per point, tuning selection, the table."""
    latest: dict[str, object] = {}
    for run in resume.children(client, experiment_id, spec.name):
        point = run.data.tags.get("optlab.point_hash")
        best = latest.get(point)
        # a FINISHED run wins; otherwise the most recent attempt
        if best is None or _rank(run) > _rank(best):
            latest[point] = run
    trials, rows, failures = [], defaultdict(lambda: defaultdict(int)), []
    for point in spec.points:
        run = latest.get(point.point_hash)
        status = run.info.status if run is not None else "MISSING"
        key = point.group if point.role == "tuning" else (f"series {point.series}" if point.series else "points")
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
        if point.role == "tuning" and run is not None and status in ("FINISHED", "FAILED"):
            trials.append(tuning.Trial(run.info.run_id, point.group, point.trial, status, dict(run.data.metrics)))
    selections = tuning.select(trials, spec.objective) if spec.objective else {}
    if trials:
        tuning.mark(client, trials, selections)
    for group, selection in selections.items():
        rows[group]["selected"] = f"{selection.trial} ({spec.objective} {selection.score:.4g})"
    counts = {k: sum(int(r.get(k, 0)) for r in rows.values())
              for k in ("points", "finished", "failed", "skipped", "missing")}
    counts["selected"] = sum(len(s.run_ids) for s in selections.values())
    return SweepReport(spec.name, parent_run_id, resumed, counts, selections, _table(rows, counts), 0.0, failures)


def _rank(run) -> tuple[int, int]:
    return (run.info.status == "FINISHED", run.info.start_time or 0)


def _table(rows: dict, counts: dict) -> str:
    import pandas as pd

    columns = ["points", "finished", "failed", "skipped", "missing", "selected"]
    # tuning groups first, in file order; untuned points and series after them
    rows = dict(sorted(rows.items(), key=lambda kv: kv[0] == "points" or kv[0].startswith("series ")))
    frame = pd.DataFrame([{c: row.get(c, 0 if c != "selected" else "") for c in columns} for row in rows.values()],
                         index=list(rows))
    frame.loc["total"] = [counts[c] for c in columns[:-1]] + [f"{counts['selected']} runs"]
    frame.index.name = "group"
    return frame.to_string()
