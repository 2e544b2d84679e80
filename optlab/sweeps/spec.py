"""Experiment files: a TOML sweep description, validated as a whole, expanded into points.

File layout (every section but `name` optional)::

    name = "convergence"             # the MLflow experiment and the sweep's name
    description = "..."
    [base]                           # RunConfig keys with fixed values
    [workloads.NAME]                 # a fixed problem, budget and target (workload keys only);
    dataset = "mnist5k"              #   every grid point runs on every workload (default: one
    epochs = 5                       #   workload named after the sweep, from [base])
    target = 0.85                    #   a validation accuracy
    [grid]                           # RunConfig keys -> non-empty lists; the cartesian product
    [tune]                           # hyperparameter tuning as data (see tuning.py)
    lr = [0.01, 0.1]                 #   tuning axes: RunConfig keys -> non-empty lists
    objective = "val_loss"           #   what selects the best trial of each group (never a test metric)
    seeds = [0, 1]                   #   the seeds every trial runs on (default [0])
    by = ["batch_size"]              #   group keys (default: every grid axis)
    [rerun]                          # DeepOBS's protocol: the selected trial of every group is rerun
    seeds = [100, 101, 102]          #   on fresh seeds (distinct from the tuning seeds): the reported runs
    timed_alone = 2                  #   the first N rerun seeds train alone (their wall time is their own);
                                     #   the others train batched where the engine can (default: all alone)
    probe_noise_scale = true         #   measurement settings (probes, evaluation cadence) for reruns only
    [overrides.STRATEGY]             # fixed values for points of that strategy (not workload keys) ...
    tune = { lr = [0.001, 0.01] }    #   ... and its own tuning axes; `tune = {}`: not tuned, run as is
    [overrides."batch_size=1024"]    # the same for the points whose grid axis has that value (later
    tune = { lr = [0.1, 0.3] }       #   sections win: strategies first, then axis=value in file order)
    [series.NAME]                    # an extra series over the same grid with fixed values
    lr = 0.1                         #   (no tuning); its runs are tagged optlab.series=NAME
    [margins]                        # equivalence margins of the verdicts (optlab.analysis.verdicts),
    test_accuracy = 0.01             #   metric -> margin, for every workload; a [workloads.NAME] table
                                     #   may carry its own: margins = { test_accuracy = 0.02 }

A workload is what a comparison holds fixed: the data and its variant, the network, the cost, the budget and
the target (WORKLOAD_KEYS, the RunConfig fields declared so). Every run carries `optlab.workload` (the
workload's name, plus the workload keys that vary among its points, e.g. "memorization hidden=512
label_noise=0.2") and `optlab.workload_hash` (a hash of the values themselves); reports compare strategies
only within one.

In a tuned sweep every reported run is a rerun on a fresh seed: tuning trials (role `tuning`, may be
trained batched) choose, reruns (role `rerun`, trained alone so their wall time is their own) report.
Seeds are then not a grid axis: tuning seeds go in `[tune] seeds`, reported seeds in `[rerun] seeds`.

Loading reads and checks everything before anything runs: an unknown key, a wrong type, an empty
axis or overlapping seed lists raise a one-line ConfigError naming the file, the key and the value.
A file that would expand to more than `max_points` points (default MAX_POINTS) is refused before any
point is built, with the count and the override (`optlab sweep --max-points N`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from optlab import references
from optlab.config import RunConfig
from optlab.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, packaged for 3.10
    import tomli as tomllib

TOP_KEYS = ("name", "description", "base", "workloads", "grid", "tune", "rerun", "overrides", "series", "margins")
RUN_KEYS = RunConfig.field_names()
# what a workload fixes: problem (data, variant, network, cost), budget and target
WORKLOAD_KEYS = RunConfig.workload_keys()
# measurement settings a [workloads.NAME] table may also fix (evaluation cadence, per-step logging, probes)
WORKLOAD_EXTRA_KEYS = RunConfig.fields_with_role("evaluation", "measurement")
NAME_KEYS = RunConfig.fields_with_role("identity")  # set by the sweep, never in a sweep file
# objective -> True when larger is better; metrics are the final values of the run. Tuning reads
# validation (or training) metrics only: test metrics are reported, never used to choose.
OBJECTIVES = {
    "steps_to_target": False,
    "val_loss": False,
    "val_accuracy": True,
    "train_loss": False,
    "train_accuracy": True,
}
TUNE_KEYS = ("objective", "by", "seeds")
RERUN_KEYS = ("seeds", "timed_alone") + WORKLOAD_EXTRA_KEYS  # measurement settings may apply to the reported runs only
MARGINS_TAG = "optlab.margins"  # a run's workload's equivalence margins (JSON), when the sweep file declares any
WORKLOAD_ORDER_TAG = "optlab.workload_order"  # its workload's place in the sweep file (0, 1, ...)
ROLES = ("point", "tuning", "rerun")
MAX_POINTS = 10_000  # points a sweep file may expand to unless the caller raises the cap


@dataclass(frozen=True)
class Point:
    """One run of a sweep: its config and the tags that place it in the sweep."""

    config: RunConfig
    role: str  # "point" (untuned sweep), "tuning" (a trial) or "rerun" (reported)
    group: str | None = None  # tuning group key, e.g. "batch_size: batch_size=32"
    trial: str | None = None  # the tuned values of a trial (or of the rerun selection), e.g. "lr=0.1"
    series: str | None = None
    axes: str = ""  # the grid values that made it, for listings (not part of its identity)
    workload: str = ""  # the workload's id (see the module docstring)
    trials: int | None = None  # the tuning budget of its group (number of trials), for reruns and trials
    alone: bool = True  # a reported run trained alone (its wall time is its own), or batched
    margins: str = ""  # its workload's declared equivalence margins (JSON), "" for the defaults
    workload_order: int = 0  # its workload's place in the sweep file (the report's order; runs start out of it)

    @property
    def point_hash(self) -> str:
        """Stable identity for resume: the config hash plus the series (a fixed-lr series run
        may share its config with a tuning trial and is still a different point) and the role."""
        text = self.config.config_hash() + "|" + (self.series or "") + ("|rerun" if self.role == "rerun" else "")
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def tuning_key(self) -> tuple[str, str]:
        """(group, trial) of a point in a tuning group (every such point has both)."""
        if self.group is None or self.trial is None:
            raise ValueError(f"point {self.axes!r} is not a trial of a tuning group")
        return self.group, self.trial

    def tags(self, sweep: str) -> dict[str, str]:
        tags = {
            "optlab.sweep": sweep,
            "optlab.point_hash": self.point_hash,
            "optlab.role": self.role,
            "optlab.workload": self.workload,
            "optlab.workload_hash": self.config.workload_hash(),
        }
        if self.group is not None:
            tags["optlab.group"], tags["optlab.trial"] = self.tuning_key
        if self.trials is not None:
            tags["optlab.trials"] = str(self.trials)
        if self.role == "rerun":
            tags["optlab.selected"] = "true"
        if self.series is not None:
            tags["optlab.series"] = self.series
        if self.margins:
            tags[MARGINS_TAG] = self.margins
        tags[WORKLOAD_ORDER_TAG] = str(self.workload_order)
        return tags


@dataclass
class Group:
    """A tuning group: one workload and one setting of the `by` keys, with its trials."""

    name: str
    workload: str
    trials: dict[str, RunConfig]  # trial label -> its config on the first tuning seed
    grid: dict[str, list]  # tuned axis -> the values tried (for the edge-of-grid check)
    tuned: bool = True  # False: `tune = {}`, the one configuration is rerun as is


@dataclass
class SweepSpec:
    name: str
    path: Path
    text: str
    description: str = ""
    points: list[Point] = field(default_factory=list)
    objective: str | None = None  # None when the sweep tunes nothing
    grid_size: int = 0  # grid points before tuning axes and series
    workloads: list[str] = field(default_factory=list)  # workload ids, in file order
    groups: dict[str, Group] = field(default_factory=dict)
    tune_seeds: tuple[int, ...] = ()
    rerun_seeds: tuple[int, ...] = ()
    rerun_settings: dict = field(default_factory=dict)  # measurement settings of the reported runs
    timed_alone: int | None = None  # rerun seeds trained alone (the first N); None: every one
    margins: dict[str, str] = field(default_factory=dict)  # workload id -> its margins (JSON) when declared
    work: dict[str, float] = field(default_factory=dict)  # point hash -> its planned work (scheduling.planned_work)

    @property
    def spec_hash(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    def reruns(self, selected: dict[str, str]) -> list[Point]:
        """The reported runs of the tuned groups: the selected trial (group -> trial label) of each
        group on every rerun seed. Groups with no selection (every trial failed) get none."""
        points = []
        for name, trial in selected.items():
            group = self.groups.get(name)
            if group is None or trial not in group.trials or not group.tuned:
                continue
            for i, seed in enumerate(self.rerun_seeds):
                points.append(
                    Point(
                        group.trials[trial].with_updates(seed=seed, **self.rerun_settings),
                        "rerun",
                        group=name,
                        trial=trial,
                        axes=f"{name} {trial} seed={seed}",
                        workload=group.workload,
                        trials=len(group.trials),
                        alone=self.trained_alone(i),
                        margins=self.margins.get(group.workload, ""),
                        workload_order=self.workloads.index(group.workload),
                    )
                )
        return points

    def trained_alone(self, index: int) -> bool:
        """Whether the rerun on the index-th rerun seed trains alone (timed) or may be batched."""
        return self.timed_alone is None or index < self.timed_alone


def load(path: str | Path, check_plans: bool = True, max_points: int = MAX_POINTS) -> SweepSpec:
    """Read, validate and expand a sweep file. `check_plans` also plans every point (builds its
    problem once per distinct dataset) so infeasible settings fail here, before any run."""
    path = Path(path)
    where = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read sweep file ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{where}: not a UTF-8 text file (byte {exc.start}: {raw[exc.start : exc.start + 1]!r}); "
            f"a sweep file is TOML text"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: invalid TOML: {_first_line(str(exc))}") from None
    except RecursionError:
        raise ConfigError(f"{where}: invalid TOML: nested too deeply") from None
    spec = parse(absolute_references(data, path.resolve().parent), where, max_points, folder=path.parent)
    spec.path, spec.text = path, text
    if check_plans:
        spec.work = check_feasible(spec.points, where)
    return spec


def parse(data: dict, where: str = "sweep", max_points: int = MAX_POINTS, folder: Path | None = None) -> SweepSpec:
    """`folder`: what a relative `workload = "file.py:NAME"` is relative to (the sweep file's; default: the
    working directory)."""
    _only(data, TOP_KEYS, where)
    _check_size(data, where, max_points)
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: name must be a non-empty string, got {name!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{where}: description must be a string, got {description!r}")
    base = _table(data, "base", where)
    _only(base, RUN_KEYS, f"{where} [base]")
    for key in NAME_KEYS:
        if key in base:
            raise ConfigError(f"{where} [base]: {key} is set by the sweep (its name), got {base[key]!r}")
    base_config = _config(base, source=f"{where} [base]")
    workloads, margins = _workloads(_table(data, "workloads", where), base, name, where, folder)
    default_margins = _margins(_table(data, "margins", where), f"{where} [margins]")

    grid = _axes(_table(data, "grid", where), f"{where} [grid]", base)
    tune_table = _table(data, "tune", where)
    tune_axes = _axes({k: v for k, v in tune_table.items() if k not in TUNE_KEYS}, f"{where} [tune]", base)
    objective, by, tune_seeds = _tune_settings(tune_table, grid, tune_axes, where)
    rerun_table = _table(data, "rerun", where)
    rerun_seeds = _rerun_settings(rerun_table, objective, grid, tune_seeds, where)
    timed_alone = _timed_alone(rerun_table, rerun_seeds, where)
    rerun_extra = {k: v for k, v in rerun_table.items() if k not in ("seeds", "timed_alone")}
    _config({**base, **rerun_extra}, source=f"{where} [rerun]")

    overrides = _table(data, "overrides", where)
    strategies = grid.get("strategy", [base_config.strategy])
    override_fixed, override_tune = {}, {}  # key: a strategy name or "axis=value"
    for key, table in overrides.items():
        here = f"{where} [overrides.{key}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{here}: must be a table, got {table!r}")
        if "=" in key:
            axis, _, value = key.partition("=")
            if axis not in grid or axis == "strategy":
                raise ConfigError(
                    f"{here}: {axis!r} is not a [grid] axis (allowed: "
                    f"{', '.join(k for k in grid if k != 'strategy') or 'none'})"
                )
            if value not in {_show(v) for v in grid[axis]}:
                raise ConfigError(
                    f"{here}: {value!r} is not a value of grid axis {axis} ({', '.join(_show(v) for v in grid[axis])})"
                )
            context = {**base, axis: next(v for v in grid[axis] if _show(v) == value)}
        elif key not in strategies:
            raise ConfigError(f"{here}: strategy {key!r} is not in the sweep ({', '.join(strategies)})")
        else:
            context = {**base, "strategy": key}
        _only(table, RUN_KEYS + ("tune",), here)
        fixed = {k: v for k, v in table.items() if k != "tune"}
        for name_ in fixed:
            if name_ in WORKLOAD_KEYS:
                raise ConfigError(
                    f"{here}: {name_} = {fixed[name_]!r} is part of the workload (problem, budget, "
                    f"target), which every strategy shares; declare another [workloads.NAME] instead"
                )
        _config({**context, **fixed}, source=here)
        override_fixed[key] = fixed
        if "tune" in table:
            if objective is None:
                raise ConfigError(f"{here}: tune needs a [tune] section with an objective")
            if not isinstance(table["tune"], dict):
                raise ConfigError(f"{here}: tune must be a table of axes, got {table['tune']!r}")
            override_tune[key] = _axes(table["tune"], f"{here} tune", context)

    if objective is not None and not tune_axes and not any(override_tune.values()):
        raise ConfigError(f"{where} [tune]: no tuning axis given (e.g. lr = [0.01, 0.1])")

    series = _table(data, "series", where)
    for label, table in series.items():
        here = f"{where} [series.{label}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{here}: must be a table of fixed values, got {table!r}")
        _only(table, RUN_KEYS, here)
        _config({**base, **table}, source=here)

    spec = SweepSpec(
        name=name,
        path=Path(where),
        text="",
        description=description,
        objective=objective,
        tune_seeds=tuple(tune_seeds),
        rerun_seeds=tuple(rerun_seeds),
        rerun_settings=rerun_extra,
        timed_alone=timed_alone,
    )
    combos = list(_product(grid))
    spec.grid_size = len(combos) * len(workloads)
    drafts: list[tuple[str, dict, dict, Point]] = []  # (declared workload, by-values, tuning axes, point)
    seen: set[str] = set()

    def add(declared: str, by_values: dict, point: Point):
        if point.point_hash not in seen:  # two combinations may resolve to one config: run it once
            seen.add(point.point_hash)
            drafts.append((declared, by_values, axes, point))

    for workload, fixed_workload in workloads.items():
        for i, combo in enumerate(combos):
            strategy = combo.get("strategy", base_config.strategy)
            matching = _matching(combo, strategy, overrides)
            values = {**base, **fixed_workload, **combo, "experiment": name}
            for key in matching:
                values.update(override_fixed[key])
            axes = next((override_tune[k] for k in reversed(matching) if k in override_tune), tune_axes)
            source = f"{where}: point {i} ({_describe(combo)})"
            if len(workloads) > 1:
                source += f" on workload {workload}"
            by_values = {k: combo.get(k, values.get(k)) for k in by}
            if objective is not None and axes:
                for trial in _product(axes):
                    for seed in tune_seeds:
                        add(
                            workload,
                            by_values,
                            Point(
                                _config({**values, **trial, "seed": seed}, source=source),
                                "tuning",
                                trial=_describe(trial),
                                axes=_describe({**combo, **trial, "seed": seed}),
                            ),
                        )
            elif objective is not None:  # `tune = {}`: this strategy runs as given, on the rerun seeds
                for j, seed in enumerate(rerun_seeds):
                    add(
                        workload,
                        by_values,
                        Point(
                            _config({**values, "seed": seed, **rerun_extra}, source=source),
                            "rerun",
                            trial="(as given)",
                            axes=_describe({**combo, "seed": seed}),
                            alone=spec.trained_alone(j),
                        ),
                    )
            else:
                add(workload, by_values, Point(_config(values, source=source), "point", axes=_describe(combo)))
            for label, fixed in series.items():
                here = f"{where} [series.{label}]"
                if objective is None:
                    add(
                        workload,
                        by_values,
                        Point(
                            _config({**values, **fixed}, source=here),
                            "point",
                            series=label,
                            axes=_describe({**combo, **fixed}),
                        ),
                    )
                    continue
                for j, seed in enumerate(rerun_seeds):  # a series of a tuned sweep is reported: fresh seeds
                    reported = _config({**values, **fixed, "seed": seed, **rerun_extra}, source=here)
                    add(
                        workload,
                        by_values,
                        Point(
                            reported,
                            "rerun",
                            series=label,
                            alone=spec.trained_alone(j),
                            axes=_describe({**combo, **fixed, "seed": seed}),
                        ),
                    )
    for declared in workloads:
        merged = {**default_margins, **margins.get(declared, {})}
        if merged:
            spec.margins[declared] = json.dumps(merged, sort_keys=True)
    _finish(spec, drafts, workloads)
    _check_labels(spec.points, where)
    return spec


def _matching(combo: dict, strategy: str, overrides: dict) -> list[str]:
    """The override sections that apply to a grid point: its strategy's, then axis=value ones (file order)."""
    keys = [strategy] if strategy in overrides else []
    return keys + [k for k in overrides if "=" in k and _show(combo.get(k.partition("=")[0])) == k.partition("=")[2]]


