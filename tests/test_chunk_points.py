"""How a sweep phase is cut into worker tasks: stackable points together, the rest one per task, first."""

from optlab.config import RunConfig
from optlab.sweeps.executor import MAX_CHUNK, chunk_points
from optlab.sweeps.spec import Point


def points(strategy: str, seeds, **settings) -> list[Point]:
    base = dict(strategy=strategy, dataset="digits", hidden=[8], epochs=1, **settings)
    return [Point(RunConfig.from_dict({**base, "seed": s}), role="rerun") for s in seeds]


def test_runs_without_a_stacked_form_are_one_task_each_and_come_first():
    lbfgs = points("lbfgs", range(6))
    adam = points("adam", range(10), lr=0.01)
    tasks = chunk_points(adam + lbfgs, workers=2)
    assert [len(t) for t in tasks[:6]] == [1] * 6
    assert {t[0].config.strategy for t in tasks[:6]} == {"lbfgs"}
    stacked = tasks[6:]
    assert all(p.config.strategy == "adam" for t in stacked for p in t)
    assert sum(len(t) for t in stacked) == 10 and len(stacked) >= 2  # both workers get a share
    assert all(len(t) <= MAX_CHUNK for t in stacked)


def test_an_unbatched_phase_sends_every_point_alone():
    tasks = chunk_points(points("adam", range(8), lr=0.01), workers=2, batched=False)
    assert [len(t) for t in tasks] == [1] * 8


def test_options_make_a_first_order_run_train_alone():
    tasks = chunk_points(points("momentum", range(4), lr=0.1, options={"momentum": 0.5}), workers=2)
    assert [len(t) for t in tasks] == [1] * 4


def test_seeds_of_a_nevergrad_search_share_a_task_so_they_can_step_together():
    tasks = chunk_points(points("ng:OnePlusOne", range(6), evaluations=50), workers=2)
    assert len(tasks) < 6 and sum(len(t) for t in tasks) == 6
