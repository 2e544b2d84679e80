"""Experiment files: a TOML sweep description, validated as a whole, expanded into points.

File layout (every section but `name` optional)::

    name = "batch_size"              # the MLflow experiment and the sweep's name
    description = "..."
    [base]                           # RunConfig keys with fixed values (the budget, target, ...)
    [grid]                           # RunConfig keys -> non-empty lists; the cartesian product
    [tune]                           # learning-rate tuning as data (see tuning.py)
    lr = [0.01, 0.1]                 #   tuning axes: RunConfig keys -> non-empty lists
    objective = "steps_to_target"    #   what selects the best trial of each group
    by = ["batch_size"]              #   group keys (default: every grid axis except seed)
    [overrides.STRATEGY]             # fixed values for points of that strategy ...
    tune = { lr = [0.001, 0.01] }    #   ... and, optionally, its own tuning axes
    [series.NAME]                    # an extra series over the same grid with fixed values
    lr = 0.1                         #   (no tuning); its runs are tagged optlab.series=NAME

Loading reads and checks everything before anything runs: an unknown key, a wrong type or an
empty axis raises a one-line ConfigError naming the file, the key and the value. A file that
would expand to more than `max_points` points (default MAX_POINTS) is refused before any point is
built, with the count and the override (`optlab sweep --max-points N`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

from optlab.config import RunConfig
from optlab.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, packaged for 3.10
    import tomli as tomllib

TOP_KEYS = ("name", "description", "base", "grid", "tune", "overrides", "series")
RUN_KEYS = tuple(f.name for f in fields(RunConfig))
# objective -> True when larger is better; metrics are the final values of the run
OBJECTIVES = {"steps_to_target": False, "train_loss": False, "test_loss": False,
              "train_accuracy": True, "test_accuracy": True}
TUNE_KEYS = ("objective", "by")
MAX_POINTS = 10_000  # points a sweep file may expand to unless the caller raises the cap


@dataclass(frozen=True)
class Point:
    """One run of a sweep: its config and the tags that place it in the sweep."""
    config: RunConfig
    role: str                    # "point" or "tuning"
    group: str | None = None     # tuning group key, e.g. "batch_size=32"
    trial: str | None = None     # the tuned values of a tuning trial, e.g. "lr=0.1"
    series: str | None = None
    axes: str = ""               # the grid values that made it, for listings (not part of its identity)

    @property
    def point_hash(self) -> str:
        """Stable identity for resume: the config hash plus the series (a fixed-lr series run
        may share its config with a tuning trial and is still a different point)."""
        text = self.config.config_hash() + "|" + (self.series or "")
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def tags(self, sweep: str) -> dict[str, str]:
        tags = {"optlab.sweep": sweep, "optlab.point_hash": self.point_hash, "optlab.role": self.role}
        if self.group is not None:
            tags["optlab.group"] = self.group
            tags["optlab.trial"] = self.trial
        if self.series is not None:
            tags["optlab.series"] = self.series
        return tags


@dataclass
class SweepSpec:
    name: str
    path: Path
    text: str
    description: str = ""
    points: list[Point] = field(default_factory=list)
    objective: str | None = None      # None when the sweep tunes nothing
    grid_size: int = 0                # grid points before tuning axes and series

    @property
    def spec_hash(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]


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
        raise ConfigError(f"{where}: not a UTF-8 text file (byte {exc.start}: {raw[exc.start:exc.start + 1]!r}); "
                          f"a sweep file is TOML text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: invalid TOML: {_first_line(str(exc))}") from None
    except RecursionError:
        raise ConfigError(f"{where}: invalid TOML: nested too deeply") from None
    spec = parse(data, where, max_points)
    spec.path, spec.text = path, text
    if check_plans:
        check_feasible(spec.points, where)
    return spec


def parse(data: dict, where: str = "sweep", max_points: int = MAX_POINTS) -> SweepSpec:
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
    for key in ("experiment", "run_name"):
        if key in base:
            raise ConfigError(f"{where} [base]: {key} is set by the sweep (its name), got {base[key]!r}")
    base_config = _config(base, source=f"{where} [base]")

    grid = _axes(_table(data, "grid", where), f"{where} [grid]", base)
    tune_table = _table(data, "tune", where)
    tune_axes = _axes({k: v for k, v in tune_table.items() if k not in TUNE_KEYS}, f"{where} [tune]", base)
    objective, by = _tune_settings(tune_table, grid, tune_axes, where)

    overrides = _table(data, "overrides", where)
    strategies = grid.get("strategy", [base_config.strategy])
    override_fixed, override_tune = {}, {}
    for strategy, table in overrides.items():
        here = f"{where} [overrides.{strategy}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{here}: must be a table, got {table!r}")
        if strategy not in strategies:
            raise ConfigError(f"{here}: strategy {strategy!r} is not in the sweep ({', '.join(strategies)})")
        _only(table, RUN_KEYS + ("tune",), here)
        fixed = {k: v for k, v in table.items() if k != "tune"}
        _config({**base, "strategy": strategy, **fixed}, source=here)
        override_fixed[strategy] = fixed
        if "tune" in table:
            if objective is None:
                raise ConfigError(f"{here}: tune needs a [tune] section with an objective")
            if not isinstance(table["tune"], dict):
                raise ConfigError(f"{here}: tune must be a table of axes, got {table['tune']!r}")
            override_tune[strategy] = _axes(table["tune"], f"{here} tune", {**base, "strategy": strategy})

    if objective is not None and not tune_axes and any(s not in override_tune for s in strategies):
        raise ConfigError(f"{where} [tune]: no tuning axis given (e.g. lr = [0.01, 0.1])")

    series = _table(data, "series", where)
    for label, table in series.items():
        here = f"{where} [series.{label}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{here}: must be a table of fixed values, got {table!r}")
        _only(table, RUN_KEYS, here)
        _config({**base, **table}, source=here)

    spec = SweepSpec(name=name, path=Path(where), text="", description=description, objective=objective)
    combos = list(_product(grid))
    spec.grid_size = len(combos)
    seen: set[str] = set()

    def add(point: Point):
        if point.point_hash not in seen:  # two combinations may resolve to one config: run it once
            seen.add(point.point_hash)
            spec.points.append(point)

    for i, combo in enumerate(combos):
        strategy = combo.get("strategy", base_config.strategy)
        values = {**base, **combo, **override_fixed.get(strategy, {}), "experiment": name}
        axes = override_tune.get(strategy, tune_axes)
        source = f"{where}: point {i} ({_describe(combo)})"
        if axes:
            group = _describe({k: combo.get(k, values.get(k)) for k in by}) or "all"
            for trial in _product(axes):
                add(Point(_config({**values, **trial}, source=source), "tuning", group=group,
                          trial=_describe(trial), axes=_describe({**combo, **trial})))
        else:
            add(Point(_config(values, source=source), "point", axes=_describe(combo)))
        for label, fixed in series.items():
            add(Point(_config({**values, **fixed}, source=f"{where} [series.{label}]"), "point",
                      series=label, axes=_describe({**combo, **fixed})))
    return spec


def check_feasible(points: list[Point], where: str) -> None:
    """Plan every point (batch size vs training-set size, strategy options, infeasible sizes)."""
    from optlab.engine.runner import prepare
    from optlab.problem import build_problem

    problems = {}
    for point in points:
        c = point.config
        key = (c.dataset, c.label_noise, c.variant, c.standardize, c.noise_seed, c.train_size, c.hidden,
               c.activation, c.init, c.cost, c.dtype, c.device)
        if key not in problems:
            problems[key] = build_problem(c)
        try:
            prepare(c, problems[key])
        except ConfigError as exc:
            raise ConfigError(f"{where}: point {c.label()}: {exc}") from None


# ---- helpers ---------------------------------------------------------------------------------
def count_points(data: dict) -> tuple[int, int]:
    """(grid points, points at most) of a parsed file, from the lengths of its lists alone, so a
    huge grid is refused before a single point is built."""
    def length(axis):
        return len(axis) if isinstance(axis, list) else 1

    def product(table):
        n = 1
        for key, axis in (table.items() if isinstance(table, dict) else ()):
            if key not in TUNE_KEYS:
                n *= length(axis)
        return n

    grid = data.get("grid") if isinstance(data.get("grid"), dict) else {}
    combos = product(grid)
    trials = product(data.get("tune", {}))
    series = len(data["series"]) if isinstance(data.get("series"), dict) else 0
    overrides = data.get("overrides") if isinstance(data.get("overrides"), dict) else {}
    strategies = grid.get("strategy") if isinstance(grid.get("strategy"), list) else [None]
    total = 0
    for strategy in strategies:
        table = overrides.get(strategy) if isinstance(strategy, str) and strategy in overrides else {}
        own = table.get("tune") if isinstance(table, dict) and isinstance(table.get("tune"), dict) else None
        total += (combos // max(1, len(strategies))) * ((product(own) if own is not None else trials) + series)
    return combos, total


def _check_size(data: dict, where: str, max_points: int) -> None:
    combos, total = count_points(data)
    if total > max_points:
        raise ConfigError(f"{where}: the sweep expands to {total:,} points ({combos:,} grid points with their tuning "
                          f"trials and series), above the cap of {max_points:,}; check the grid, or pass "
                          f"--max-points {total} to run it anyway")


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
        if key in ("experiment", "run_name"):
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


def _tune_settings(table: dict, grid: dict, tune_axes: dict, where: str):
    here = f"{where} [tune]"
    if not table:
        return None, []
    objective = table.get("objective")
    if objective not in OBJECTIVES:
        raise ConfigError(f"{here}: objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
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
    return objective, by


def _product(axes: dict[str, list]):
    keys = list(axes)
    for values in itertools.product(*(axes[k] for k in keys)):
        yield dict(zip(keys, values))


def _describe(values: dict) -> str:
    def show(v):
        return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
    return " ".join(f"{k}={show(v)}" for k, v in values.items())
