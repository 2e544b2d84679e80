"""The data-order run setting: `sorted_by_class` yields batches of one class, classes in order, in the
sampler and in the stacked trainer's batch streams alike; refused where there are no mini-batches."""

from __future__ import annotations

import pytest
import torch

from optlab.config import RunConfig
from optlab.engine import prepare, run
from optlab.errors import ConfigError
from optlab.problem import build_problem
from optlab.problem.problem import BatchSampler, epoch_batches, epoch_steps


def test_sorted_by_class_yields_batches_of_one_class_in_order_covering_each_epoch():
    problem = build_problem(RunConfig(dataset="digits"))
    labels = problem.dataset.y_train
    sampler = problem.sampler(50, seed=1, order="sorted_by_class")
    per_epoch = epoch_steps(labels, 50, "sorted_by_class")
    counts = torch.bincount(labels)
    assert per_epoch == sum(-(-int(c) // 50) for c in counts) > -(-len(labels) // 50)  # each class ends a batch
    epochs = []
    for _ in range(2):
        batches = [sampler.next_indices() for _ in range(per_epoch)]
        classes = [labels[b].unique().tolist() for b in batches]
        assert all(len(c) == 1 for c in classes)  # one class per batch
        sequence = [c[0] for c in classes]
        assert sequence == sorted(sequence) and sequence[0] == 0 and sequence[-1] == 9  # in order, all classes
        seen = torch.cat(batches)
        assert torch.equal(seen.sort().values, torch.arange(len(labels)))  # every sample once per epoch
        epochs.append(seen)
    assert not torch.equal(epochs[0], epochs[1])  # reshuffled within classes


def test_shuffled_order_is_the_sampler_it_always_was():
    labels = torch.arange(100) % 10
    sampler = BatchSampler(100, 32, seed=5, labels=labels)
    generator = torch.Generator().manual_seed(5)
    permutation = torch.randperm(100, generator=generator)
    drawn = [sampler.next_indices() for _ in range(4)]
    assert [len(b) for b in drawn] == [32, 32, 32, 4]
    torch.testing.assert_close(torch.cat(drawn), permutation)
    assert len(epoch_batches(labels, 32, torch.Generator().manual_seed(0))) == epoch_steps(labels, 32)


@pytest.mark.parametrize("strategy", ["momentum", "adam"])
def test_stacked_rows_draw_the_sorted_batches_their_runs_alone_draw(strategy):
    configs = [
        RunConfig(
            strategy=strategy, dataset="digits", hidden=(8,), steps=60, eval_every=20, seed=s, order="sorted_by_class"
        )
        for s in (0, 1)
    ]
    from optlab.engine.runner import train_together

    together = train_together([prepare(c) for c in configs])
    for config, result in zip(configs, together):
        alone = run(config, trainer="reference")
        assert result.timing == "batched:2" and alone.status == result.status == "FINISHED"
        torch.testing.assert_close(result.params, alone.params, rtol=1e-4, atol=1e-5)
    shuffled = run(configs[0].with_updates(order="shuffled"))
    assert not torch.allclose(shuffled.params, together[0].params, atol=1e-3)


def test_an_epoch_budget_counts_the_extra_steps_of_class_batches():
    config = RunConfig(strategy="minibatch", dataset="digits", hidden=(8,), epochs=1, order="sorted_by_class")
    prep = prepare(config)
    labels = prep.problem.dataset.y_train
    assert prep.plan.steps_per_epoch == epoch_steps(labels, 32, "sorted_by_class")
    result = run(config)
    assert result.steps == prep.plan.steps_per_epoch and result.counters["samples_seen"] == len(labels)


@pytest.mark.parametrize(
    "changes,message",
    [
        (
            {"strategy": "gd"},
            "order 'sorted_by_class' orders mini-batches, but gd on digits uses the whole training set",
        ),
        ({"dataset": "ravine", "strategy": "sgd"}, "has no training data"),
        ({"order": "random"}, "unknown order 'random'; choose from shuffled, sorted_by_class"),
    ],
)
def test_an_order_without_mini_batches_or_an_unknown_one_is_refused(changes, message):
    values = {"dataset": "digits", "strategy": "minibatch", "order": "sorted_by_class", **changes}
    with pytest.raises(ConfigError, match=message):
        prepare(RunConfig.from_dict(values))


def test_order_is_part_of_a_runs_identity_and_diagnostics_are_not():
    base = RunConfig(strategy="minibatch")
    assert base.config_hash() != base.with_updates(order="sorted_by_class").config_hash()
    assert base.config_hash() == base.with_updates(diagnostics="full", diagnostics_samples=64).config_hash()
