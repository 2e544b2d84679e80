"""The "inside the network" report section on a store holding a user's workload: such a run has no first
layer over image pixels, so the section is skipped with a sentence instead of failing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
from user_workload_files import BLOBS

from optlab.reports import inside
from optlab.reports.load import Store
from optlab.reports.model import Note


def _user_workload_store(tmp_path: Path) -> Store:
    """A store whose `convergence` experiment holds one finished run of a user's workload."""
    (tmp_path / "wl.py").write_text(BLOBS)
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["OPTLAB_HOME"] = str(home)
    out = subprocess.run(
        [sys.executable, "-m", "optlab", "run", "--workload", "wl.py:blobs", "-s", "adam", "--steps", "20"]
        + ["-e", "convergence", "-q"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    return Store(f"sqlite:///{home / 'mlruns' / 'mlflow.db'}", progress=False)


def _notes(section) -> list[str]:
    return [block.text for block in section.blocks if isinstance(block, Note)]


def test_a_user_workload_run_is_skipped_by_the_inside_section_with_a_reason(tmp_path, monkeypatch):
    store = _user_workload_store(tmp_path)
    runs = store.runs("convergence", finished_only=True)
    assert runs is not None and len(runs) == 1
    assert inside.pick_run(store) is None  # never picked: it has no first layer over pixels to draw
    assert inside.build(store).blocks  # the section says it has nothing, and does not fail

    # handed the run anyway (an older store without the workload column, say), it says why it is skipped
    run: pd.Series = runs.iloc[0]
    monkeypatch.setattr(inside, "pick_run", lambda _store: run)
    notes = _notes(inside.build(store))
    assert len(notes) == 1
    assert "'blobs'" in notes[0] and "skipped" in notes[0] and run["run_id"] in notes[0]
