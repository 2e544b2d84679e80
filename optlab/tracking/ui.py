"""What the MLflow UI (3.17) shows of optlab's experiments, decided here and written as data (the formats
themselves are in ui_state.py).

- `mlflow.experimentKind = custom_model_development` marks an experiment as model training (the
  kind the UI's experiment-kind selector sets); the UI's *workflow* switch (GenAI / Model training,
  a per-browser setting) is defaulted by the `optlab` server app (`optlab ui`, ui_server.py).
- `mlflow.note.content` on an experiment is its description (the experiments list shows it), on a
  run the run's description.
- Saved views (the runs page's "Views" menu; `?viewStateShareKey=<id>` opens one), per experiment:
  *optlab: reruns* (the reported runs of every workload with their workload and strategy as columns,
  also the page the experiment opens on: ui_server.py), and per workload *optlab: <workload>* (that
  workload's reported runs grouped by configuration, MLflow's run grouping: one line per strategy (and
  grid point) with its min-max band over seeds; the groups are named by the runs' `optlab.config` tag,
  the strategy and what else tells configurations apart, and listed in the order of their
  `optlab.config_order` tag (numeric grid values in numeric order), both set by save_views) and
  *optlab: <workload> · configurations* (its seed-group runs, one per
  compared configuration, with the mean and 95 % interval of the final metrics). Their charts draw the
  learning curves against work and wall time, log-scaled where the report's are; the per-workload views
  lay them one per row (CHARTS_PER_ROW): the UI's legend box under a chart has a fixed height
  (ui_state.py), and a workload view's nine strategies then fit it in a window about 1,400 px wide or
  more (the configurations view's long run names, about two per legend line, still scroll). Every view's run-name
  column is made wide enough for the longest run and group name it lists (name_width), not the UI's
  190 pixels that cut `minibatch lr=0.03 B=3500 [fixed_lr] rerun seed=109` before what tells runs apart.
- The UI loads a view's first UI_PAGE runs only, and its search has no OR nor IN to pick seeds: a
  workload whose reported runs do not fit shows a sample that does, the same number of runs of every
  configuration (those timed alone first, then the lowest seeds), marked by the run tag
  `optlab.in_view` (save_views moves it as the runs change); the view's name says how many per
  configuration.
- `mlflow.runColor` on a run is its colour in the UI's charts: the strategy's colour (palette.py),
  the same as in the report. A group of runs (the workload views' run grouping) takes its colour from
  the browser's colour map instead (ui_state.py); `optlab.groupColors` on the experiment lists each
  group's colour (its strategy's, or where a strategy has several configurations one colour each along
  an ordered scale: palette.configuration_colors) and the `optlab` server app adds them to that map
  (ui_server.py).
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from urllib.parse import urlencode

from optlab import palette
from optlab.analysis.axes import spans_decades
from optlab.tracking import ui_state
from optlab.tracking.ui_state import VIEW_TAG_PREFIX, column

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
NOTE_TAG = "mlflow.note.content"
RUN_COLOR_TAG = "mlflow.runColor"
GROUP_COLORS_TAG = "optlab.groupColors"
CONFIG_TAG = "optlab.config"  # a reported run's configuration in short: what the workload view groups by
ORDER_TAG = "optlab.config_order"  # its configuration's place in the workload (zero-padded): the view's sort
IN_VIEW_TAG = "optlab.in_view"  # 'true' on the runs a workload view samples when not all fit the UI's page
MAX_TAG_VALUE = 20000  # MLflow's limit on an experiment tag's value
DEFAULT_VIEW_ID = "optlab-reruns"
DESCRIBED_BY = (EXPERIMENT_KIND_TAG, NOTE_TAG, VIEW_TAG_PREFIX + DEFAULT_VIEW_ID)  # the tags is_described reads
DEFAULT_VIEW_NAME = "optlab: reruns"
WORKLOAD_VIEW_NAME = "optlab: {workload}"
SAMPLED_VIEW_NAME = WORKLOAD_VIEW_NAME + " · {seeds} per configuration"
CLIPPED_VIEW_NAME = SAMPLED_VIEW_NAME + ", the first {page} of {configurations} configurations"
GROUPS_VIEW_NAME = "optlab: {workload} · configurations"
LEGACY_VIEW_IDS = ("optlab-compare", "optlab-configurations")  # one view over every workload: replaced
LAYOUT = 2  # the version of the views below; optlab rewrites its own views of an older layout
MARKER_KEY = "optlabLayout"
WORKFLOW_PARAM = ("workflowType", "machine_learning")

# what a run's row shows (in this order) and what its charts plot
COLUMN_METRICS = ("val_accuracy", "test_accuracy", "train_loss", "steps_to_target", "gradient_equivalents", "wall_time")
RUN_TAGS = ("optlab.workload", "optlab.strategy")
GROUP_METRICS = ("val_accuracy", "test_accuracy")
GROUP_PARTS = ("mean", "ci_low", "ci_high")
GROUP_MEANS = ("train_loss", "gradient_equivalents", "wall_time")
GROUP_COLUMN_TAGS = ("optlab.strategy", "optlab.seeds", "optlab.finished")
CURVES = ("val_accuracy", "train_loss", "test_accuracy", "val_loss")
LOG_SCALE = ("train_loss", "val_loss", "test_loss", "batch_loss", "grad_norm")
PER_STEP = ("batch_loss", "grad_norm", "lr")
COUNTERS = ("epoch", "samples_seen", "evaluations", "gradient_evaluations", "gradient_equivalents", "wall_time")
WORK_AXES = ("gradient_equivalents", "wall_time")
NOT_AXES = ("seed", "run_name", "experiment")  # params that never tell configurations apart
PIXELS_PER_CHARACTER = 7.5
# the run-name column: what its cells show besides the name (a run's indent under its group and colour dot;
# a group's expander, colour dot, "Group: " and run count) and the widest it is made (names longer than
# that are cut, as the UI cuts them, rather than pushing every other column off the screen)
RUN_NAME_PADDING = 60
GROUP_NAME_PADDING = 110
GROUP_NAME_PREFIX = "Group: "
NAME_WIDTH_MAX = 640
UI_PAGE = 100  # the runs the UI loads before its "Load more": a view's groups beyond them are not drawn
# charts per row in the views that draw one line per configuration: a card as wide as the charts pane, whose
# legend (two lines of entries under the chart, a box of fixed height that scrolls) then holds nine strategy names
CHARTS_PER_ROW = 1
TIMING_TAG = "optlab.timing"


def run_tags(strategy: str) -> dict[str, str]:
    """Tags every optlab run carries for the UI: its strategy's colour."""
    return {RUN_COLOR_TAG: palette.color(strategy)}


