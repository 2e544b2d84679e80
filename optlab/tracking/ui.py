"""What the MLflow UI (3.17) reads to show optlab's experiments well, written by optlab as data.

- `mlflow.experimentKind = custom_model_development` marks an experiment as model training (the
  kind the UI's experiment-kind selector sets); the UI's *workflow* switch (GenAI / Model training,
  a per-browser setting) is defaulted by the `optlab` server app (`optlab ui`, ui_server.py).
- `mlflow.note.content` on an experiment is its description (the experiments list shows it), on a
  run the run's description.
- `mlflow.sharedViewState.<id>` on an experiment is a saved view of its runs page (the "Views"
  menu; `?viewStateShareKey=<id>` opens it): optlab stores two that show the metric columns and charts
  of the learning curves against work and wall time, with the work counters (epoch, evaluations,
  samples_seen, gradient_*) in a collapsed section instead of leading the chart view: one of every run,
  one of the seed-group runs (one per compared configuration, sweeps/seed_groups.py).
- `mlflow.runColor` on a run is its colour in the UI's charts: the strategy's colour (palette.py),
  the same as in the report.
"""

from __future__ import annotations

import base64
import json
import time
import zlib
from urllib.parse import urlencode

from optlab import palette

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
NOTE_TAG = "mlflow.note.content"
RUN_COLOR_TAG = "mlflow.runColor"
VIEW_TAG_PREFIX = "mlflow.sharedViewState."
VIEW_ID = "optlab-compare"
VIEW_NAME = "optlab: compare runs"
GROUPS_VIEW_ID = "optlab-configurations"
GROUPS_VIEW_NAME = "optlab: compare configurations (seed groups)"
WORKFLOW_PARAM = ("workflowType", "machine_learning")

# what a run's row shows (in this order) and what its charts plot
COLUMN_METRICS = ("val_accuracy", "test_accuracy", "val_loss", "train_loss", "steps_to_target", "wall_time",
                  "gradient_equivalents")
COLUMN_PARAMS = ("lr", "batch_size", "seed")
COLUMN_TAGS = ("optlab.role", "optlab.series")
GROUP_COLUMN_METRICS = tuple(f"final/{m}/{part}" for m in ("val_accuracy", "test_accuracy")
                             for part in ("mean", "ci_low", "ci_high")) + ("final/train_loss/mean",
                                                                          "final/wall_time/mean")
GROUP_COLUMN_TAGS = ("optlab.workload", "optlab.seeds", "optlab.finished")
CURVES = ("val_accuracy", "train_loss", "test_accuracy", "val_loss")
LOG_SCALE = ("train_loss", "val_loss", "test_loss", "batch_loss", "grad_norm")
PER_STEP = ("batch_loss", "grad_norm", "lr")
COUNTERS = ("epoch", "samples_seen", "evaluations", "gradient_evaluations", "gradient_equivalents", "wall_time")


def run_tags(strategy: str) -> dict[str, str]:
    """Tags every optlab run carries for the UI: its strategy's colour."""
    return {RUN_COLOR_TAG: palette.color(strategy)}


def is_described(tags: dict[str, str], description: str | None = None) -> bool:
    """The experiment's tags already say what describe_experiment would write."""
    return (tags.get(EXPERIMENT_KIND_TAG) == MODEL_TRAINING and (not description or tags.get(NOTE_TAG) == description)
            and all(VIEW_TAG_PREFIX + view_id in tags for view_id in (VIEW_ID, GROUPS_VIEW_ID)))


def describe_experiment(client, experiment_id: str, description: str | None = None) -> None:
    """Mark the experiment as model training, set its description (when given) and add optlab's saved
    runs view (once: a view the user has since changed is left alone)."""
    experiment = client.get_experiment(experiment_id)
    tags = experiment.tags or {}
    if tags.get(EXPERIMENT_KIND_TAG) != MODEL_TRAINING:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
    if description and tags.get(NOTE_TAG) != description:
        client.set_experiment_tag(experiment_id, NOTE_TAG, description)
    for view_id, groups in ((VIEW_ID, False), (GROUPS_VIEW_ID, True)):
        if VIEW_TAG_PREFIX + view_id not in tags:
            client.set_experiment_tag(experiment_id, VIEW_TAG_PREFIX + view_id, saved_view(groups=groups))


def view_url(base_url: str, experiment_id: str, view_id: str = VIEW_ID) -> str:
    """The experiment's runs page in the UI, opened on one of optlab's saved views in model-training mode."""
    query = urlencode({"viewStateShareKey": view_id, WORKFLOW_PARAM[0]: WORKFLOW_PARAM[1]})
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


