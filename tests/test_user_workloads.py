"""A user's own workload (model, data, loss) by reference: `optlab run --workload file.py:NAME`, sweeps over
it (spawned workers), the shipped CNN example with first-order and gradient-free strategies, second-order
strategies where they apply, and bad references refused in one line with nothing recorded."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pytest
import torch

import optlab
from optlab.config import RunConfig
from optlab.engine import run
from optlab.errors import ConfigError
from optlab.problem import build_problem
from optlab.problem.module_problem import ModuleProblem

ROOT = Path(__file__).resolve().parents[1]
CNN = f"{ROOT / 'examples' / 'cnn_mnist5k.py'}:tiny_cnn"
OPTLAB = [sys.executable, "-m", "optlab"]

# a workload file as a user writes it: three Gaussian blobs, a small tanh network
BLOBS = """
import torch
import optlab


def model():
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))


def blobs():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(3, 5, generator=g) * 3

    def split(n):
        y = torch.randint(0, 3, (n,), generator=g)
        return centers[y] + torch.randn(n, 5, generator=g), y

    return optlab.Workload(name="blobs", model=model, train=split(200), val=split(60), test=split(60),
                           loss="cross_entropy", target=0.8)


def regression():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(120, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(120, 1, generator=g)
    return optlab.Workload(name="line", model=torch.nn.Linear(3, 1), train=(x[:80], y[:80]),
                           val=(x[80:100], y[80:100]), test=(x[100:], y[100:]), loss="mse")


def not_a_workload():
    return {"model": model}


def mismatched():
    w = blobs()
    return optlab.Workload(name="bad", model=model, train=(w.train[0], w.train[1][:-1]), val=w.val, test=w.test)


def wrong_model():
    w = blobs()
    return optlab.Workload(name="bad", model=lambda: torch.nn.Linear(7, 3), train=w.train, val=w.val, test=w.test)
"""


@pytest.fixture
def user_file(tmp_path) -> Path:
    """The workload file in a folder outside the repository."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    path = folder / "wl.py"
    path.write_text(BLOBS)
    return path


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["OPTLAB_HOME"] = str(home)
    return env


def _runs(home: Path, experiment: str):
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlruns' / 'mlflow.db'}")
    return mlflow.search_runs(experiment_names=[experiment])


# ---- the problem over a module ------------------------------------------------------------------


def test_flat_vector_loss_and_gradient_match_the_module_itself(user_file):
    config = RunConfig.from_dict({"workload": f"{user_file}:blobs"})
    problem = build_problem(config)
    assert isinstance(problem, ModuleProblem)
    w = problem.init_params(3)
    module = problem.workload.build_model()
    torch.nn.utils.vector_to_parameters(w, module.parameters())
    batch = problem.batch(torch.arange(17))
    expected = torch.nn.functional.cross_entropy(module(batch.x), batch.y)
    expected.backward()
    loss, grad = problem.loss_and_grad(w, batch)
    assert torch.allclose(loss, expected.detach())
    assert torch.allclose(grad, torch.nn.utils.parameters_to_vector([p.grad for p in module.parameters()]))
    # the same costs as the reference net: one gradient on 17 samples is 17/200 of an epoch's gradient
    assert problem.counters.gradient_evals == 1 and problem.counters.gradient_samples == 17
    assert problem.counters.gradient_equivalents(problem.n_train) == pytest.approx(17 / 200)
    assert problem.param_shapes == [tuple(p.shape) for p in module.parameters()] == [(8, 5), (8,), (3, 8), (3,)]


def test_each_seed_draws_its_own_initialization_and_the_same_seed_the_same(user_file):
    problem = build_problem(RunConfig.from_dict({"workload": f"{user_file}:blobs"}))
    assert torch.equal(problem.init_params(1), problem.init_params(1))
    assert not torch.equal(problem.init_params(1), problem.init_params(2))
    instance = build_problem(RunConfig.from_dict({"workload": f"{user_file}:regression"}))  # a module, not a factory
    assert not torch.equal(instance.init_params(1), instance.init_params(2))


def test_regression_workload_records_losses_without_accuracy(user_file):
    result = run({"workload": f"{user_file}:regression", "strategy": "adam", "lr": 0.05, "steps": 60, "batch_size": 16})
    assert result.status == "FINISHED"
    assert "val_accuracy" not in result.final
    assert result.final["val_loss"] < result.history[0]["val_loss"] / 4


def test_second_order_runs_where_it_applies_and_is_refused_in_one_line_where_not(user_file):
    for strategy in ("newton", "newton_cg", "lbfgs"):
        result = run({"workload": f"{user_file}:blobs", "strategy": strategy, "steps": 3})
        assert result.status == "FINISHED", (strategy, result.reason)
        assert result.final["train_loss"] < result.history[0]["train_loss"], strategy
    assert run({"workload": f"{user_file}:blobs", "strategy": "newton", "steps": 1}).counters["curvature_products"] > 0
    with pytest.raises(ConfigError, match="kfac") as refused:
        run({"workload": f"{user_file}:blobs", "strategy": "kfac", "steps": 1})
    assert "\n" not in str(refused.value)


def test_workload_fields_are_checked_by_name():
    x, y = torch.randn(4, 2), torch.tensor([0, 1, 0, 1])
    good = dict(name="w", model=lambda: torch.nn.Linear(2, 2), train=(x, y), val=(x, y), test=(x, y))
    for change, field in (
        ({"loss": "hinge"}, "loss"),
        ({"target": 1.5}, "target"),
        ({"train": (x,)}, "train"),
        ({"val": (torch.randn(4, 3), y)}, "val"),
        ({"model": 3}, "model"),
        ({"name": ""}, "name"),
        ({"test": (x, torch.randn(4))}, "test"),
        ({"loss": "mse"}, "mse"),
    ):
        with pytest.raises(ConfigError, match=field) as refused:
            optlab.Workload(**{**good, **change})
        assert "\n" not in str(refused.value)
    assert optlab.Workload(**good).classification


def test_builtin_workload_and_config_hashes_are_unchanged_by_the_new_field():
    """Hashes computed by the code before user workloads existed (same config): stores keep their identity."""
    config = RunConfig.from_dict(dict(strategy="adam", dataset="digits", hidden=[8], steps=20, lr=0.01))
    assert config.config_hash() == "efe28d9fd6b67c73"
    assert config.workload_hash() == "30635e0b5158"


def test_the_workload_hash_follows_the_file_contents_not_its_location(tmp_path, user_file):
    other = tmp_path / "copy" / "wl.py"
    other.parent.mkdir()
    other.write_bytes(user_file.read_bytes())
    here, there = (RunConfig.from_dict({"workload": f"{p}:blobs"}) for p in (user_file, other))
    assert here.workload_hash() == there.workload_hash()
    other.write_text(BLOBS.replace("* 3", "* 4"))
    assert here.workload_hash() != there.workload_hash()


def test_a_workload_named_by_module_is_found_on_the_import_path(tmp_path, monkeypatch, user_file):
    monkeypatch.syspath_prepend(str(user_file.parent))
    result = run({"workload": "wl:blobs", "strategy": "adam", "steps": 5})
    assert result.status == "FINISHED" and "val_accuracy" in result.final
    by_module, by_file = (RunConfig.from_dict({"workload": ref}) for ref in ("wl:blobs", f"{user_file}:blobs"))
    assert by_module.workload_hash() == by_file.workload_hash()  # the same file, named two ways
    with pytest.raises(ConfigError, match="workload module 'no_such_module' cannot be found"):
        run({"workload": "no_such_module:blobs", "strategy": "adam", "steps": 5})


def test_problem_settings_a_workload_replaces_are_refused():
    with pytest.raises(ConfigError, match="hidden"):
        RunConfig.from_dict({"workload": f"{ROOT}/examples/cnn_mnist5k.py:tiny_cnn", "hidden": [32]})


# ---- optlab run --workload, as a user calls it --------------------------------------------------------


def test_optlab_run_trains_a_workload_from_a_file_outside_the_repository(tmp_path, user_file):
    home = tmp_path / "home"
    out = subprocess.run(
        [*OPTLAB, "run", "--workload", "elsewhere/wl.py:blobs", "-s", "adam", "--steps", "40", "-e", "mine", "-q"],
        cwd=tmp_path,
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    runs = _runs(home, "mine")
    assert len(runs) == 1
    row = runs.iloc[0]
    assert row["status"] == "FINISHED" and row["tags.optlab.status"] == "FINISHED"
    assert row["metrics.val_accuracy"] > 0.8  # the blobs are separable: training did something
    assert row["tags.optlab.dataset"] == "blobs"
    assert row["params.workload"] == f"{user_file}:blobs"  # made absolute: the same file in any process
    assert row["tags.optlab.workload_sha256"] == hashlib.sha256(user_file.read_bytes()).hexdigest()
    copy = Path(
        mlflow.artifacts.download_artifacts(
            run_id=row["run_id"], artifact_path="workload/wl.py", dst_path=str(tmp_path / "dl")
        )
    )
    assert copy.read_bytes() == user_file.read_bytes()


@pytest.mark.parametrize(
    "reference, message",
    [
        ("elsewhere/missing.py:blobs", "not found"),
        ("elsewhere/wl.py:nothing", "has no 'nothing'"),
        ("elsewhere/wl.py:not_a_workload", "must return an optlab.Workload, got dict"),
        ("elsewhere/wl.py:mismatched", "train has 200 inputs and 199 targets"),
        ("elsewhere/wl.py:wrong_model", "the model or loss fails on the training data"),
    ],
)
def test_bad_references_are_refused_in_one_line_with_nothing_recorded(tmp_path, user_file, reference, message):
    home = tmp_path / "home"
    out = subprocess.run(
        [*OPTLAB, "run", "--workload", reference, "-s", "adam", "--steps", "5", "-e", "bad", "-q"],
        cwd=tmp_path,
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert not (home / "mlruns" / "mlflow.db").exists() or _runs(home, "bad").empty


# ---- sweeps ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_sweep_over_a_user_workload_runs_in_spawned_workers(tmp_path, user_file):
    home = tmp_path / "home"
    sweep = user_file.parent / "sweep.toml"
    sweep.write_text(
        textwrap.dedent("""
        name = "userwl"
        [workloads.blobs]
        workload = "wl.py:blobs"     # relative to this file's folder
        steps = 30
        [grid]
        strategy = ["adam", "spsa"]
        seed = [0, 1]
        [overrides.spsa]
        batch_size = 32
    """)
    )
    out = subprocess.run(
        [*OPTLAB, "sweep", str(sweep), "--workers", "2"],
        cwd=tmp_path,
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    runs = _runs(home, "userwl")
    points = runs[~runs["tags.optlab.role"].isin(["parent", "group"])]
    assert len(points) == 4 and set(points["status"]) == {"FINISHED"}
    assert set(points["tags.optlab.workload"]) == {"blobs"}
    assert points["tags.optlab.workload_hash"].nunique() == 1
    assert set(points["tags.optlab.workload_sha256"]) == {hashlib.sha256(user_file.read_bytes()).hexdigest()}
    assert set(points["tags.optlab.strategy"]) == {"adam", "spsa"}
    assert (points["metrics.val_accuracy"].notna()).all()


def test_a_sweep_with_a_bad_workload_reference_is_refused_before_any_run(tmp_path, user_file):
    home = tmp_path / "home"
    sweep = user_file.parent / "bad.toml"
    sweep.write_text('name = "badwl"\n[workloads.x]\nworkload = "nowhere.py:blobs"\nsteps = 5\n')
    out = subprocess.run(
        [*OPTLAB, "sweep", str(sweep)], cwd=tmp_path, env=_env(home), capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "[workloads.x]" in out.stderr and "not found" in out.stderr
    assert not (home / "mlruns" / "mlflow.db").exists() or _runs(home, "badwl").empty


# ---- the shipped CNN ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "strategy, settings",
    [
        ("adam", {"lr": 0.003, "steps": 60}),
        ("momentum", {"lr": 0.05, "steps": 60}),
    ],
)
def test_the_cnn_example_learns_with_first_order_strategies(strategy, settings):
    result = run({"workload": CNN, "strategy": strategy, "eval_every": 30, **settings})
    assert result.status == "FINISHED", result.reason
    assert result.final["val_accuracy"] > 0.5 > result.history[0]["val_accuracy"]
    assert result.counters["gradient_evals"] == settings["steps"]


@pytest.mark.parametrize("strategy, options", [("spsa", {}), ("ng:OnePlusOne", {"objective": "batch"})])
def test_the_cnn_example_runs_gradient_free_strategies_at_their_cost(strategy, options):
    result = run(
        {
            "workload": CNN,
            "strategy": strategy,
            "evaluations": 6,
            "batch_size": 64,
            "eval_every": 10,
            "options": options,
        }
    )
    assert result.status == "FINISHED", result.reason
    assert result.counters["gradient_evals"] == 0
    assert result.counters["function_evals"] >= 6
    assert {"train_loss", "val_accuracy", "test_accuracy"} <= set(result.final)


def test_the_cnn_example_with_a_pytorch_optimizer_package_strategy():
    from optlab.strategies import resolve

    try:
        resolve("po:lion")
    except ConfigError:
        pytest.skip("po: strategies (pytorch-optimizer) are not available in this build")
    result = run({"workload": CNN, "strategy": "po:lion", "lr": 1e-3, "steps": 30})
    assert result.status == "FINISHED", result.reason
    assert result.final["train_loss"] < result.history[0]["train_loss"]


# ---- the docs page ---------------------------------------------------------------------------------------


def _page_blocks(page: Path) -> tuple[dict[str, str], list[str]]:
    """The page's files (code blocks with a title) and its commands (the `optlab` lines of bash blocks)."""
    import re

    text = page.read_text()
    files = {m.group(1): m.group(2) for m in re.finditer(r'```\w+ title="([^"]+)"\n(.*?)```', text, re.S)}
    commands = [
        line.strip()
        for block in re.findall(r"```bash\n(.*?)```", text, re.S)
        for line in block.splitlines()
        if line.strip().startswith("optlab ")
    ]
    return files, commands


@pytest.mark.slow
def test_the_docs_page_example_runs_from_a_temporary_folder(tmp_path):
    files, commands = _page_blocks(ROOT / "docs" / "extending" / "workloads.md")
    assert {"my_workload.py", "compare.toml"} <= set(files) and len(commands) >= 3
    folder = tmp_path / "user"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    home = tmp_path / "home"
    for command in commands:
        out = subprocess.run(
            [*OPTLAB, *command.split()[1:]], cwd=folder, env=_env(home), capture_output=True, text=True, timeout=1800
        )
        assert out.returncode == 0, (command, out.stderr[-2000:])
    single = _runs(home, "default")
    assert list(single["status"]) == ["FINISHED"] and single["metrics.val_accuracy"].iloc[0] > 0.5
    swept = _runs(home, "cnn_compare")
    reruns = swept[swept["tags.optlab.role"] == "rerun"]
    assert len(reruns) == 4 and set(reruns["status"]) == {"FINISHED"}
    assert set(reruns["tags.optlab.workload"]) == {"tiny_cnn"}
