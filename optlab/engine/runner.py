"""Run one config, or many: validate and plan everything first, pick a trainer, hand it to the loop.

Flow: `prepare` (validation phase; nothing recorded yet) -> a trainer: the stacked trainer for a
strategy with a batched form (K compatible runs together, or K = 1); the stacked search trainer for
K > 1 compatible runs of a candidate search on a shared objective (a zeroth-order ask/tell strategy);
else the strategy itself stepped by the reference trainer -> `TrainingLoop.run` (recording,
evaluation, budget, target, divergence, probes) -> one RunResult per run.
"""

from __future__ import annotations

from typing import cast

from optlab.config import RunConfig
from optlab.engine.loop import Row, TrainingLoop
from optlab.engine.planning import Prepared, eval_interval, prepare
from optlab.engine.result import RunResult
from optlab.engine.stacked_search import StackedSearchTrainer
from optlab.engine.stacked_trainer import StackedTrainer
from optlab.engine.trainers import StrategyTrainer, Trainer
from optlab.errors import ConfigError
from optlab.problem import Problem, build_problem
from optlab.problem.problem import NetworkProblem
from optlab.strategies import resolve
from optlab.strategies.zeroth_order.common import CandidateSearch
from optlab.tracking.accounting import timed

MAX_GROUP = 64  # rows per stacked program: bounds memory (K * batch * 784 gathered inputs)
MAX_STACKED = 1 << 24  # parameters per stacked program (K * d): ~64 MB a copy in float32
SEARCH_MEMORY = 1 << 30  # bytes of search state (archives) per stacked search: K runs keep K archives
TRAINERS = ("auto", "stacked", "reference")
# which trainer stepped the run: "stacked" (a batched form), "search" (candidate searches in lock-step) or "reference"
TRAINER_TAG = "optlab.trainer"
SMALL_STEP = 15_000_000  # samples per step x parameters (~ multiply-adds of a forward pass): below, one thread wins


def has_stacked_form(config: RunConfig) -> bool:
    """Whether the stacked trainer's kernels cover this config: its strategy declares a batched form and it
    sets no strategy options."""
    cls = resolve(config.strategy)
    return cls.batched_rule() is not None and config.strategy == cls.name and not config.options


def may_stack(config: RunConfig) -> bool:
    """Whether a run of this config may share a program with other seeds, from the config alone: it has
    a stacked form, or it is a candidate search (the problem and the objective are checked by `stackable`
    and `search_stackable`)."""
    return has_stacked_form(config) or issubclass(resolve(config.strategy), CandidateSearch)


def stackable(prep: Prepared) -> bool:
    """Whether the stacked trainer can train this run: it has a stacked form and the problem is a network
    on data."""
    return has_stacked_form(prep.config) and isinstance(prep.problem, NetworkProblem)


def search_stackable(prep: Prepared) -> bool:
    """Whether runs of this config can step in lock-step with one batched scoring of all their candidates:
    a candidate search (ask/tell) scored on the objective every seed shares (not its own mini-batches)."""
    cls = prep.strategy_cls
    return issubclass(cls, CandidateSearch) and cls.shares_objective(prep.config, prep.plan)


def trainer_kind(prep: Prepared, size: int) -> str:
    """The trainer of a chunk of `size` runs of this config: "stacked", "search" (K > 1 candidate searches
    in lock-step) or "reference"."""
    if stackable(prep):
        return "stacked"
    return "search" if size > 1 and search_stackable(prep) else "reference"


def group_key(prep: Prepared) -> tuple | None:
    """Runs with equal keys can train together as one stacked program; None: this run trains alone.
    A time budget is per run, so runs with one never share a program (they would share its seconds); runs
    with full diagnostics train alone too: their Hessian products, not their steps, take the time, and
    a group's probes run one row after another in one process, where alone they spread over workers."""
    c, plan = prep.config, prep.plan
    if not (stackable(prep) or search_stackable(prep)) or "seconds" in c.budget or c.diagnostics == "full":
        return None
    # an order that reads the labels cuts batches by them: such rows must share their labels
    labels = (c.label_noise, c.noise_seed) if c.order != "shuffled" else None
    return (
        c.strategy,
        # a stacked rule holds labels per row; a search's rows score candidates on one problem, labels included
        shared_problem_key(c) if stackable(prep) else c.problem_key(),
        plan.batch_size,
        plan.max_steps,
        tuple(sorted(c.budget.items())),
        eval_interval(c, plan),
        c.full_eval_every,
        c.log_every,
        prep.problem.n_train,
        c.order,
        labels,
        tuple(sorted(c.options.items())),  # empty for a stacked rule (stackable); a search's settings
    )


def shared_problem_key(config: RunConfig) -> tuple:
    """The problem settings rows of one stacked program share: all but the labels (label noise and its seed
    when it seeds nothing else), which the stacked trainer holds per row."""
    per_row = ("label_noise",) + (("noise_seed",) if config.variant == "none" else ())
    return tuple(item for item in config.problem_key() if item[0] not in per_row)


def intra_op_threads(prep: Prepared) -> int | None:
    """1 when a training step is too small for a second intra-op thread to pay for its synchronization
    (mini-batches of the reference net: 2 threads made a B = 32 step 10x slower on a busy 2-core machine);
    None (torch's default) for big steps such as full-batch gradients."""
    samples = prep.strategy_cls.samples_per_step(prep.config, prep.plan.batch_size, prep.problem)
    return 1 if samples * prep.problem.n_params < SMALL_STEP else None


