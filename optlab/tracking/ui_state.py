"""The MLflow UI's own storage formats (MLflow 3.17), in one place: a saved view of an experiment's runs
page and the runs page's per-browser state. Both are MLflow-internal (read from the UI's JavaScript, not
a public API), so they are pinned: tests/data/mlflow_ui_state_sample.json holds the shape this module
writes, and tests/test_ui_views.py checks it against the installed MLflow's UI bundle (that test says how
to refresh the sample when MLflow changes).

- A saved view is an experiment tag `mlflow.sharedViewState.<id>` whose value is a JSON envelope
  {"name", "createdAt", "updatedAt", "state"}; `state` is the runs page state (search facets + UI state)
  as JSON, or "deflate;" + base64(zlib(JSON)) as the UI itself compresses it.
- The runs page a browser opens by default (clicking the experiment) is that same state under the
  localStorage key `MLflowLocalStorage-1.1-ExperimentPage-["<experiment id>"]-ReactComponentState`.
- Columns are named `<kind>.\\`<key>\\`` (kind: attributes, metrics, params, tags) in selectedColumns,
  columnOrder, columnWidths and orderByKey.
- The run-name column (RUN_NAME_COLUMN) also shows a group's name ("Group: <name>") when runs are grouped.
  It opens RUN_NAME_WIDTH pixels wide; a width under its id in columnWidths replaces that (the UI applies
  columnWidths to every column listed in columnOrder).
- A chart section (compareRunSections) lays its cards out `columns` per row (1 to 5, 3 when absent;
  one on a narrow screen) and `cardHeight` pixels high (360 when absent). Under each line chart the UI
  draws its legend, one entry per line, in a box of a fixed height (32 pixels, two lines of entries;
  100 in the full-screen view) that scrolls when the entries do not fit: only a wider card (fewer
  columns) shows more of them, a taller one does not.
- Run grouping (`groupBy`) is {"aggregateFunction": "average" | "min" | "max", "groupByKeys":
  [{"mode": "tag" | "param" | "dataset", "groupByData": <key>}]}; grouped line charts draw the
  aggregate line with a min-max band.
- A group of runs is known to the UI by its id, "<mode>.<key>.<value>" per grouping key joined by ",".
  Its colour is not `mlflow.runColor` (a run tag) but the UI's colour map, localStorage
  `experimentRunColors` ({run or group id: colour}, one map for every experiment), which the UI reads
  when the runs page opens and writes when the user picks a group's colour; a group missing from it gets
  a colour hashed from its id.
"""

from __future__ import annotations

import base64
import json
import zlib

VIEW_TAG_PREFIX = "mlflow.sharedViewState."
COMPRESSED = "deflate;"
RUN_COLORS_KEY = "experimentRunColors"
BROWSER_STATE_KEY = "MLflowLocalStorage-1.1-ExperimentPage-{ids}-ReactComponentState"
RUN_NAME_COLUMN = "attributes.`Run Name`"
RUN_NAME_WIDTH = 190  # the run-name column's own initial width (pixels)

SEARCH_FACET_KEYS = (
    "searchFilter",
    "orderByKey",
    "orderByAsc",
    "startTime",
    "lifecycleFilter",
    "datasetsFilter",
    "modelVersionFilter",
)
# the UI state keys a saved view persists (the UI drops the per-session ones: runsExpanded, runsPinned, ...)
UI_STATE_KEYS = (
    "selectedColumns",
    "columnOrder",
    "columnWidths",
    "runsHiddenMode",
    "compareRunCharts",
    "compareRunSections",
    "viewMaximized",
    "runListHidden",
    "isAccordionReordered",
    "groupBy",
    "groupsExpanded",
    "useGroupedValuesInCharts",
    "hideEmptyCharts",
    "globalLineChartConfig",
)


def column(kind: str, key: str) -> str:
    """A column's id: kind is attributes, metrics, params or tags."""
    return f"{kind}.`{key}`"


def group_by(tags: tuple[str, ...] = (), params: tuple[str, ...] = (), aggregate: str = "average") -> dict | None:
    """Run grouping by the values of these tags and params (None: no grouping)."""
    keys = [{"mode": "tag", "groupByData": t} for t in tags] + [{"mode": "param", "groupByData": p} for p in params]
    return {"aggregateFunction": aggregate, "groupByKeys": keys} if keys else None


def group_id(values: list[tuple[str, str, str | None]]) -> str:
    """The UI's id of the group of runs with these (mode, key, value) grouping values, in groupBy's order
    (a run without the key has the value None)."""
    return ",".join(f"{mode}.{key}.{value if value else 'null'}" for mode, key, value in values)


def pack(data) -> str:
    """JSON compressed as the UI compresses saved views ("deflate;" + base64(zlib(JSON)))."""
    return COMPRESSED + base64.b64encode(zlib.compress(json.dumps(data).encode())).decode("ascii")