def _finish(spec: SweepSpec, drafts: list, workloads: dict) -> None:
    """Name each point's workload (the declared name plus the workload keys that vary among its
    points) and its tuning group, and collect the groups' trials and grids."""
    varying: dict[str, list[str]] = {}
    for declared in workloads:
        configs = [p.config for d, _, _, p in drafts if d == declared]
        varying[declared] = [
            k for k in WORKLOAD_KEYS if len({json.dumps(getattr(c, k), default=str) for c in configs}) > 1
        ]
    for declared, by_values, axes, point in drafts:
        workload = " ".join([declared] + [_describe({k: getattr(point.config, k)}) for k in varying[declared]])
        if workload not in spec.workloads:
            spec.workloads.append(workload)
            if declared in spec.margins:
                spec.margins[workload] = spec.margins[declared]
        point = replace(point, margins=spec.margins.get(declared, ""))
        if point.role == "point" or point.series is not None:
            spec.points.append(replace(point, workload=workload))
            continue
        group_name = f"{workload}: {_describe(by_values)}" if by_values else workload
        group = spec.groups.setdefault(group_name, Group(group_name, workload, {}, dict(axes), tuned=bool(axes)))
        group.trials.setdefault(point.trial, point.config)  # the seed is replaced when it is rerun
        spec.points.append(replace(point, workload=workload, group=group_name))
    for i, point in enumerate(spec.points):
        trials = len(spec.groups[point.group].trials) if point.group is not None else point.trials
        spec.points[i] = replace(point, trials=trials, workload_order=spec.workloads.index(point.workload))


