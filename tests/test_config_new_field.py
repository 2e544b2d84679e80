"""Adding a RunConfig field is one declaration in optlab/config.py: copied package, one line added there, and
the CLI, sweep files, hashes, workload, run names, sweep descriptions and the reports' grouping all take it
up (the second file a new field needs is the code that uses it, e.g. problem/build.py for a problem setting).
Stores recorded before it keep their hashes (the field is left out of them at its default)."""

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIELD = (
    '    input_scale: float = setting("problem", 1.0, check="positive", omit_default=True,\n'
    '                                 help="multiply the inputs by this factor")\n'
)

CHECK = textwrap.dedent("""
    import json, sys
    from optlab.cli import build_parser
    from optlab.cli.run import config_from_args
    from optlab.config import RunConfig
    from optlab.errors import ConfigError
    from optlab.reports.load import implicit_workload
    from optlab.sweeps import naming, spec as sweep_spec
    from optlab.sweeps.describe import parent_description

    out = {}
    args = build_parser().parse_args(["run", "-d", "digits", "--input-scale", "2"])
    out["cli"] = config_from_args(args).input_scale
    try:
        RunConfig.from_dict({"input_scale": -1.0})
    except ConfigError as exc:
        out["refused"] = str(exc)
    out["default_hash"] = RunConfig().config_hash()
    out["default_workload_hash"] = RunConfig().workload_hash()
    scaled = RunConfig(input_scale=2.0)
    out["scaled_hash"] = scaled.config_hash()
    out["scaled_workload_hash"] = scaled.workload_hash()
    out["problem_keys_differ"] = scaled.problem_key() != RunConfig().problem_key()
    out["workload_key"] = "input_scale" in sweep_spec.WORKLOAD_KEYS
    spec = sweep_spec.parse({"name": "s", "base": {"dataset": "digits", "steps": 3},
                             "grid": {"strategy": ["adam", "sgd"], "input_scale": [1.0, 2.0]}}, "s.toml")
    out["workloads"] = spec.workloads
    out["names"] = sorted(naming.sweep_names(spec).values())
    out["description"] = parent_description(spec)
    try:
        sweep_spec.parse({"name": "s", "grid": {"strategy": ["adam"]},
                          "overrides": {"adam": {"input_scale": 2.0}}}, "s.toml")
    except ConfigError as exc:
        out["override_refused"] = str(exc)
    row = {"experiment": "default", "dataset": "digits", "input_scale": "2.0"}
    out["implicit"] = [implicit_workload(row), implicit_workload({**row, "input_scale": "1.0"})]
    print(json.dumps(out))
""")


def test_a_field_declared_in_config_alone_reaches_every_list(tmp_path):
    package = tmp_path / "optlab"
    shutil.copytree(ROOT / "optlab", package, ignore=shutil.ignore_patterns("__pycache__"))
    config = package / "config.py"
    text = config.read_text()
    anchor = '    run_name: str | None = setting("identity", help="the run\'s display name")\n'
    assert anchor in text
    config.write_text(text.replace(anchor, anchor + FIELD))  # the only edit: one field, at the end
    out = subprocess.run(
        [sys.executable, "-c", CHECK],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout)
    snapshot = json.loads((ROOT / "tests" / "data" / "identity_main.json").read_text())
    assert got["cli"] == 2.0
    assert "input_scale must be positive" in got["refused"]
    # stores recorded before the field existed keep their identity; the field set changes it
    assert got["default_hash"] == snapshot["configs"][0]["config_hash"]
    assert got["default_workload_hash"] == snapshot["configs"][0]["workload_hash"]
    assert got["scaled_hash"] != got["default_hash"]
    assert got["scaled_workload_hash"] != got["default_workload_hash"]
    assert got["problem_keys_differ"] and got["workload_key"]
    # a problem setting that varies splits the workload and names the runs
    assert got["workloads"] == ["s input_scale=1.0", "s input_scale=2.0"]
    assert "adam input_scale=2 seed=0" in got["names"]
    assert "input_scale ∈ {1, 2}" in got["description"]
    assert "input_scale = 2.0 is part of the workload" in got["override_refused"]
    assert got["implicit"] == ["default (dataset=digits input_scale=2)", "default (dataset=digits)"]
