"""Runs of one zeroth-order search that differ only in seed step in lock-step (one batched scoring of all
rows' candidates) and each row reproduces its run trained alone: same candidates, losses, counters."""

import math

import pytest
import torch

from optlab.config import RunConfig
from optlab.engine import prepare, run, run_many
from optlab.engine.runner import TRAINER_TAG, group_key, train_together
from optlab.strategies.zeroth_order.nevergrad_adapter import NevergradStrategy

SKIP = {"wall_time", "wall_time_share"}  # timings, and the batched-only share of the group's time
TINY = {"dataset": "digits", "hidden": [8], "evaluations": 60, "eval_every": 5}


pytestmark = pytest.mark.usefixtures("one_intra_op_thread")


@pytest.fixture
def asked(monkeypatch):
    """Every candidate batch each run asks, by seed, in order."""
    seen: dict[int, list[torch.Tensor]] = {}
    original = NevergradStrategy.ask

    def recording(self):
        ws = original(self)
        seen.setdefault(self.config.seed, []).append(ws.clone())
        return ws

    monkeypatch.setattr(NevergradStrategy, "ask", recording)
    return seen


def assert_same_run(alone, stacked):
    assert alone.status == stacked.status == "FINISHED", (alone.reason, stacked.reason)
    assert alone.steps == stacked.steps
    assert alone.counters == stacked.counters
    assert [p["step"] for p in alone.history] == [p["step"] for p in stacked.history]
    for a, b in zip(alone.history, stacked.history):
        assert a.keys() - SKIP == b.keys() - SKIP
        for key in a.keys() - SKIP:
            assert math.isclose(a[key], b[key], rel_tol=1e-5, abs_tol=1e-6), (key, a[key], b[key])
    torch.testing.assert_close(alone.params, stacked.params)


@pytest.mark.parametrize("name", ["OnePlusOne", "DiagonalCMA", "PSO", "TwoPointsDE"])
def test_each_stacked_row_asks_and_records_what_its_run_alone_does(name, asked):
    configs = [{**TINY, "strategy": f"ng:{name}", "seed": seed} for seed in (4, 1, 2)]
    together = train_together([prepare(c) for c in configs])
    stacked_asks = {seed: list(batches) for seed, batches in asked.items()}
    asked.clear()
    for config, stacked in zip(configs, together):
        alone = run(config)
        assert alone.timing == "alone" and stacked.timing == "batched:3"
        assert_same_run(alone, stacked)
        mine, theirs = asked[config["seed"]], stacked_asks[config["seed"]]
        assert len(mine) == len(theirs) == alone.steps
        assert all(torch.equal(a, b) for a, b in zip(mine, theirs))
    # the seeds' candidates differ: the rows are not one run repeated
    assert not torch.equal(stacked_asks[1][0], stacked_asks[2][0])


def test_the_last_round_of_each_row_asks_only_what_its_budget_has_left(asked):
    configs = [
        {**TINY, "strategy": "ng:TwoPointsDE", "seed": seed, "evaluations": 10, "options": {"num_workers": 4}}
        for seed in (0, 1)
    ]
    together = train_together([prepare(c) for c in configs])
    for config, stacked in zip(configs, together):
        assert [len(ws) for ws in asked[config["seed"]]] == [4, 4, 2]
        assert stacked.counters["function_evals"] == 10
        assert stacked.history[-1]["evaluations"] == 10
    asked.clear()
    assert_same_run(run(configs[1]), together[1])


def test_run_many_steps_the_seeds_of_a_full_objective_search_together():
    configs = [{**TINY, "strategy": "ng:OnePlusOne", "seed": seed} for seed in (0, 1, 2)]
    results = run_many(configs, extra_tags=[{}] * 3)
    assert {r.timing for r in results} == {"batched:3"}
    alone = run_many(configs[:1], batched=False)[0]
    assert alone.timing == "alone"
    assert_same_run(alone, results[0])


def test_what_cannot_share_one_scoring_trains_alone():
    full = prepare({**TINY, "strategy": "ng:OnePlusOne", "seed": 0})
    other_seed = prepare({**TINY, "strategy": "ng:OnePlusOne", "seed": 1})
    assert group_key(full) is not None and group_key(full) == group_key(other_seed)
    # another mutation scale is another configuration
    assert group_key(prepare({**TINY, "strategy": "ng:OnePlusOne", "options": {"sigma": 0.1}})) != group_key(full)
    # objective=batch scores each seed on its own mini-batches: no shared scoring, so alone
    noisy = {**TINY, "strategy": "ng:OnePlusOne", "options": {"objective": "batch"}, "batch_size": 16}
    assert group_key(prepare(noisy)) is None
    results = run_many([{**noisy, "seed": s} for s in (0, 1)])
    assert {r.timing for r in results} == {"alone"}


def test_stacked_runs_are_tagged_with_the_search_trainer(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTLAB_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from optlab.tracking import RunRecorder

    configs = [{**TINY, "strategy": "ng:PSO", "seed": seed, "experiment": "ngstack"} for seed in (0, 1)]
    recorders = []

    def make(config):
        recorders.append(RunRecorder(experiment=config.experiment))
        return recorders[-1]

    results = run_many(configs, make_recorder=make)
    import mlflow

    client = mlflow.tracking.MlflowClient()
    for result in results:
        run_ = client.get_run(result.run_id)
        assert run_.data.tags[TRAINER_TAG] == "search"
        assert run_.data.tags["optlab.timing"] == "batched:2"
        assert run_.info.status == "FINISHED"


def test_seeds_with_different_label_noise_draws_do_not_share_one_scoring():
    noisy = {**TINY, "strategy": "ng:OnePlusOne", "label_noise": 0.2}
    assert group_key(prepare({**noisy, "noise_seed": 1})) != group_key(prepare({**noisy, "noise_seed": 2}))


def test_a_search_stack_holds_no_more_archives_than_its_memory_allows(monkeypatch):
    from optlab.engine import runner

    sizes = []
    real = runner._train

    def spy(preps, recorders, extra_tags, progress, kind):
        sizes.append((len(preps), kind))
        return real(preps, recorders, extra_tags, progress, kind)

    monkeypatch.setattr(runner, "_train", spy)
    configs = [
        RunConfig.from_dict(dict(strategy="ng:OnePlusOne", dataset="digits", hidden=[8], evaluations=20, seed=s))
        for s in range(5)
    ]
    prep = runner.prepare(configs[0])
    per_run = prep.strategy_cls.memory_bytes(prep.config, prep.problem)
    assert per_run > 0  # Nevergrad's archive is counted
    monkeypatch.setattr(runner, "SEARCH_MEMORY", 2 * per_run)
    runner.run_many(configs, batched=True)
    assert sorted(sizes) == [(1, "reference"), (2, "search"), (2, "search")]