def check_feasible(points: list[Point], where: str) -> dict[str, float]:
    """Plan every point (batch size vs training-set size, strategy options, infeasible sizes); returns each
    point's planned work (to hand out the longest tasks first)."""
    from optlab.engine.planning import planned_work
    from optlab.engine.runner import prepare
    from optlab.problem import build_problem

    problems, work = {}, {}
    for point in points:
        c = point.config
        key = c.problem_key()
        if key not in problems:
            try:
                problems[key] = build_problem(c)
            except ConfigError as exc:
                raise ConfigError(f"{where}: point {c.label()}: {exc}") from None
        try:
            prepared = prepare(c, problems[key])
        except ConfigError as exc:
            raise ConfigError(f"{where}: point {c.label()}: {exc}") from None
        work[point.point_hash] = planned_work(prepared.plan, prepared.problem)
    return work


# ---- helpers ---------------------------------------------------------------------------------
def count_points(data: dict) -> tuple[int, int]:
    """(grid points, points at most) of a parsed file, from the lengths of its lists alone, so a
    huge grid is refused before a single point is built."""

    def length(axis):
        return len(axis) if isinstance(axis, list) else 1

    def product(table):
        n = 1
        for key, axis in table.items() if isinstance(table, dict) else ():
            if key not in TUNE_KEYS:
                n *= length(axis)
        return n

    def table_of(key: str) -> dict:
        value = data.get(key)
        return value if isinstance(value, dict) else {}

    grid, tune, rerun = table_of("grid"), table_of("tune"), table_of("rerun")
    workloads = max(1, len(table_of("workloads")))
    combos = product(grid) * workloads
    trials = product(tune)
    seeds = length(tune.get("seeds")) if "seeds" in tune else 1  # every trial on every tuning seed
    reruns = length(rerun.get("seeds")) if tune and "seeds" in rerun else 0  # the selection on each rerun seed
    series = len(table_of("series"))
    overrides = table_of("overrides")
    listed = grid.get("strategy")
    strategies = listed if isinstance(listed, list) else [None]
    total = 0
    for strategy in strategies:
        table = overrides.get(strategy) if isinstance(strategy, str) and strategy in overrides else {}
        own = table.get("tune") if isinstance(table, dict) and isinstance(table.get("tune"), dict) else None
        per_combo = (product(own) if own is not None else trials) * seeds + reruns + series
        total += (combos // max(1, len(strategies))) * per_combo
    return combos, total


def _check_size(data: dict, where: str, max_points: int) -> None:
    combos, total = count_points(data)
    if total > max_points:
        raise ConfigError(
            f"{where}: the sweep expands to {total:,} points ({combos:,} grid points with their tuning "
            f"trials, reruns and series), above the cap of {max_points:,}; check the grid, or pass "
            f"--max-points {total} to run it anyway"
        )


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def _config(values: dict, source: str) -> RunConfig:
    """RunConfig.from_dict whose every error names the file and section (some checks, like the
    strategy registry's, do not know where the value came from)."""
    try:
        return RunConfig.from_dict(values, source=source)
    except ConfigError as exc:
        message = str(exc)
        raise ConfigError(message if message.startswith(source) else f"{source}: {message}") from None


def _only(table: dict, allowed, where: str) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r} (allowed: {', '.join(allowed)})")