def is_described(tags: dict[str, str], description: str | None = None) -> bool:
    """The experiment's tags already say what describe_experiment would write (it reads DESCRIBED_BY)."""
    kind, note, default_view = DESCRIBED_BY
    return (
        tags.get(kind) == MODEL_TRAINING and (not description or tags.get(note) == description) and default_view in tags
    )


def describe_experiment(client, experiment_id: str, description: str | None = None) -> None:
    """Mark the experiment as model training, set its description (when given) and add optlab's default
    runs view (save_views adds the per-workload ones once the experiment has runs)."""
    experiment = client.get_experiment(experiment_id)
    tags = experiment.tags or {}
    if tags.get(EXPERIMENT_KIND_TAG) != MODEL_TRAINING:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
    if description and tags.get(NOTE_TAG) != description:
        client.set_experiment_tag(experiment_id, NOTE_TAG, description)
    if VIEW_TAG_PREFIX + DEFAULT_VIEW_ID not in tags:
        client.set_experiment_tag(
            experiment_id, VIEW_TAG_PREFIX + DEFAULT_VIEW_ID, saved_view(DEFAULT_VIEW_NAME, default_state(Workloads()))
        )


# ---- what the views show ----------------------------------------------------------------------------
class Workloads:
    """What the views need to know of an experiment's reported runs: per workload, the role its reported
    runs carry (`rerun`: the selected trials' fresh-seed reruns; `point`: an untuned sweep's runs), the
    params that tell its configurations apart, whether it has series, and which work axes span decades."""

    def __init__(self, runs=(), histories=None):
        self.role = {}
        self.axes = {}
        self.series = {}
        self.log_x = {}
        self.group_colors: dict[str, str] = {}  # the UI's group id -> its colour
        self.configurations: dict[str, int] = {}
        self.per_configuration: dict[str, int] = {}  # workload -> runs per configuration its view samples
        self.tag_changes: dict[str, dict[str, str | None]] = {}  # run id -> tags to set (None: to delete)
        # the names each view lists, which its run-name column must fit
        self.reported_names: list[str] = []  # every reported run: the default view
        self.run_names: dict[str, list[str]] = {}  # workload -> the runs its view lists
        self.configuration_names: dict[str, list[str]] = {}  # workload -> its view's groups
        self.group_run_names: dict[str, list[str]] = defaultdict(list)  # workload -> its seed-group runs
        reported = defaultdict(list)
        runs = list(runs)
        for run in runs:
            tags = run.data.tags
            workload, role = tags.get("optlab.workload"), tags.get("optlab.role")
            if workload and role == "group":
                self.group_run_names[workload].append(run.info.run_name or "")
            if not workload or role not in ("rerun", "point"):
                continue
            if role == "rerun" and tags.get("optlab.selected") != "true":
                continue
            if self.role.get(workload) == "rerun" and role == "point":
                continue  # a tuned workload's views show its reruns
            if role == "rerun" and self.role.get(workload) == "point":
                reported[workload] = []
            self.role[workload] = role
            reported[workload].append(run)
        for workload, members in reported.items():
            self.axes[workload] = configuration_axes(members)
            self.series[workload] = any(r.data.tags.get("optlab.series") for r in members)
            found = (histories or {}).get(workload, {})
            self.log_x[workload] = {x: spans_decades(found.get(x, [])) for x in WORK_AXES}
        wanted = {}
        for workload, members in reported.items():
            wanted.update(self.mark(workload, members))
            self.reported_names += [r.info.run_name or "" for r in members]
            self.run_names[workload] = [
                r.info.run_name or ""
                for r in members
                if workload not in self.per_configuration or wanted[r.info.run_id].get(IN_VIEW_TAG) == "true"
            ]
        for run in runs:
            tags, want = run.data.tags, wanted.get(run.info.run_id, {})
            changes = {key: value for key, value in want.items() if tags.get(key) != value}
            if IN_VIEW_TAG in tags and IN_VIEW_TAG not in want:
                changes[IN_VIEW_TAG] = None
            if changes:
                self.tag_changes[run.info.run_id] = changes

    def mark(self, workload: str, members: list) -> dict[str, dict[str, str]]:
        """The tags the workload's reported runs should carry (run id -> tags): their configuration's name
        and place, and, when they do not all fit the UI's first page, the sample its view shows. Sets the
        groups' colours."""
        runs_of = defaultdict(list)
        for run in members:
            runs_of[self.configuration(run)].append(run)
        ordered = sorted(runs_of, key=lambda label: self.configuration_order(runs_of[label][0]))
        self.configurations[workload] = len(ordered)
        self.configuration_names[workload] = ordered
        colors = palette.configuration_colors(
            {label: runs_of[label][0].data.tags.get("optlab.strategy", "") for label in ordered}
        )
        sampled = None
        if len(members) > UI_PAGE:
            each = max(1, UI_PAGE // len(ordered))
            self.per_configuration[workload] = each
            sampled = {r.info.run_id for label in ordered for r in sorted(runs_of[label], key=sample_order)[:each]}
        width = len(str(len(ordered)))
        wanted = {}
        for place, label in enumerate(ordered):
            self.group_colors[ui_state.group_id([("tag", CONFIG_TAG, label)])] = colors[label]
            for run in runs_of[label]:
                wanted[run.info.run_id] = {CONFIG_TAG: label, ORDER_TAG: f"{place:0{width}d}"}
                if sampled is not None and run.info.run_id in sampled:
                    wanted[run.info.run_id][IN_VIEW_TAG] = "true"
        return wanted

    def configuration_order(self, run) -> tuple:
        """Sort key of the run's configuration: the strategy (the palette's order), the series, then the
        grid values, numbers as numbers (batch_size=2 before 16 before 128)."""
        tags, workload = run.data.tags, run.data.tags.get("optlab.workload")
        values = tuple(numeric_order(run.data.params.get(k, "")) for k in self.axes.get(workload, ()))
        return (palette.strategy_order(tags.get("optlab.strategy", "")), tags.get("optlab.series", ""), values)

    def configuration(self, run) -> str:
        """The run's configuration as the UI names its group (the legend entry): the strategy first, then
        its series and grid-axis values, e.g. `minibatch fixed_lr batch_size=512`."""
        tags, workload = run.data.tags, run.data.tags.get("optlab.workload")
        parts = [tags.get("optlab.strategy", "?")]
        if self.series.get(workload) and tags.get("optlab.series"):
            parts.append(tags["optlab.series"])
        parts += [f"{k}={run.data.params.get(k, '-')}" for k in self.axes.get(workload, ())]
        return " ".join(parts)

    @property
    def names(self) -> list[str]:
        return sorted(self.role)

    @property
    def any_role(self) -> str | None:
        roles = set(self.role.values())
        return "rerun" if "rerun" in roles else ("point" if roles else None)


def numeric_order(value: str) -> tuple:
    """Numbers first, as numbers; other values after them, as text."""
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def sample_order(run) -> tuple:
    """Which of a configuration's runs a sampled view shows first: those timed alone, then the lowest seeds."""
    return (
        run.data.tags.get(TIMING_TAG) != "alone",
        numeric_order(run.data.params.get("seed", "")),
        run.info.run_id,
    )


def configuration_axes(runs) -> tuple[str, ...]:
    """The params besides the strategy that tell these runs' configurations apart (a sweep's grid axes):
    those that vary, without the seed, the tuned values (one per configuration already) and params that
    follow from the axes kept before them (e.g. an evaluation interval set per batch size)."""
    tuned = {part.split("=", 1)[0] for r in runs for part in r.data.tags.get("optlab.trial", "").split() if "=" in part}
    values = defaultdict(set)
    for run in runs:
        for key, value in run.data.params.items():
            values[key].add(value)
    candidates = sorted(
        (k for k, v in values.items() if len(v) > 1 and k not in NOT_AXES and k not in tuned and k != "strategy"),
        key=lambda k: (-len(values[k]), k),
    )
    kept: list[str] = []
    for key in candidates:
        seen: dict[tuple, str | None] = {}
        determined = True
        for run in runs:
            identity = (
                run.data.tags.get("optlab.strategy"),
                run.data.tags.get("optlab.series"),
                *(run.data.params.get(k) for k in kept),
            )
            if seen.setdefault(identity, run.data.params.get(key)) != run.data.params.get(key):
                determined = False
                break
        if not determined:
            kept.append(key)
    return tuple(kept)


def reported_filter(role: str | None, workload: str | None = None) -> str:
    clauses = [f"tags.`optlab.workload` = {quote(workload)}"] if workload else []
    if role == "rerun":
        clauses += ["tags.`optlab.role` = 'rerun'", "tags.`optlab.selected` = 'true'"]
    elif role == "point":
        clauses.append("tags.`optlab.role` = 'point'")
    return " AND ".join(clauses)


def quote(value: str) -> str:
    return '"' + value + '"' if "'" in value else "'" + value + "'"


def name_width(run_names=(), group_names=()) -> int:
    """The run-name column wide enough for the longest run name and group name it lists, from the UI's own
    width up to NAME_WIDTH_MAX."""
    needed = [RUN_NAME_PADDING + PIXELS_PER_CHARACTER * len(n) for n in run_names]
    needed += [GROUP_NAME_PADDING + PIXELS_PER_CHARACTER * len(GROUP_NAME_PREFIX + n) for n in group_names]
    return int(min(NAME_WIDTH_MAX, max([ui_state.RUN_NAME_WIDTH, *needed])))


def header_width(column_id: str) -> int:
    """A column wide enough to show its whole header (the UI cuts headers at its default width)."""
    key = column_id.split("`", 1)[1].rstrip("`") if "`" in column_id else column_id
    return int(max(90, 30 + PIXELS_PER_CHARACTER * len(key)))


def charts(log_x: dict[str, bool], per_row: int | None = None) -> tuple[list[dict], list[dict]]:
    """The chart cards and their sections (`per_row` cards per row; None: the UI's default): learning
    curves against work and wall time shown first, the rest (against steps, per step, the work counters)
    in collapsed sections."""
    sections = [
        ui_state.chart_section(uuid, name, shown, per_row)
        for uuid, name, shown in (
            ("work", "Learning curves against work (gradient equivalents)", True),
            ("time", "Learning curves against wall time (training only)", True),
            ("steps", "Learning curves against steps", False),
            ("per-step", "Per step: batch loss, gradient norm, learning rate", False),
            ("counters", "Work counters (straight lines by construction)", False),
        )
    ]
    cards = []
    for metric in CURVES[:2]:
        for section, x in (("work", "gradient_equivalents"), ("time", "wall_time")):
            cards.append(
                ui_state.line_chart(
                    f"optlab-{section}-{metric}",
                    section,
                    metric,
                    x,
                    y_log=metric in LOG_SCALE,
                    x_log=log_x.get(x, False),
                )
            )
    cards += [ui_state.line_chart(f"optlab-steps-{m}", "steps", m, y_log=m in LOG_SCALE) for m in CURVES]
    cards += [ui_state.line_chart(f"optlab-step-{m}", "per-step", m, y_log=m in LOG_SCALE) for m in PER_STEP]
    cards += [ui_state.line_chart(f"optlab-counter-{m}", "counters", m) for m in COUNTERS]
    return cards, sections


def _state(
    search_filter: str,
    order_by: str,
    ascending: bool,
    columns: list[str],
    log_x: dict[str, bool],
    names_width: int,
    grouping: dict | None = None,
    per_row: int | None = None,
    drawn: bool = True,
) -> dict:
    cards, sections = charts(log_x, per_row)
    widths = {ui_state.RUN_NAME_COLUMN: names_width, **{c: header_width(c) for c in columns}}
    return ui_state.runs_page_state(
        search_filter, order_by, ascending, columns, widths, cards, sections, grouping, drawn
    )


def default_state(workloads: Workloads) -> dict:
    """The experiment's runs page: every reported run (every run before any is reported), one row each
    with its workload and strategy and final metrics, sorted by workload. Its charts draw no run until the user
    ticks some: each workload's own view draws the curves, one line per configuration with its band."""
    columns = (
        [column("tags", t) for t in RUN_TAGS]
        + [column("metrics", m) for m in COLUMN_METRICS]
        + [column("params", p) for p in ("lr", "batch_size", "seed")]
    )
    log_x = {x: any(w.get(x, False) for w in workloads.log_x.values()) for x in WORK_AXES}
    return _state(
        reported_filter(workloads.any_role),
        column("tags", "optlab.workload"),
        True,
        columns,
        log_x,
        name_width(workloads.reported_names),
        drawn=False,  # a line per run, of every workload: the workload views draw one per configuration
    )


def workload_state(workloads: Workloads, workload: str) -> dict:
    """One workload's reported runs, grouped by configuration (strategy, series, grid axes) in their order:
    each chart draws one line per configuration, the mean over seeds with its min-max band. When its runs
    would not fit the UI's first page (some configurations then not drawn), the sample save_views marks
    (as many runs of each configuration). The table shows what tells the runs apart, no metric: the UI
    prints a run's metric, and a group's average, with every digit stored; the configurations view has
    them (mean and interval) to 4 significant digits."""
    axes = workloads.axes.get(workload, ())
    series = ("optlab.series",) if workloads.series.get(workload) else ()
    columns = (
        [column("tags", t) for t in ("optlab.strategy", *series)]
        + [column("params", p) for p in axes]
        + [column("params", p) for p in ("lr", "seed") if p not in axes]
    )
    grouping = ui_state.group_by((CONFIG_TAG,))
    search = reported_filter(workloads.role.get(workload), workload)
    if workload in workloads.per_configuration:
        search += f" AND tags.`{IN_VIEW_TAG}` = 'true'"
    return _state(
        search,
        column("tags", ORDER_TAG),
        True,
        columns,
        workloads.log_x.get(workload, {}),
        name_width(workloads.run_names.get(workload, ()), workloads.configuration_names.get(workload, ())),
        grouping,
        CHARTS_PER_ROW,
    )


def groups_state(workloads: Workloads, workload: str) -> dict:
    """One workload's seed-group runs: per configuration the mean and 95 % interval (mean, CI low, CI high)
    of the final accuracies over seeds, then the means of loss, work and time."""
    axes = workloads.axes.get(workload, ())
    columns = (
        [column("tags", "optlab.strategy")]
        + [column("params", p) for p in axes]
        + [column("metrics", f"final/{m}/{part}") for m in GROUP_METRICS for part in GROUP_PARTS]
        + [column("metrics", f"final/{m}/mean") for m in GROUP_MEANS]
        + [column("params", "lr")]
        + [column("tags", t) for t in GROUP_COLUMN_TAGS[1:]]
    )
    search = f"tags.`optlab.workload` = {quote(workload)} AND tags.`optlab.role` = 'group'"
    return _state(
        search,
        column("metrics", "final/val_accuracy/mean"),
        False,
        columns,
        workloads.log_x.get(workload, {}),
        name_width(workloads.group_run_names.get(workload, ())),
        per_row=CHARTS_PER_ROW,
    )


def workload_view_name(workloads: Workloads, workload: str) -> str:
    """The workload view's name: says when it shows a sample of the runs, and when even one run per
    configuration is more than the UI draws (it draws the first UI_PAGE configurations in order)."""
    each = workloads.per_configuration.get(workload)
    if each is None:
        return WORKLOAD_VIEW_NAME.format(workload=workload)
    seeds = f"{each} seed" + ("s" if each > 1 else "")
    configurations = workloads.configurations[workload]
    if configurations > UI_PAGE:
        return CLIPPED_VIEW_NAME.format(workload=workload, seeds=seeds, page=UI_PAGE, configurations=configurations)
    return SAMPLED_VIEW_NAME.format(workload=workload, seeds=seeds)


def slug(workload: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", workload).strip("-") or "workload"


def views(workloads: Workloads) -> dict[str, tuple[str, dict]]:
    """view id -> (name, runs page state) of every optlab view of an experiment with these workloads."""
    found = {DEFAULT_VIEW_ID: (DEFAULT_VIEW_NAME, default_state(workloads))}
    for workload in workloads.names:
        name = workload_view_name(workloads, workload)
        found[f"optlab-{slug(workload)}"] = (name, workload_state(workloads, workload))
        found[f"optlab-{slug(workload)}-configurations"] = (
            GROUPS_VIEW_NAME.format(workload=workload),
            groups_state(workloads, workload),
        )
    return found


def saved_view(name: str, state: dict, now_ms: int | None = None) -> str:
    """A saved-view tag value marked as optlab's (so a later save_views may replace it)."""
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    return ui_state.envelope(name, state, now_ms, {MARKER_KEY: LAYOUT})


def view_url(base_url: str, experiment_id: str, view_id: str = DEFAULT_VIEW_ID) -> str:
    """The experiment's runs page in the UI, opened on one of optlab's saved views in model-training mode."""
    query = urlencode({"viewStateShareKey": view_id, WORKFLOW_PARAM[0]: WORKFLOW_PARAM[1]})
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


def read_view(value: str) -> dict:
    """The runs page state inside a saved-view tag value."""
    return ui_state.read_state(value)