def run(
    config: RunConfig | dict | Prepared,
    recorder=None,
    progress: bool = False,
    problem: Problem | None = None,
    extra_tags: dict | None = None,
    trainer: str = "auto",
) -> RunResult:
    """Train, evaluate and record one run (a config, or one `prepare` already validated and planned).
    Bad input raises before anything is recorded; a divergence or an error inside the run is returned as a
    FAILED result (and recorded so).
    trainer: "auto" (the stacked trainer when the strategy has a batched form), "stacked", or
    "reference" (the strategy's own step(): torch.optim for the first-order family)."""
    if trainer not in TRAINERS:
        raise ValueError(f"trainer must be one of {', '.join(TRAINERS)}, got {trainer!r}")
    prep = config if isinstance(config, Prepared) else prepare(config, problem)
    use_stacked = trainer == "stacked" or (trainer == "auto" and stackable(prep))
    if use_stacked and not stackable(prep):
        raise ConfigError(f"strategy {prep.config.strategy!r} has no batched form on {prep.problem.name}")
    return _train([prep], [recorder], [extra_tags], progress, "stacked" if use_stacked else "reference")[0]


def run_many(
    configs: list,
    make_recorder=None,
    progress: bool = False,
    extra_tags: list[dict] | None = None,
    batched: bool = True,
    max_group: int = MAX_GROUP,
) -> list[RunResult]:
    """Run every config, each its own tracked run. With `batched`, compatible runs (group_key) train
    together as one stacked program; the others train alone. Every config is validated and planned
    first, so a bad value raises before any run is recorded."""
    with timed("planning"):
        configs = [RunConfig.from_dict(c) if isinstance(c, dict) else c for c in configs]
        problems: dict[tuple, Problem] = {}  # configs describing the same problem share one (and its data)
        preps = []
        for c in configs:
            c.validate()
            key = c.problem_key()
            if key not in problems:
                problems[key] = build_problem(c)
            preps.append(prepare(c, problems[key]))
    chunks: list[list[int]] = []
    alone: list[list[int]] = []
    groups: dict[tuple, list[int]] = {}
    for i, prep in enumerate(preps):
        key = group_key(prep) if batched else None
        if key is None:
            alone.append([i])
        else:
            groups.setdefault(key, []).append(i)
    for members in groups.values():
        first = preps[members[0]]
        size = max(1, min(max_group, MAX_STACKED // first.problem.n_params))
        search = first.strategy_cls
        if issubclass(search, CandidateSearch) and search_stackable(first):
            per_run = search.memory_bytes(first.config, first.problem)
            size = max(1, min(size, SEARCH_MEMORY // max(per_run, 1)))
        members = sorted(members, key=lambda i: preps[i].config.seed)  # one batch stream per seed
        chunks.extend(members[start : start + size] for start in range(0, len(members), size))
    chunks.extend(alone)
    results: list[RunResult | None] = [None] * len(configs)
    for chunk in chunks:
        recorders = [make_recorder(configs[i]) if make_recorder is not None else None for i in chunk]
        tags = [extra_tags[i] if extra_tags else None for i in chunk]
        kind = trainer_kind(preps[chunk[0]], len(chunk))
        outs = _train([preps[i] for i in chunk], recorders, tags, progress, kind)
        for i, out in zip(chunk, outs):
            results[i] = out
    return cast(list[RunResult], results)  # every index filled: the chunks cover all configs


def train_together(
    preps: list[Prepared],
    recorders: list | None = None,
    progress: bool = False,
    extra_tags: list[dict | None] | None = None,
) -> list[RunResult]:
    """Train prepared runs with equal group keys as one stacked program; results in the given order."""
    if len({group_key(p) for p in preps}) != 1 or group_key(preps[0]) is None:
        raise ValueError("train_together needs runs with one group key (see group_key)")
    order = sorted(range(len(preps)), key=lambda i: preps[i].config.seed)
    recorders = recorders or [None] * len(preps)
    extra_tags = extra_tags or [None] * len(preps)
    outs = _train(
        [preps[i] for i in order],
        [recorders[i] for i in order],
        [extra_tags[i] for i in order],
        progress,
        "stacked" if stackable(preps[0]) else "search",
    )
    results: list[RunResult | None] = [None] * len(preps)
    for i, out in zip(order, outs):
        results[i] = out
    return cast(list[RunResult], results)  # every index filled: order is a permutation


def _train(preps: list[Prepared], recorders: list, extra_tags: list, progress: bool, kind: str) -> list[RunResult]:
    trainer: Trainer
    if kind == "stacked":
        trainer = StackedTrainer(preps)
    elif kind == "search":
        trainer = StackedSearchTrainer(preps)
    else:
        trainer = StrategyTrainer(preps[0])
    used = {TRAINER_TAG: kind}  # with optlab.timing: alone or batched:K
    rows = [
        Row.of(prep, recorder, {**(tags or {}), **used}) for prep, recorder, tags in zip(preps, recorders, extra_tags)
    ]
    return TrainingLoop(trainer, rows, progress).run()