def _table(data: dict, key: str, where: str) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key} must be a table, got {value!r}")
    return value


def _axes(table: dict, where: str, base: dict) -> dict[str, list]:
    """Check each axis: a known key, a non-empty list, every value valid on top of the base."""
    _only(table, RUN_KEYS, where)
    for key, values in table.items():
        if key in NAME_KEYS:
            raise ConfigError(f"{where}: {key} cannot be an axis, got {values!r}")
        if not isinstance(values, list):
            raise ConfigError(f"{where}: axis {key} must be a list of values, got {values!r}")
        if not values:
            raise ConfigError(f"{where}: axis {key} is empty")
        for value in values:
            _config({**base, key: value}, source=f"{where} {key}")
        if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
            raise ConfigError(f"{where}: axis {key} repeats a value: {values!r}")
    return dict(table)


def _workloads(
    table: dict, base: dict, name: str, where: str, folder: Path | None = None
) -> tuple[dict[str, dict], dict[str, dict]]:
    """Declared workloads (name -> fixed values), or one workload named after the sweep; and the margins
    a workload declares (name -> metric -> margin). A user's workload file (`workload = "file.py:NAME"`) is
    named by its absolute path, so every worker finds it."""
    if not table:
        return {name: {}}, {}
    workloads, margins = {}, {}
    for label, values in table.items():
        here = f"{where} [workloads.{label}]"
        if not isinstance(values, dict):
            raise ConfigError(f"{here}: must be a table of workload settings, got {values!r}")
        if "margins" in values:
            values = dict(values)
            margins[label] = _margins(values.pop("margins"), f"{here} margins")
        for key in values:
            if key not in WORKLOAD_KEYS + WORKLOAD_EXTRA_KEYS:
                raise ConfigError(
                    f"{here}: {key!r} is not a workload setting (allowed: "
                    f"{', '.join(WORKLOAD_KEYS + WORKLOAD_EXTRA_KEYS)})"
                )
        if isinstance(values.get("workload"), str):
            from optlab.problem.workload_ref import absolute

            try:
                values = {**values, "workload": absolute(values["workload"], folder)}
            except ConfigError as exc:
                raise ConfigError(f"{here}: {exc}") from None
        _config({**base, **values}, source=here)
        workloads[label] = dict(values)
    return workloads, margins


