"""How a sweep phase is cut into worker tasks: stackable points together, the rest one per task, first."""

from optlab.config import RunConfig
from optlab.sweeps.scheduling import MAX_CHUNK, chunk_points, longest_first, measured, seconds_per_run
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


def test_a_group_is_cut_into_chunks_of_equal_size():
    tasks = chunk_points(points("adam", range(15), lr=0.01) + points("sgd", range(30), lr=0.1), workers=2)
    sizes = {s: sorted(len(t) for t in tasks if t[0].config.strategy == s) for s in ("adam", "sgd")}
    assert sizes == {"adam": [7, 8], "sgd": [10, 10, 10]}  # at most 12 a task: not 12 + 3 for adam's fifteen


def test_points_that_must_train_alone_are_tasks_of_their_own_in_a_batched_phase():
    reruns = points("adam", range(8), lr=0.01)
    timed = {p.point_hash for p in reruns[:3]}
    tasks = chunk_points(reruns, workers=2, batched=True, alone=lambda p: p.point_hash in timed)
    alone = [t[0].point_hash for t in tasks if len(t) == 1]
    assert timed <= set(alone) and len(alone) == len(set(alone))
    assert not any(p.point_hash in timed for t in tasks if len(t) > 1 for p in t)
    assert sum(len(t) for t in tasks) == 8 and any(len(t) > 1 for t in tasks)


class Run:
    def __init__(self, group, status="FINISHED", **tags):
        self.info = type("Info", (), {"status": status})()
        tags = {f"optlab.summary.{k}": str(v) for k, v in tags.items()}
        self.data = type("Data", (), {"tags": {"optlab.role": "tuning", "optlab.group": group, **tags}})()


def test_seconds_per_run_are_the_tuning_trials_recorded_training_time():
    runs = [
        Run("a", wall_time=2.0, wall_time_share=0.5),  # stacked: its share counts
        Run("a", wall_time=1.5),  # alone: its own
        Run("b", wall_time=3.0),
        Run("b", status="FAILED", wall_time=100.0),  # a diverged trial stopped early: not a measure
    ]
    assert seconds_per_run(runs) == {"a": 1.0, "b": 3.0}


def test_tasks_go_out_longest_first_and_those_without_an_estimate_before_all():
    def trial(strategy, seed, group):
        config = RunConfig.from_dict(dict(strategy=strategy, dataset="digits", hidden=[8], epochs=1, seed=seed))
        return Point(config, role="rerun", group=group, trial="lr=0.1")

    short = [trial("sgd", s, "short") for s in range(4)]
    long = [trial("adam", s, "long") for s in range(2)]
    unknown = [Point(RunConfig.from_dict(dict(strategy="lbfgs", dataset="digits", hidden=[8], epochs=1)), "rerun")]
    order = longest_first([short, long, unknown], measured({"short": 0.1, "long": 1.0}))
    assert order == [unknown, long, short]  # 2 x 1.0 s before 4 x 0.1 s
    assert longest_first([short, long], measured({})) == [short, long]  # nothing measured: as given


def test_before_anything_is_measured_the_longest_planned_work_goes_first(tmp_path):
    from sweep_helpers import write_spec

    from optlab.sweeps import load
    from optlab.sweeps.scheduling import planned

    body = """
[grid]
strategy = ["gd", "sgd", "minibatch"]
"""
    spec = load(write_spec(tmp_path, body, name="order", steps=50))
    assert set(spec.work) == {p.point_hash for p in spec.points}
    work = {p.config.strategy: spec.work[p.point_hash] for p in spec.points}
    # the same 50 steps: a full-batch step does the most arithmetic, one sample the least
    assert work["gd"] > work["minibatch"] > work["sgd"]
    order = longest_first([[p] for p in spec.points], planned(spec.work))
    assert [c[0].config.strategy for c in order] == ["gd", "minibatch", "sgd"]
