"""The experiment files of the dynamics work, run as sweeps at a reduced size: sharpness at every
evaluation step of the edge-of-stability sweep, its diverging step size recorded FAILED; the lessons
file's series are the ones the report's lessons compare."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from optlab.reports.lessons import BASELINE, LESSONS
from optlab.sweeps import spec as sweep_spec

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def shrunk(tmp_path: Path, name: str, replacements: dict[str, str]) -> Path:
    """The experiment file with its budget (and data) cut down, every other setting as written."""
    text = (EXPERIMENTS / f"{name}.toml").read_text()
    for pattern, value in replacements.items():
        text, count = re.subn(pattern, value, text, flags=re.MULTILINE)
        assert count == 1, pattern
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def test_the_dynamics_sweep_logs_sharpness_at_every_evaluation_and_records_the_divergence(store, tmp_path):
    from sweep_helpers import children

    from optlab.sweeps.executor import run_sweep
    from optlab.tracking.store import client

    path = shrunk(
        tmp_path,
        "dynamics",
        {r"^steps = \d+$": "steps = 20\ntrain_size = 300", r"^eval_every = \d+$": "eval_every = 5"},
    )
    spec = sweep_spec.load(path)
    lrs = sorted({p.config.lr for p in spec.points})
    assert all(p.config.diagnostics == "full" and p.config.strategy == "gd" for p in spec.points)
    run_sweep(spec, workers=1, progress=False)
    runs = children("dynamics")
    assert len(runs) == len(spec.points)
    mlflow = client()
    for run in runs:
        lr = float(run.data.params["lr"])
        evaluations = sorted(m.step for m in mlflow.get_metric_history(run.info.run_id, "train_loss"))
        sharpness = sorted(m.step for m in mlflow.get_metric_history(run.info.run_id, "diag/sharpness"))
        if lr == max(lrs):  # past the stable range: stopped as diverged, after its initial measurement
            assert run.data.tags["optlab.status"] == "FAILED"
            assert run.data.tags["optlab.failure_reason"].startswith("diverged:")
            assert sharpness == evaluations == [0]
        else:
            assert run.data.tags["optlab.status"] == "FINISHED", run.data.tags.get("optlab.failure_reason")
            assert sharpness == evaluations == [0, 5, 10, 15, 20]


def test_every_lesson_has_its_series_in_the_lessons_file():
    spec = sweep_spec.load(EXPERIMENTS / "lessons.toml", check_plans=False)
    series = {p.series or BASELINE for p in spec.points}
    for lesson in LESSONS:
        assert {BASELINE, *lesson.conditions} <= series, lesson.key
    seeds = {}
    for point in spec.points:
        seeds.setdefault(point.series or BASELINE, set()).add(point.config.seed)
    assert len({frozenset(s) for s in seeds.values()}) == 1  # every comparison is paired on the same seeds
    assert len(next(iter(seeds.values()))) >= 6  # enough seeds for a paired test below p = 0.05


@pytest.mark.parametrize("name", ["dynamics", "diagnostics", "lessons"])
def test_the_experiment_files_are_valid_and_feasible(name):
    spec = sweep_spec.load(EXPERIMENTS / f"{name}.toml")
    assert spec.points and spec.name == name