def _margins(table, here: str) -> dict[str, float]:
    """Equivalence margins: metric name (optlab.analysis.verdicts.METRICS) -> a positive number."""
    from optlab.analysis.verdicts import METRICS

    if not isinstance(table, dict):
        raise ConfigError(f"{here}: must be a table of metric = margin, got {table!r}")
    for key, value in table.items():
        if key not in METRICS:
            raise ConfigError(f"{here}: unknown metric {key!r} (allowed: {', '.join(METRICS)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigError(f"{here}: {key} must be a positive number, got {value!r}")
    return {k: float(v) for k, v in table.items()}


def _timed_alone(table: dict, seeds: list[int], where: str) -> int | None:
    if "timed_alone" not in table:
        return None
    value = table["timed_alone"]
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= len(seeds):
        raise ConfigError(
            f"{where} [rerun]: timed_alone must be an integer from 1 to the number of rerun seeds "
            f"({len(seeds)}), got {value!r}"
        )
    return value


def _seed_list(value, here: str, key: str = "seeds") -> list[int]:
    if (
        not isinstance(value, list)
        or not value
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value)
    ):
        raise ConfigError(f"{here}: {key} must be a non-empty list of non-negative integers, got {value!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{here}: {key} repeats a seed: {value!r}")
    return list(value)


