"""docs/extending/optimizers.md, run as a reader would: its files written to a temporary folder outside the
repository and every `optlab` command of its shell blocks run there, with the budgets cut to a few steps."""

import hashlib
import os
import re
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "extending" / "optimizers.md"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)
TINY = [("epochs = 2", "steps = 20"), ("--epochs 1", "--steps 20")]


def _blocks():
    return [(kind, text) for kind, text in BLOCK.findall(PAGE.read_text())]


def _tiny(text: str) -> str:
    for long, short in TINY:
        text = text.replace(long, short)
    return text


@pytest.mark.slow
def test_the_compare_your_own_optimizer_page_runs_from_a_fresh_folder(tmp_path):
    folder, home = tmp_path / "research", tmp_path / "home"
    folder.mkdir()
    files = {}
    for kind, text in _blocks():
        first = text.splitlines()[0]
        if kind in ("python", "toml") and first.startswith("# "):
            files[first[2:].strip()] = text
    assert set(files) == {"my_opt.py", "compare.toml"}
    assert "epochs = 2" in files["compare.toml"]  # the budget the test cuts
    for name, text in files.items():
        (folder / name).write_text(_tiny(text))
    commands = [
        shlex.split(line.split("#", 1)[0])
        for kind, text in _blocks()
        if kind == "sh"
        for line in text.splitlines()
        if line.startswith("optlab ")
    ]
    assert ["optlab", "sweep", "compare.toml", "--workers", "2"] in commands
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["OPTLAB_HOME"] = str(home)
    for command in commands:
        argv = [sys.executable, "-m", "optlab", *shlex.split(_tiny(shlex.join(command[1:])))]
        done = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=900)
        # without Chromium the report's PDF is not printed: the HTML report is what the page shows
        assert done.returncode == 0 or (command[1] == "report" and (folder / "report" / "report.html").exists()), (
            f"{shlex.join(command)}: {done.stderr[-2000:]}"
        )
    assert "my_opt.py:Signum" in (folder / "report" / "report.html").read_text()
    with sqlite3.connect(f"file:{home / 'mlruns' / 'mlflow.db'}?mode=ro", uri=True) as db:
        statuses = db.execute(
            "SELECT r.name, r.status FROM runs r JOIN experiments e USING (experiment_id) WHERE e.name = 'signum'"
        ).fetchall()
        hashes = {value for (value,) in db.execute("SELECT value FROM tags WHERE key = 'optlab.strategy_sha256'")}
    assert statuses and all(status == "FINISHED" for _, status in statuses), statuses
    assert len([name for name, _ in statuses if re.match(r"my_opt\.py:Signum .*rerun seed=\d+$", name)]) == 3
    assert hashes == {hashlib.sha256((folder / "my_opt.py").read_bytes()).hexdigest()}
