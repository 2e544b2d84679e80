"""scripts/suite_efficiency.py: the suite's efficiency table is read from the sweeps' parent runs, never typed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from sweep_helpers import TUNED_PAIR, write_spec

from optlab.sweeps import load, run_sweep

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "suite_efficiency.py"


def script():
    spec = importlib.util.spec_from_file_location("suite_efficiency", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_table_states_what_each_sweep_recorded_and_goes_between_its_markers(store, tmp_path, capsys):
    suite = script()
    reports = {}
    for name in ("first", "second"):
        reports[name] = run_sweep(
            load(write_spec(tmp_path, TUNED_PAIR, name=name, steps=20)), workers=1, progress=False
        )
    page = tmp_path / "speed.md"
    page.write_text("intro\n<!-- suite-efficiency:begin -->\nold\n<!-- suite-efficiency:end -->\nafter\n")
    assert suite.main(["--sweeps", "second,first", "--markdown", str(page)]) == 0
    text = page.read_text()
    assert text.startswith("intro\n") and text.endswith("after\n") and "old" not in text
    rows = [line for line in text.splitlines() if line.startswith("| second") or line.startswith("| first")]
    assert [r.split(" | ")[0] for r in rows] == ["| second", "| first"]  # the order asked for
    for row in rows:
        name = row.split(" | ")[0][2:]
        eff = reports[name].efficiency
        cells = row.split(" | ")
        assert cells[1] == str(reports[name].counts["points"])
        assert cells[2] == f"{reports[name].seconds:.1f}"
        stored = eff.summary()  # the parent run keeps each ratio to 4 decimals: the table shows those
        assert cells[3] == f"{100 * float(stored['efficiency']):.0f} %"
        assert cells[4] == f"{100 * float(stored['efficiency_with_evaluation']):.0f} %"
        assert abs(float(cells[3][:-2]) - 100 * eff.ratio) <= 0.51
    assert "2 sweeps" in text


def test_a_sweep_missing_from_the_store_is_named_and_nothing_is_written(store, tmp_path, capsys):
    page = tmp_path / "speed.md"
    page.write_text("<!-- suite-efficiency:begin -->\nold\n<!-- suite-efficiency:end -->\n")
    assert script().main(["--sweeps", "nowhere", "--markdown", str(page)]) == 1
    assert "nowhere" in capsys.readouterr().err and "old" in page.read_text()


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTLAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def test_time_in_no_timer_is_one_column_and_never_listed_as_bookkeeping():
    from types import SimpleNamespace

    slots = {"evaluation": 20.0, "run_creation": 5.0, "untimed_in_runs": 3.0, "idle": 2.0, "seed_groups": 1.0}
    tags = {f"optlab.summary.slot_seconds.{k}": str(v) for k, v in slots.items()}
    tags |= {
        f"optlab.summary.{k}": v
        for k, v in {"capacity_seconds": "100", "points": "10", "seconds": "50", "workers": "2"}.items()
    }
    tags |= {"optlab.summary.efficiency": "0.69", "optlab.summary.efficiency_with_evaluation": "0.89"}
    run = SimpleNamespace(data=SimpleNamespace(tags=tags), info=SimpleNamespace(start_time=0))
    row = script().row("convergence", run)
    assert row["idle"] == pytest.approx(0.05)  # untimed in runs + waiting for a chunk
    assert [k for k, _ in row["largest"]] == ["run_creation", "seed_groups"]