def _tune_settings(table: dict, grid: dict, tune_axes: dict, where: str):
    here = f"{where} [tune]"
    if not table:
        return None, [], []
    objective = table.get("objective")
    if objective not in OBJECTIVES:
        hint = (
            " (tuning never reads a test metric: use val_loss or val_accuracy)"
            if isinstance(objective, str) and objective.startswith("test")
            else ""
        )
        raise ConfigError(f"{here}: objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}{hint}")
    by = table.get("by", [k for k in grid if k != "seed"])
    if not isinstance(by, list) or any(not isinstance(k, str) for k in by):
        raise ConfigError(f"{here}: by must be a list of key names, got {by!r}")
    for key in by:
        if key not in RUN_KEYS:
            raise ConfigError(f"{here}: by names unknown key {key!r}")
        if key in tune_axes:
            raise ConfigError(f"{here}: by cannot group on the tuned key {key!r}")
        if key == "seed":
            raise ConfigError(f"{here}: by cannot group on seed (trials are averaged over seeds)")
    if "seed" in grid:
        raise ConfigError(
            f"{where} [grid]: seed cannot be an axis of a tuned sweep, got {grid['seed']!r}: "
            f"tuning seeds go in [tune] seeds, reported seeds in [rerun] seeds"
        )
    seeds = _seed_list(table.get("seeds", [0]), here)
    return objective, by, seeds


