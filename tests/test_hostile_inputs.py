"""Bad input found by hostile testing (issue 22), each refused in one line before anything is recorded."""

from __future__ import annotations

import os

import pytest

from optlab.cli import main


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            ["--threads", "100000"],
            f"--threads 100000 is not between 1 and this machine's {os.cpu_count()} logical CPUs",
        ),
        (["--threads", "0"], "--threads 0 is not between 1"),
        (["--hidden", "16,,16"], "invalid hidden sizes: '16,,16' has an empty size"),
        (["--hidden", "16,"], "invalid hidden sizes: '16,' has an empty size"),
        (["--lr", "1e400"], "argument --lr: 1e400 is too large"),
        (["--momentum=-1e999"], "argument --momentum: -1e999 is too large"),
        (["-s", "kfac", "-o", "damping=0.1", "-o", "damping=0.2"], "option 'damping' is given more than once"),
        (["-s", "kfac", "-o", "damping=1e400"], "invalid option 'damping=1e400': 1e400 is too large"),
        (
            ["-s", "ng:OnePlusOne", "--evaluations", "5", "-o", "sigma=1e308"],
            "option sigma of 'ng:OnePlusOne' must be > 0 and <= 1000, got 1e+308",
        ),
    ],
)
def test_hostile_run_arguments_are_one_line_and_no_run(store, capsys, argv, message):
    try:
        code = main(["run", "-d", "digits", "--steps", "2", "-q", *argv])
    except SystemExit as exc:  # argparse's refusals
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("optlab: error: ") and err.count("\n") == 1, err
    assert message in err, err
    assert not (store / "mlruns").exists()


def test_a_bench_with_more_threads_than_cpus_is_refused_in_one_line(capsys):
    assert main(["bench", "--quick", "--threads", str(10 * (os.cpu_count() or 1))]) == 2
    err = capsys.readouterr().err
    assert "logical CPUs" in err and err.count("\n") == 1


def test_threads_up_to_the_machine_are_used(store, capsys):
    import torch

    before = torch.get_num_threads()
    try:
        assert (
            main(["run", "-d", "digits", "--steps", "2", "-q", "--no-track", "--threads", str(os.cpu_count() or 1)])
            == 0
        )
        assert torch.get_num_threads() == (os.cpu_count() or 1)
    finally:
        torch.set_num_threads(before)


def test_the_markdown_results_escape_html_from_the_store(store, monkeypatch):
    import pandas as pd

    from optlab.reports import dynamics, lessons, markdown
    from optlab.reports.model import Note, Section, Table

    hostile = "<script>alert(1)</script> <img src=x onerror=alert(2)>"

    def section(*args, **kwargs):
        return Section(
            8,
            "t",
            blocks=[
                Note(f"strategy {hostile}"),
                Table(pd.DataFrame({"strategy": [hostile], "a|b": [1]}), f"caption {hostile}"),
            ],
        )

    monkeypatch.setattr(dynamics, "build", section)
    monkeypatch.setattr(lessons, "build", section)
    text = markdown.more_results()
    assert "<script>" not in text and "<img" not in text
    assert text.count("&lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=alert(2)&gt;") == 6
    assert "| a\\|b |" in text  # table cells still escape pipes


@pytest.mark.parametrize("failing", ["metrics", "read-back"])
def test_a_run_the_store_cannot_hold_leaves_no_weights(failing):
    """Weights stored before a later storage failure (the last metric points, the read-back) are removed again:
    a run that is not FINISHED leaves no params.safetensors (both recorders end through storage_problems)."""
    from optlab.tracking.run_facts import storage_problems

    files = set()

    def flush():
        if failing == "metrics":
            raise OSError(28, "No space left on device")

    problems = storage_problems(
        "FINISHED",
        [1.0],
        flush,
        lambda params: files.add("params.safetensors"),
        lambda with_weights: ["metrics: loss not stored"] if failing == "read-back" else [],
        lambda: files.discard("params.safetensors"),
    )
    assert problems and files == set()


def test_a_stored_run_keeps_its_weights():
    from optlab.tracking.run_facts import storage_problems

    files = set()
    assert (
        storage_problems(
            "FINISHED", [1.0], lambda: None, lambda params: files.add("w"), lambda w: [], lambda: files.clear()
        )
        == []
    )
    assert files == {"w"}


def test_a_deleted_experiment_is_refused_in_one_line_not_restored(store, capsys):
    from optlab.tracking.store import client

    argv = ["run", "-d", "digits", "--hidden", "4", "--steps", "2", "-q", "-e", "gone"]
    assert main(argv) == 0
    mlflow_client = client()
    experiment = mlflow_client.get_experiment_by_name("gone")
    mlflow_client.delete_experiment(experiment.experiment_id)
    capsys.readouterr()
    sweep = store / "gone.toml"
    sweep.write_text('name = "gone"\n[base]\ndataset = "digits"\nsteps = 2\nhidden = [4]\n[grid]\nseed = [0]\n')
    for args in (argv, ["sweep", str(sweep), "-q"]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("optlab: error: "), err
        assert f"experiment 'gone' (id {experiment.experiment_id}) is deleted" in err
        assert f"mlflow experiments restore --experiment-id {experiment.experiment_id}" in err
    assert client().get_experiment(experiment.experiment_id).lifecycle_stage == "deleted"
    assert len(client().search_runs([experiment.experiment_id], run_view_type=3)) == 1  # no run added


def test_a_seed_group_counts_each_seed_once_however_often_it_was_retried():
    from types import SimpleNamespace

    from optlab.sweeps.seed_groups import one_per_seed

    def run(run_id, seed, status, start):
        return SimpleNamespace(
            info=SimpleNamespace(run_id=run_id, status=status, start_time=start),
            data=SimpleNamespace(params={"seed": str(seed)}),
        )

    # seed 101 failed to be stored twice, then finished; seed 102 only ever failed (twice)
    runs = [
        run("a", 100, "FINISHED", 1),
        run("b", 101, "FAILED", 2),
        run("c", 101, "FAILED", 3),
        run("d", 101, "FINISHED", 4),
        run("e", 102, "FAILED", 5),
        run("f", 102, "FAILED", 6),
    ]
    assert sorted(r.info.run_id for r in one_per_seed(runs)) == ["a", "d", "f"]


def test_a_superseded_group_run_is_ended_before_it_is_deleted():
    from types import SimpleNamespace

    from optlab.sweeps.seed_groups import retire

    calls = []
    client = SimpleNamespace(
        set_terminated=lambda run_id, status: calls.append(("end", run_id, status)),
        delete_run=lambda run_id: calls.append(("delete", run_id)),
    )
    retire(client, SimpleNamespace(info=SimpleNamespace(run_id="g", status="RUNNING")))
    retire(client, SimpleNamespace(info=SimpleNamespace(run_id="h", status="FINISHED")))
    assert calls == [("end", "g", "KILLED"), ("delete", "g"), ("delete", "h")]
