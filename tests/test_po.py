"""`po:NAME`: the pytorch-optimizer package's optimizers on the shared problem (mnist5k, 784-16-16-10 sigmoid):
the curated set trains, Schedule-Free is evaluated at its averaged point, Muon gets its parameter groups,
`optlab strategies` lists every optimizer with its options, and what cannot run here is refused in one line."""

import math

import pytest
import pytorch_optimizer
import torch

from optlab.cli import main
from optlab.engine import prepare, run
from optlab.engine.trainers import StrategyTrainer
from optlab.errors import ConfigError

# (name, lr or None for the package's default): a tiny budget on the shared problem
CURATED = [
    ("lion", 1e-3),
    ("prodigy", None),
    ("schedulefreeadamw", None),
    ("soap", None),
    ("muon", None),
    ("adan", 1e-2),
    ("lamb", 1e-2),
]


@pytest.mark.parametrize("name,lr", CURATED, ids=[c[0] for c in CURATED])
def test_a_curated_po_optimizer_trains_the_shared_problem(name, lr):
    config = {"strategy": f"po:{name}", "steps": 60, "eval_every": 20, **({"lr": lr} if lr else {})}
    result = run(config)
    assert result.status == "FINISHED", result.reason
    losses = [point["train_loss"] for point in result.history]
    assert all(math.isfinite(loss) for loss in losses)
    assert losses[-1] < losses[0] - 0.05, losses


def test_po_lion_takes_momentum_as_its_first_beta_and_options_from_its_signature():
    prep = prepare({"strategy": "po:lion", "steps": 2, "momentum": 0.8, "options": {"betas": [0.8, 0.9]}})
    optimizer = StrategyTrainer(prep).strategy.optimizer
    assert optimizer.param_groups[0]["betas"] == (0.8, 0.9)
    with pytest.raises(ConfigError, match=r"momentum 0.7 is betas\[0\], but -o betas=\[0.8, 0.9\] says 0.8"):
        prepare({"strategy": "po:lion", "momentum": 0.7, "options": {"betas": [0.8, 0.9]}})
    with pytest.raises(ConfigError, match="option weight_decouple of 'po:lion' must be true or false, got 3"):
        prepare({"strategy": "po:lion", "options": {"weight_decouple": 3}})


def test_schedule_free_is_evaluated_at_its_averaged_point_and_trains_at_its_iterate():
    prep = prepare({"strategy": "po:schedulefreeadamw", "steps": 10})
    trainer = StrategyTrainer(prep)
    for _ in range(10):
        trainer.step()
    strategy = trainer.strategy
    iterate = strategy.flat()
    averaged = trainer.params(0)
    assert not torch.allclose(averaged, iterate)  # eval() moved to the average x, train() came back to y
    assert torch.allclose(strategy.flat(), iterate, atol=1e-6)
    assert all(group["train_mode"] for group in strategy.optimizer.param_groups)
    assert torch.allclose(trainer.params(0), averaged, atol=1e-6)


def test_muon_gets_hidden_matrices_in_its_muon_group_and_the_rest_in_adamw():
    prep = prepare({"strategy": "po:muon", "steps": 2})
    groups = StrategyTrainer(prep).strategy.optimizer.param_groups
    shapes = {group["use_muon"]: [tuple(p.shape) for p in group["params"]] for group in groups}
    assert shapes[True] == [(16, 784), (16, 16)]
    assert shapes[False] == [(16,), (16,), (10, 16), (10,)]


@pytest.mark.parametrize(
    "name,message",
    [
        ("lomo", "po:lomo cannot run here: it takes an nn.Module"),
        (
            "lionn",
            "unknown pytorch-optimizer optimizer 'lionn' (128 in the package, see `optlab strategies`); "
            "did you mean po:lion",
        ),
        ("ranger21", "option num_iterations of 'po:ranger21' is required"),
    ],
)
def test_what_cannot_run_is_refused_in_one_line(tmp_path, monkeypatch, capsys, name, message):
    monkeypatch.setenv("OPTLAB_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["run", "-s", f"po:{name}", "--steps", "2", "-q"]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and message.replace("128", str(len(pytorch_optimizer.get_supported_optimizers()))) in err
    ), err
    assert not (tmp_path / "mlruns").exists()


def test_optlab_strategies_lists_every_po_optimizer_with_its_options(capsys):
    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    for name in pytorch_optimizer.get_supported_optimizers():
        assert f"  po:{name} " in out
    lion = out.split("  po:lion ", 1)[1].split("\n  po:", 1)[0]
    assert "[lr 0.0001, momentum 0.9, weight_decay 0]" in lion and "betas=(0.9, 0.99)" in lion
