"""Only a FINISHED run keeps its weights: a run that diverged or raised (FAILED) or was interrupted (KILLED)
leaves no params.safetensors, through MLflow's client and through the direct SQLite writer; its metric
points stay (the curve up to the end is the evidence, docs/guide/runs.md)."""

import pytest

from optlab.config import RunConfig
from optlab.engine import run
from optlab.strategies import resolve
from optlab.tracking.recorder import RunRecorder
from optlab.tracking.sqlite_recorder import SqliteRunRecorder
from optlab.tracking.store import client, default_uri, ensure_experiment

RECORDERS = {
    "mlflow": lambda: RunRecorder(experiment="e"),
    "direct": lambda: SqliteRunRecorder.open(default_uri(), "e"),
}


def interrupt_at_step(monkeypatch, error: BaseException):
    strategy = resolve("gd")
    step = strategy.step
    calls = [0]

    def failing(self):
        calls[0] += 1
        if calls[0] > 5:
            raise error
        return step(self)

    monkeypatch.setattr(strategy, "step", failing)


def recorded(recorder_kind, config, expect=None):
    ensure_experiment(client(), "e")
    recorder = RECORDERS[recorder_kind]()
    assert recorder is not None, "the direct writer stepped aside"
    if expect is None:
        return run(config, recorder=recorder, trainer="reference")
    with pytest.raises(expect):
        run(config, recorder=recorder, trainer="reference")
    return recorder


@pytest.mark.parametrize("recorder_kind", RECORDERS)
@pytest.mark.parametrize("ending", ["finished", "diverged", "raised", "killed"])
def test_only_a_finished_run_keeps_its_weights_and_every_run_keeps_its_curve(store, monkeypatch, recorder_kind, ending):
    config = RunConfig(strategy="gd", dataset="ravine", lr=0.01, steps=20, eval_every=2, log_every=1, experiment="e")
    if ending == "diverged":
        config = config.with_updates(lr=50.0)
    if ending == "raised":
        interrupt_at_step(monkeypatch, RuntimeError("a bug in the step"))
    if ending == "killed":
        interrupt_at_step(monkeypatch, KeyboardInterrupt())
    outcome = recorded(recorder_kind, config, expect=KeyboardInterrupt if ending == "killed" else None)

    stored = client().get_run(outcome.run_id)
    expected = {"finished": "FINISHED", "diverged": "FAILED", "raised": "FAILED", "killed": "KILLED"}[ending]
    assert stored.info.status == expected, stored.data.tags.get("optlab.failure_reason")
    artifacts = [a.path for a in client().list_artifacts(outcome.run_id)]
    assert ("params.safetensors" in artifacts) == (expected == "FINISHED"), artifacts
    curve = [m.step for m in client().get_metric_history(outcome.run_id, "batch_loss")]
    steps = int(stored.data.tags["optlab.summary.steps"])
    assert curve == list(range(1, steps + 1)), f"the curve of the run was not kept whole: {curve}"
