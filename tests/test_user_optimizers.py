"""A user's own torch.optim.Optimizer, named by reference (`file.py:Class`, `package.module:Class`), from a
folder outside the repository: `optlab run` (a separate process), a sweep over two spawned workers, the
same final weights as a plain PyTorch loop, its file's hash and copy recorded, bad references refused in
one line with nothing recorded, a closure optimizer, and optimizers that blow up ending FAILED."""

import hashlib
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.numpy import load_file

from optlab import references
from optlab.cli import main
from optlab.engine import run
from optlab.problem.data import load_dataset
from optlab.problem.network import NetworkSpec

SIGN_MOMENTUM = '''
import torch


class SignMomentum(torch.optim.Optimizer):
    """Momentum on the sign of the gradient."""

    def __init__(self, params, lr=0.01, beta=0.9):
        super().__init__(params, dict(lr=lr, beta=beta))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                buf = self.state[p].setdefault("buf", torch.zeros_like(p))
                buf.mul_(group["beta"]).add_(p.grad.sign(), alpha=1 - group["beta"])
                p.add_(buf, alpha=-group["lr"])


class NotAnOptimizer:
    def __init__(self, params, lr=0.1):
        pass


class MakesNaN(torch.optim.SGD):
    @torch.no_grad()
    def step(self, closure=None):
        super().step(closure)
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 4:
            self.param_groups[0]["params"][0].fill_(float("nan"))


class Raises(torch.optim.SGD):
    def step(self, closure=None):
        raise RuntimeError("the update exploded on purpose")


class NoLr(torch.optim.Optimizer):
    def __init__(self, params, scale=1.0):
        super().__init__(params, dict(scale=scale))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                p.add_(p.grad, alpha=-0.01 * group["scale"])
'''
STEPS, BATCH, LR, BETA = 30, 16, 0.02, 0.8
OPTLAB = [sys.executable, "-m", "optlab"]


@pytest.fixture
def user_file(tmp_path) -> Path:
    """The user's optimizer, in a folder outside the repository."""
    folder = tmp_path / "elsewhere" / "opts"
    folder.mkdir(parents=True)
    path = folder / "my_opt.py"
    path.write_text(SIGN_MOMENTUM)
    return path


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["OPTLAB_HOME"] = str(home)
    return env


def _runs(home: Path) -> list[dict]:
    """Every run in the store, with its tags and its artifact folder."""
    db = home / "mlruns" / "mlflow.db"
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        rows = connection.execute("SELECT run_uuid, name, status, artifact_uri FROM runs").fetchall()
        runs = []
        for run_id, name, status, uri in rows:
            tags = dict(connection.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,)).fetchall())
            runs.append({"name": name, "status": status, "tags": tags, "artifacts": Path(uri.removeprefix("file://"))})
    return runs


def plain_pytorch_weights(optimizer_class, seed: int = 0, **kwargs) -> torch.Tensor:
    """The same training as optlab's reference trainer, written as a plain PyTorch loop: nn.Linear layers
    initialized from the network's init (seeded by the run's seed), mini-batches from a fresh permutation
    per epoch of a generator seeded with seed + 1, the mean cross-entropy, one optimizer step per batch."""
    data = load_dataset("digits")
    spec = NetworkSpec(data.n_features, (8,), data.n_classes, "sigmoid", "fan_in_uniform")
    w = spec.init_params(seed)
    layers = [torch.nn.Linear(fan_in, fan_out) for fan_out, fan_in in spec.layer_shapes]
    offset = 0
    with torch.no_grad():
        for layer in layers:
            for p in (layer.weight, layer.bias):
                p.copy_(w[offset : offset + p.numel()].reshape(p.shape))
                offset += p.numel()
    model = torch.nn.Sequential(layers[0], torch.nn.Sigmoid(), layers[1])
    optimizer = optimizer_class(model.parameters(), **kwargs)
    x, y = data.x_train.float(), data.y_train
    generator, batches = torch.Generator().manual_seed(seed + 1), []
    for _ in range(STEPS):
        if not batches:
            batches = list(reversed(torch.randperm(len(y), generator=generator).split(BATCH)))
        index = batches.pop()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x[index]), y[index]).backward()
        optimizer.step()
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _user_class(path: Path, name: str = "SignMomentum"):
    return references.load_class(f"{path}:{name}")