def _rerun_settings(table: dict, objective: str | None, grid: dict, tune_seeds: list[int], where: str) -> list[int]:
    here = f"{where} [rerun]"
    if objective is None:
        if table:
            raise ConfigError(f"{here}: reruns need a [tune] section (an untuned sweep reports its own points)")
        return []
    _only(table, RERUN_KEYS, here)
    if "seeds" not in table:
        raise ConfigError(
            f"{here}: a tuned sweep reports fresh-seed reruns of each selected configuration: "
            f"give seeds = [...] distinct from the tuning seeds {tune_seeds}"
        )
    seeds = _seed_list(table["seeds"], here)
    shared = sorted(set(seeds) & set(tune_seeds))
    if shared:
        raise ConfigError(f"{here}: seeds {shared} are also tuning seeds; reported runs need fresh seeds")
    return seeds


def _product(axes: dict[str, list]):
    keys = list(axes)
    for values in itertools.product(*(axes[k] for k in keys)):
        yield dict(zip(keys, values))


def _show(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _describe(values: dict) -> str:
    return " ".join(f"{k}={references.display(v) if k == 'strategy' else _show(v)}" for k, v in values.items())


def absolute_references(data: dict, folder: Path) -> dict:
    """The parsed file with every strategy given as `relative/file.py:Class` made absolute against the sweep
    file's folder (once, here: workers load the file by that path); the file's text keeps what the user wrote."""

    def fix(value):
        if isinstance(value, str):
            return references.absolute(value, folder)
        return [fix(v) for v in value] if isinstance(value, list) else value

    def fix_table(table):
        return {k: fix(v) if k == "strategy" else v for k, v in table.items()} if isinstance(table, dict) else table

    data = dict(data)
    for key in ("base", "grid", "tune"):
        data[key] = fix_table(data[key]) if key in data else data.get(key)
        if data[key] is None:
            del data[key]
    for key in ("series", "overrides"):
        if isinstance(data.get(key), dict):
            data[key] = {
                (fix(name) if key == "overrides" and "=" not in name else name): fix_table(table)
                for name, table in data[key].items()
            }
    return data


def _check_labels(points: list[Point], where: str) -> None:
    """Runs show a file reference by its file name and class: two different files must not look alike."""
    seen: dict[str, str] = {}
    for point in points:
        strategy = point.config.strategy
        label = references.display(strategy)
        if seen.setdefault(label, strategy) != strategy:
            raise ConfigError(
                f"{where}: strategies {seen[label]!r} and {strategy!r} would both be shown as "
                f"{label!r}; rename one file or class"
            )