def unpack(value: str):
    """What pack (or plain JSON) holds."""
    if value.startswith(COMPRESSED):
        value = zlib.decompress(base64.b64decode(value[len(COMPRESSED) :])).decode()
    return json.loads(value)


def line_chart(
    uuid: str,
    section: str,
    metric: str,
    x_metric: str | None = None,
    y_log: bool = False,
    x_log: bool = False,
    title: str | None = None,
) -> dict:
    """A line chart card (RunsChartsLineCardConfig): `metric` against the step, or against another metric
    logged at the same steps (`x_metric`)."""
    return {
        "uuid": uuid,
        "type": "LINE",
        "metricSectionId": section,
        "deleted": False,
        "isGenerated": False,
        "runsCountToCompare": 100,
        "metricKey": metric,
        "selectedMetricKeys": [metric],
        "displayName": title or (metric + (f" vs {x_metric}" if x_metric else "")),
        "lineSmoothness": 0,
        "scaleType": "log" if y_log else "linear",
        "xAxisScaleType": "log" if x_log else "linear",
        "range": {},
        "xAxisKey": "metric" if x_metric else "step",
        "selectedXAxisMetricKey": x_metric or "",
        "yAxisKey": "METRIC",
        "yAxisExpressions": [],
        "ignoreOutliers": False,
        "useGlobalXaxisKey": False,
        "useGlobalLineSmoothing": False,
    }


def chart_section(uuid: str, name: str, shown: bool, columns: int | None = None) -> dict:
    """A section of chart cards; `columns`: cards per row (the UI's own default is 3)."""
    section = {
        "uuid": uuid,
        "name": name,
        "display": shown,
        "isReordered": False,
        "deleted": False,
        "isGenerated": False,
    }
    return section if columns is None else {**section, "columns": columns}


def runs_page_state(
    search_filter: str,
    order_by: str,
    order_ascending: bool,
    columns: list[str],
    column_widths: dict[str, int],
    charts: list[dict],
    sections: list[dict],
    grouping: dict | None,
    drawn: bool = True,
) -> dict:
    """The whole runs page state (search facets + UI state): `columns` are shown in this order after the
    run name; every matching run is drawn (not the UI's default first 10), or, with `drawn` False, none
    until the user ticks them (the charts of a page that lists runs of several workloads)."""
    return {
        "searchFilter": search_filter,
        "orderByKey": order_by,
        "orderByAsc": order_ascending,
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "datasetsFilter": [],
        "modelVersionFilter": "All Runs",
        "selectedColumns": list(columns),
        "columnOrder": [RUN_NAME_COLUMN, *columns],
        "columnWidths": dict(column_widths),
        "runsHiddenMode": "SHOW_ALL" if drawn else "HIDE_ALL",
        "compareRunCharts": charts,
        "compareRunSections": sections,
        "viewMaximized": False,
        "runListHidden": False,
        "isAccordionReordered": True,
        "groupBy": grouping,
        "groupsExpanded": {},
        "useGroupedValuesInCharts": True,
        "hideEmptyCharts": True,
        "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0, "selectedXAxisMetricKey": ""},
    }


def envelope(name: str, state: dict, now_ms: int, marker: dict | None = None) -> str:
    """A saved-view tag value, its state compressed as the UI compresses the views it saves. `marker`
    (extra envelope keys) lets the writer recognise its own views; the UI ignores them and does not keep
    them when the user overrides the view."""
    return json.dumps({"name": name, "createdAt": now_ms, "updatedAt": now_ms, "state": pack(state), **(marker or {})})


def read_envelope(value: str) -> dict:
    """The envelope of a saved-view tag value (empty when it is not one)."""
    try:
        found = json.loads(value)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def read_state(value: str) -> dict:
    """The runs page state inside a saved-view tag value (either form the UI accepts)."""
    return unpack(json.loads(value)["state"])


def browser_state_key(experiment_id: str) -> str:
    """The localStorage key of the runs page state the UI opens an experiment on."""
    return BROWSER_STATE_KEY.format(ids=json.dumps([str(experiment_id)]))


def sample() -> dict:
    """One saved view's envelope with its state uncompressed: the shape tests/data/mlflow_ui_state_sample.json
    pins (refresh it with `python -m optlab.tracking.ui_state > tests/data/mlflow_ui_state_sample.json`)."""
    state = runs_page_state(
        "tags.`optlab.role` = 'rerun'",
        column("metrics", "val_accuracy"),
        False,
        [column("tags", "optlab.strategy"), column("metrics", "val_accuracy")],
        {RUN_NAME_COLUMN: 400, column("metrics", "val_accuracy"): 120},
        [line_chart("chart", "section", "val_accuracy", "gradient_equivalents", x_log=True)],
        [chart_section("section", "Learning curves", True, columns=1)],
        group_by(("optlab.strategy",), ("batch_size",)),
    )
    return {"name": "a view", "createdAt": 0, "updatedAt": 0, "state": state}


if __name__ == "__main__":
    print(json.dumps(sample(), indent=2, sort_keys=True))
