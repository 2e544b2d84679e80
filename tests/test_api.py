"""The Python API (optlab.run, optlab.sweep, optlab.runs) and its documented example."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

import optlab
from optlab.config import RunConfig
from optlab.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "guide" / "python-api.md"


def test_import_optlab_loads_no_torch_mlflow_or_pandas():
    code = "import sys, optlab; print(sorted(m for m in ('torch', 'mlflow', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_run_records_like_the_cli_and_returns_final_metrics_and_history(store):
    result = optlab.run(strategy="adam", dataset="digits", hidden=[8], steps=20, eval_every=5, experiment="api")
    assert result.status == "FINISHED" and result.run_id
    assert list(result.history["step"])[-1] == 20 and "val_accuracy" in result.history
    assert result.final["val_accuracy"] == pytest.approx(result.history["val_accuracy"].iloc[-1])
    table = optlab.runs("api")
    row = table.set_index("run_id").loc[result.run_id]
    assert row["strategy"] == "adam" and row["status"] == "FINISHED"
    assert row["final_val_accuracy"] == pytest.approx(result.final["val_accuracy"])
    assert row["workload"].startswith("api (dataset=digits")
    assert row["config_hash"] == RunConfig.from_dict(result.config).config_hash()
    assert row["workload_hash"] == RunConfig.from_dict(result.config).workload_hash()


def test_bad_settings_raise_one_line_before_anything_is_recorded(store):
    with pytest.raises(ConfigError, match="optlab.run: unknown key 'learning_rate'"):
        optlab.run(learning_rate=0.1, experiment="api")
    with pytest.raises(ConfigError, match="lr must be positive"):
        optlab.run(lr=-1.0, experiment="api")
    with pytest.raises(ConfigError, match="no experiment 'api'"):
        optlab.runs("api")


def test_run_without_tracking_records_nothing(store):
    result = optlab.run(dataset="digits", hidden=[8], steps=5, track=False)
    assert result.status == "FINISHED" and result.run_id is None and len(result.history) > 0
    assert not (store / "mlruns").exists()


def test_the_guides_example_runs(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)
    assert len(blocks) == 1
    script = tmp_path / "example.py"
    script.write_text(blocks[0])
    env = {k: v for k, v in __import__("os").environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["OPTLAB_HOME"] = str(tmp_path / "home")
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=1200, cwd=tmp_path, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("FINISHED ")
    # the sweep's table: both strategies, three seeds each
    assert re.search(r"adam\s+\S+\s+\S+\s+3\n", out.stdout) and re.search(r"momentum\s+\S+\s+\S+\s+3", out.stdout)