# ---- the saved view ---------------------------------------------------------------------------------
def _column(kind: str, key: str) -> str:
    return f"{kind}.`{key}`"


def _line_chart(uuid: str, section: str, metric: str, x_metric: str | None = None) -> dict:
    """A line chart card as the UI stores it (RunsChartsLineCardConfig): `metric` against the step, or
    against another metric logged at the same steps (`x_metric`)."""
    return {"uuid": uuid, "type": "LINE", "metricSectionId": section, "deleted": False, "isGenerated": False,
            "runsCountToCompare": 100, "metricKey": metric, "selectedMetricKeys": [metric],
            "displayName": metric + (f" vs {x_metric}" if x_metric else ""), "lineSmoothness": 0,
            "scaleType": "log" if metric in LOG_SCALE else "linear",
            "xAxisScaleType": "log" if x_metric in ("gradient_equivalents", "samples_seen", "evaluations") else "linear",
            "range": {}, "xAxisKey": "metric" if x_metric else "step", "selectedXAxisMetricKey": x_metric or "",
            "yAxisKey": "METRIC", "yAxisExpressions": [], "ignoreOutliers": False,
            "useGlobalXaxisKey": False, "useGlobalLineSmoothing": False}


def view_state(groups: bool = False) -> dict:
    """The runs page state of optlab's saved view (the keys the UI persists for a view): every run but the
    sweep's parent, or (`groups`) the seed-group runs only, one per compared configuration."""
    sections = [("work", "Learning curves against work (gradient equivalents)", True),
                ("time", "Learning curves against wall time (training only)", True),
                ("steps", "Learning curves against steps", False),
                ("per-step", "Per step: batch loss, gradient norm, learning rate", False),
                ("counters", "Work counters (straight lines by construction)", False)]
    charts = []
    for metric in CURVES[:2]:
        charts.append(_line_chart(f"optlab-work-{metric}", "work", metric, "gradient_equivalents"))
        charts.append(_line_chart(f"optlab-time-{metric}", "time", metric, "wall_time"))
    for metric in CURVES:
        charts.append(_line_chart(f"optlab-steps-{metric}", "steps", metric))
    charts += [_line_chart(f"optlab-step-{m}", "per-step", m) for m in PER_STEP]
    charts += [_line_chart(f"optlab-counter-{m}", "counters", m) for m in COUNTERS]
    if groups:
        columns = ([_column("metrics", m) for m in GROUP_COLUMN_METRICS] + [_column("params", p) for p in COLUMN_PARAMS[:2]]
                   + [_column("tags", t) for t in GROUP_COLUMN_TAGS])
    else:
        columns = ([_column("metrics", m) for m in COLUMN_METRICS] + [_column("params", p) for p in COLUMN_PARAMS]
                   + [_column("tags", t) for t in COLUMN_TAGS])
    return {
        # search facets: every run but the sweep's parent (it has no curves and would sit in every legend),
        # or the seed groups alone
        "searchFilter": "tags.`optlab.role` = 'group'" if groups else "tags.`optlab.role` != 'parent'",
        "orderByKey": _column("metrics", "final/val_accuracy/mean" if groups else "val_accuracy"),
        "orderByAsc": False,
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "datasetsFilter": [],
        "modelVersionFilter": "All Runs",
        # UI state
        "selectedColumns": columns,
        "columnOrder": [],
        "columnWidths": {},
        "runsHiddenMode": "SHOW_ALL",
        "compareRunCharts": charts,
        "compareRunSections": [{"uuid": uuid, "name": name, "display": shown, "isReordered": False,
                                "deleted": False, "isGenerated": False} for uuid, name, shown in sections],
        "viewMaximized": False,
        "runListHidden": False,
        "isAccordionReordered": True,
        "useGroupedValuesInCharts": True,
        "hideEmptyCharts": True,
        "groupBy": None,
        "groupsExpanded": {},
        "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0, "selectedXAxisMetricKey": ""},
    }


def saved_view(now_ms: int | None = None, groups: bool = False) -> str:
    """The experiment tag's value: the UI's saved-view envelope around the state, compressed as the UI
    compresses the views it saves ("deflate;" + base64 of zlib)."""
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    state = "deflate;" + base64.b64encode(zlib.compress(json.dumps(view_state(groups)).encode())).decode("ascii")
    return json.dumps({"name": GROUPS_VIEW_NAME if groups else VIEW_NAME, "createdAt": now_ms,
                       "updatedAt": now_ms, "state": state})


def read_view(value: str) -> dict:
    """The state inside a saved-view tag value (either form the UI accepts)."""
    state = json.loads(value)["state"]
    if state.startswith("deflate;"):
        state = zlib.decompress(base64.b64decode(state[len("deflate;"):])).decode()
    return json.loads(state)
