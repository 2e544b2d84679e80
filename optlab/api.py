"""The Python API: what `optlab run`, `optlab sweep` and the reports' store reader do, called from Python.

    import optlab
    result = optlab.run(strategy="adam", dataset="digits", epochs=2)    # the keys of `optlab run`
    result.final["val_accuracy"], result.history                       # dict, pandas DataFrame
    report = optlab.sweep("experiments/smoke.toml", workers=2)
    table = optlab.runs("smoke")                                        # one row per run

Settings are RunConfig's fields, validated by `RunConfig.from_dict`: a bad key or value raises a one-line
ConfigError before anything is recorded. Runs are recorded in the tracking store `optlab run` uses
(OPTLAB_HOME, or MLFLOW_TRACKING_URI) unless `track=False`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Run:
    """One finished (or failed) run: its status, final metrics and evaluation history."""

    status: str  # FINISHED | FAILED | KILLED
    reason: str | None  # why it did not finish
    run_id: str | None  # the MLflow run (None with track=False)
    config: dict  # the settings it ran with, the strategy's defaults filled in
    final: dict[str, float]  # the final evaluation: losses, accuracies, cost counters
    history: object  # pandas DataFrame: one row per evaluation, one column per metric
    steps: int
    wall_time: float  # training seconds (evaluation excluded)
    steps_to_target: int | None = None
    time_to_target: float | None = None
    timing: str = "alone"
    params: object = field(default=None, repr=False)  # the final flat parameter vector (a torch tensor)

    def __repr__(self) -> str:
        shown = {k: round(v, 4) for k, v in self.final.items() if k in ("val_accuracy", "test_accuracy", "train_loss")}
        return (
            f"Run({self.config.get('strategy')!r}, status={self.status!r}, steps={self.steps}, final={shown}, "
            f"run_id={self.run_id!r})"
        )


def run(*, track: bool = True, progress: bool = False, threads: int | None = None, **settings) -> Run:
    """Train and record one run, as `optlab run` does. `settings`: RunConfig's fields (strategy, lr,
    dataset, hidden, epochs, seed, experiment, options={...}, ...). `threads`: torch intra-op threads for
    this run (default: one for small steps, as the CLI does); restored afterwards."""
    import pandas as pd
    import torch

    from optlab.config import RunConfig
    from optlab.engine import prepare
    from optlab.engine import run as run_engine
    from optlab.engine.runner import intra_op_threads
    from optlab.errors import ConfigError
    from optlab.tracking import NullRecorder, RunRecorder
    from optlab.tracking.store import check_home, uses_default_store

    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"optlab.run: threads must be a positive integer, got {threads!r}")
    config = RunConfig.from_dict(settings, source="optlab.run")
    if track and uses_default_store():
        check_home()
    prepared = prepare(config)  # every input error surfaces here, before a run is recorded
    recorder = RunRecorder() if track else NullRecorder()
    before = torch.get_num_threads()
    wanted = threads or intra_op_threads(prepared)
    if wanted:
        torch.set_num_threads(wanted)
    try:
        result = run_engine(prepared, recorder=recorder, progress=progress)
    except BaseException as exc:  # whatever stops the run, it must not stay RUNNING in the store
        recorder.abort(
            "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED",
            "interrupted" if isinstance(exc, KeyboardInterrupt) else f"error: {type(exc).__name__}: {exc}",
        )
        raise
    finally:
        torch.set_num_threads(before)
    stored = recorder.status
    if stored is not None and stored != result.status:  # the store could not hold it all
        result.status, result.reason = stored, recorder.reason
    return Run(
        status=result.status,
        reason=result.reason,
        run_id=result.run_id,
        config=result.config.to_dict(),
        final=dict(result.final),
        history=pd.DataFrame(result.history),
        steps=result.steps,
        wall_time=result.wall_time,
        steps_to_target=result.steps_to_target,
        time_to_target=result.time_to_target,
        timing=result.timing,
        params=result.params,
    )


def sweep(
    path: str | Path,
    *,
    workers: int = 1,
    backend: str = "local",
    address: str | None = None,
    batched: bool = True,
    progress: bool = False,
    wait: float = 0.0,
    max_points: int | None = None,
):
    """Run an experiment file, as `optlab sweep` does (resumable: finished points are not rerun). Returns
    the sweep's report (optlab.sweeps.executor.SweepReport: counts, selections, failures, the table); a
    point that diverged is a FAILED run in it. Raises SweepIncomplete (its `report` attached) when points
    have no outcome, as `optlab sweep` exits 1. With workers > 1, points run in spawned processes: a
    script calls this under `if __name__ == "__main__":` (a notebook needs nothing)."""
    from optlab.cli.sweep import summarize_reasons
    from optlab.errors import ConfigError, SweepIncomplete
    from optlab.sweeps import load, run_sweep
    from optlab.sweeps.spec import MAX_POINTS

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"optlab.sweep: workers must be a positive integer, got {workers!r}")
    spec = load(path, max_points=max_points or MAX_POINTS)
    report = run_sweep(
        spec, workers=workers, backend=backend, address=address, batched=batched, progress=progress, wait=wait
    )
    if report.incomplete:
        raise SweepIncomplete(
            f"sweep {report.name}: {len(report.incomplete)} of {report.counts['points']} points "
            f"have no outcome ({summarize_reasons(report.incomplete)}); rerun to run them",
            report,
        )
    return report


def runs(
    experiment: str, *, include_tuning: bool = False, finished_only: bool = False, tracking_uri: str | None = None
):
    """A tidy pandas DataFrame of an experiment's runs: one row per run; its settings (params) as columns,
    its final metrics as `final_<metric>`, and the tags reports group by (strategy, family, workload,
    workload_hash, role, series, sweep, ...). Sweep parents and seed-group runs are left out; so are
    tuning trials unless `include_tuning`."""
    import pandas as pd

    from optlab.errors import ConfigError
    from optlab.reports.load import Store

    store = Store(tracking_uri, progress=False)
    known = store.experiments()
    if experiment not in known:
        raise ConfigError(
            f"optlab.runs: no experiment {experiment!r} in {store.uri} "
            f"(experiments: {', '.join(sorted(known)) or 'none'})"
        )
    frame = store.runs(experiment, include_tuning=include_tuning, finished_only=finished_only)
    return (
        frame if frame is not None else pd.DataFrame(columns=["run_id", "status", "experiment", "strategy", "workload"])
    )