def _check_recorded(run: dict, path: Path) -> None:
    assert run["status"] == "FINISHED", run["tags"].get("optlab.failure_reason")
    assert run["tags"]["optlab.strategy"] == "my_opt.py:SignMomentum"
    assert run["tags"][references.REF_TAG] == f"{path}:SignMomentum"
    assert run["tags"][references.SHA_TAG] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert run["tags"]["optlab.trainer"] == "reference"
    assert (run["artifacts"] / "strategy" / "my_opt.py").read_bytes() == path.read_bytes()
    weights = torch.from_numpy(load_file(str(run["artifacts"] / "params.safetensors"))["params"])
    expected = plain_pytorch_weights(
        _user_class(path), seed=int(run["name"].rsplit("seed=", 1)[1].split()[0]), lr=LR, beta=BETA
    )
    assert weights.shape == expected.shape
    assert torch.allclose(weights, expected, atol=1e-5), (weights - expected).abs().max()


def test_optlab_run_trains_a_users_optimizer_file_as_plain_pytorch_would(tmp_path, user_file):
    home = tmp_path / "home"
    done = subprocess.run(
        [
            *OPTLAB,
            "run",
            "-s",
            "opts/my_opt.py:SignMomentum",
            "--lr",
            str(LR),
            "-o",
            f"beta={BETA}",
            "-d",
            "digits",
            "--hidden",
            "8",
            "-b",
            str(BATCH),
            "--steps",
            str(STEPS),
            "-q",
        ],
        cwd=user_file.parent.parent,
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "my_opt.py:SignMomentum lr=0.02 B=16 seed=0: FINISHED" in done.stdout
    (recorded,) = _runs(home)
    _check_recorded(recorded, user_file)


def test_a_sweep_over_two_spawned_workers_mixes_a_users_optimizer_with_adam_and_po_lion(tmp_path, user_file):
    home = tmp_path / "home"
    sweep = user_file.parent.parent / "compare.toml"  # the optimizer's path is relative to the sweep's folder
    sweep.write_text(
        textwrap.dedent(f"""
        name = "mine"
        [base]
        dataset = "digits"
        hidden = [8]
        batch_size = {BATCH}
        steps = {STEPS}
        [grid]
        strategy = ["opts/my_opt.py:SignMomentum", "adam", "po:lion"]
        seed = [0, 1]
        [overrides."opts/my_opt.py:SignMomentum"]
        lr = {LR}
        options = {{ beta = {BETA} }}
    """)
    )
    done = subprocess.run(
        [*OPTLAB, "sweep", str(sweep), "--workers", "2"],
        cwd=tmp_path,
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    points = [r for r in _runs(home) if r["tags"].get("optlab.role") == "point"]
    assert sorted(r["name"] for r in points) == sorted(
        f"{s} seed={seed}" for s in ("my_opt.py:SignMomentum", "adam", "po:lion") for seed in (0, 1)
    )
    assert all(r["status"] == "FINISHED" for r in points), [
        (r["name"], r["tags"].get("optlab.failure_reason")) for r in points
    ]
    mine = [r for r in points if r["name"].startswith("my_opt.py")]
    for recorded in mine:
        _check_recorded(recorded, user_file)


# ---- bad references: one line, before anything is recorded ---------------------------------------
BAD = [
    (["-s", "opts/missing.py:SignMomentum"], "strategy 'missing.py:SignMomentum': cannot read"),
    (
        ["-s", "opts/my_opt.py:Nope"],
        "opts/my_opt.py has no class 'Nope' (classes there: MakesNaN, NoLr, NotAnOptimizer, Raises, SignMomentum)",
    ),
    (["-s", "opts/my_opt.py:NotAnOptimizer"], "NotAnOptimizer is not a torch.optim.Optimizer subclass"),
    (["-s", "no_such_package.module:Opt"], "no module named 'no_such_package'"),
    (["-s", "opts/my_opt.py:SignMomentum", "-o", "gamma=0.5"], "has no option 'gamma' (options: beta)"),
    (["-s", "opts/my_opt.py:SignMomentum", "-o", "beta=fast"], "option beta of"),
    (["-s", "opts/my_opt.py:SignMomentum", "--momentum", "0.5"], "does not use momentum (got 0.5)"),
    (["-s", "opts/my_opt.py:NoLr", "--lr", "0.1"], "takes no lr (got 0.1)"),
    (
        ["-s", "torch.optim:SGD", "--lr", "0.1", "--momentum", "0.5", "-o", "nesterov=true", "-o", "dampening=0.5"],
        "its constructor refused the settings: ValueError: Nesterov momentum requires a momentum and zero dampening",
    ),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[b[1][:30] for b in BAD])
def test_a_bad_reference_is_refused_in_one_line_before_anything_is_recorded(
    tmp_path, user_file, monkeypatch, capsys, argv, message
):
    monkeypatch.setenv("OPTLAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(user_file.parent.parent)
    code = main(["run", "-d", "digits", "--hidden", "8", "--steps", "3", "-q", *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("optlab: error: ") and err.count("\n") == 1 and message in err, err
    assert _runs(tmp_path / "home") == []


def test_a_sweep_naming_a_missing_file_is_refused_before_any_run(tmp_path, user_file, monkeypatch, capsys):
    monkeypatch.setenv("OPTLAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    sweep = user_file.parent.parent / "bad.toml"
    sweep.write_text(
        'name = "bad"\n[base]\ndataset = "digits"\nsteps = 3\n[grid]\nstrategy = ["adam", "opts/my_opt.py:Missing"]\n'
    )
    assert main(["sweep", str(sweep)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no class 'Missing'" in err, err
    assert _runs(tmp_path / "home") == []


# ---- closures, failures, and strategies without a stacked kernel -----------------------------------
def test_an_optimizer_whose_step_needs_a_closure_evaluates_it_again_on_the_same_batch():
    result = run(
        {
            "strategy": "torch.optim:LBFGS",
            "dataset": "digits",
            "hidden": [8],
            "steps": 10,
            "eval_every": 10,
            "batch_size": 256,
            "lr": 0.5,
            "options": {"max_iter": 4, "line_search_fn": "strong_wolfe"},
        }
    )
    assert result.status == "FINISHED", result.reason
    assert result.counters["function_evals"] > result.steps  # the closure was called again inside a step
    assert result.history[-1]["train_loss"] < 0.8 * result.history[0]["train_loss"]


def test_an_optimizer_that_makes_nan_parameters_ends_failed_with_the_reason(user_file):
    result = run({"strategy": f"{user_file}:MakesNaN", "dataset": "digits", "hidden": [8], "steps": 20, "lr": 0.1})
    assert result.status == "FAILED"
    assert f"{user_file}:MakesNaN produced non-finite parameters at step 4" in result.reason


def test_an_optimizer_that_raises_ends_failed_with_its_error(user_file):
    result = run({"strategy": f"{user_file}:Raises", "dataset": "digits", "hidden": [8], "steps": 20, "lr": 0.1})
    assert result.status == "FAILED"
    assert "RuntimeError: the update exploded on purpose" in result.reason


def test_a_file_changed_on_disk_is_loaded_again_under_its_new_hash(tmp_path):
    path = tmp_path / "changing.py"
    path.write_text("import torch\nclass Opt(torch.optim.SGD):\n    VERSION = 1\n")
    first = references.load_class(f"{path}:Opt")
    path.write_text("import torch\nclass Opt(torch.optim.SGD):\n    VERSION = 2\n")
    second = references.load_class(f"{path}:Opt")
    assert (first.VERSION, second.VERSION) == (1, 2)
    assert (
        references.provenance_tags(f"{path}:Opt")[references.SHA_TAG] == hashlib.sha256(path.read_bytes()).hexdigest()
    )


def test_a_torch_optim_strategy_without_a_stacked_kernel_runs_on_the_reference_trainer():
    from optlab.strategies import register
    from optlab.strategies.first_order.rules import UpdateRule
    from optlab.strategies.first_order.torch_optim import TorchOptimStrategy

    class SignSGDRule(UpdateRule):  # only the torch.optim form: no stacked `update`
        def torch_optimizer(self, params, lr, momentum, weight_decay):
            return torch.optim.SGD(params, lr=lr)

    @register
    class NoKernel(TorchOptimStrategy):
        name = "test_no_kernel"
        description = "a strategy whose rule has no stacked kernel"
        default_lr = 0.1
        rule = SignSGDRule()

    assert NoKernel.batched_rule() is None
    result = run({"strategy": "test_no_kernel", "dataset": "digits", "hidden": [8], "steps": 20})
    assert result.status == "FINISHED", result.reason
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
