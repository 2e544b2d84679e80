"""optlab's saved views of the MLflow UI, from a small synthetic store: one view per workload showing only
that workload's reported runs, grouped by configuration (one line per strategy with its band), the
configurations view with its intervals in order, the default page every experiment opens on, and the
MLflow-internal format they are written in, pinned against the installed MLflow UI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
import pytest
from synthetic_store import add_run

from optlab import palette
from optlab.tracking import ui, ui_server, ui_state

SAMPLE = Path(__file__).parent / "data" / "mlflow_ui_state_sample.json"
REFRESH = (
    "MLflow's UI storage format changed: check the UI's JavaScript (mlflow/server/js/build/static/js) "
    "for the new keys, update optlab/tracking/ui_state.py, then refresh the sample with "
    "`.venv/bin/python -m optlab.tracking.ui_state > tests/data/mlflow_ui_state_sample.json`"
)
WIDE = [(0.01, 0.2), (0.1, 0.5), (1.0, 0.8), (10.0, 0.9)]  # work spans three decades: a log x axis
NARROW = [(1.0, 0.3), (2.0, 0.6), (4.0, 0.8)]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from optlab.tracking.store import client, ensure_experiment

    home = tmp_path_factory.mktemp("views")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPTLAB_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        c = client()
        experiment_id = ensure_experiment(c, "desk", "two workloads")
        ids = {"wide": set(), "batches": set()}
        for strategy, trial in (("sgd", "lr=0.1"), ("adam", "lr=0.01")):
            for seed in (100, 101, 102):
                ids["wide"].add(add_run("desk", "wide", strategy, seed, WIDE, 0.8, trial=trial))
            add_run("desk", "wide", strategy, 0, WIDE, 0.8, role="tuning", trial=trial)
        add_run("desk", "wide", "sgd", 100, WIDE, 0.8, trial="lr=0.5", selected="false")  # an earlier selection
        for batch, every in ((1, 50), (2, 25), (16, 10)):
            for seed in (100, 101):
                ids["batches"].add(
                    add_run(
                        "desk",
                        "batches",
                        "minibatch",
                        seed,
                        NARROW,
                        0.8,
                        trial=f"lr={0.01 * batch}",
                        params={"batch_size": batch, "eval_every": every},
                    )
                )
        group = add_run(
            "desk",
            "wide",
            "sgd",
            0,
            WIDE,
            0.8,
            role="group",
            final={
                "final/val_accuracy/mean": 0.9,
                "final/val_accuracy/ci_low": 0.85,
                "final/val_accuracy/ci_high": 0.95,
            },
        )
        saved = ui.save_views(c, experiment_id, now_ms=1)
        tags = c.get_experiment(experiment_id).tags
        yield {
            "client": c,
            "experiment_id": experiment_id,
            "ids": ids,
            "group": group,
            "saved": saved,
            "tags": tags,
            "home": home,
        }


def view(store, view_id: str) -> dict:
    return ui.read_view(store["tags"][ui_state.VIEW_TAG_PREFIX + view_id])


def matching(store, state: dict) -> list:
    return store["client"].search_runs([store["experiment_id"]], state["searchFilter"], max_results=1000)


def test_each_workload_has_a_view_of_its_reported_runs_and_one_of_its_configurations(store):
    assert store["saved"] == {
        "optlab-reruns": "optlab: reruns",
        "optlab-wide": "optlab: wide",
        "optlab-wide-configurations": "optlab: wide · configurations",
        "optlab-batches": "optlab: batches",
        "optlab-batches-configurations": "optlab: batches · configurations",
    }
    for workload in ("wide", "batches"):
        shown = {r.info.run_id for r in matching(store, view(store, f"optlab-{workload}"))}
        assert shown == store["ids"][workload]  # no tuning trial, no stale selection, no other workload
    groups = matching(store, view(store, "optlab-wide-configurations"))
    assert [r.info.run_id for r in groups] == [store["group"]]
    assert matching(store, view(store, "optlab-batches-configurations")) == []


def test_a_workload_view_draws_one_line_per_strategy_with_its_band(store):
    state = view(store, "optlab-wide")
    assert state["groupBy"] == {
        "aggregateFunction": "average",
        "groupByKeys": [{"mode": "tag", "groupByData": ui.CONFIG_TAG}],
    }
    assert state["useGroupedValuesInCharts"] is True and state["runsHiddenMode"] == "SHOW_ALL"
    runs = matching(store, state)
    lines = {r.data.tags[ui.CONFIG_TAG] for r in runs}
    assert lines == {"sgd", "adam"}  # a group's name in the legend is the strategy alone
    colors = ui_state.unpack(store["tags"][ui.GROUP_COLORS_TAG])
    for line in lines:  # each group in its strategy's palette colour, under the id the UI gives the group
        assert colors[ui_state.group_id([("tag", ui.CONFIG_TAG, line)])] == palette.color(line)


def test_a_grid_axis_names_the_groups_and_what_follows_from_it_does_not(store):
    state = view(store, "optlab-batches")
    runs = matching(store, state)
    # batch_size tells configurations apart; eval_every is set per batch size and lr is the tuned value
    names = {r.data.tags[ui.CONFIG_TAG] for r in runs}
    assert len(names) == 3 and all(n.startswith("minibatch batch_size=") for n in names)
    assert not any("eval_every" in n or "lr=" in n for n in names)
    assert "params.`batch_size`" in state["selectedColumns"]
    assert not any(c.startswith("metrics.") for c in state["selectedColumns"])  # the UI prints every digit


def test_the_configurations_view_shows_mean_ci_low_ci_high_in_that_order_with_whole_headers(store):
    state = view(store, "optlab-wide-configurations")
    order = state["columnOrder"]
    accuracy = [order.index(f"metrics.`final/val_accuracy/{part}`") for part in ("mean", "ci_low", "ci_high")]
    assert accuracy == sorted(accuracy) and accuracy[2] - accuracy[0] == 2
    assert order[0] == ui_state.RUN_NAME_COLUMN and order[1] == "tags.`optlab.strategy`"
    assert set(state["selectedColumns"]) == set(order[1:])
    for column_id, width in state["columnWidths"].items():
        header = column_id.split("`")[1]
        assert width >= ui.PIXELS_PER_CHARACTER * len(header), column_id
    assert state["orderByKey"] == "metrics.`final/val_accuracy/mean`" and state["orderByAsc"] is False


def test_work_axes_are_log_where_the_report_draws_them_log(store):
    def x_scales(view_id):
        return {
            c["selectedXAxisMetricKey"]: c["xAxisScaleType"]
            for c in view(store, view_id)["compareRunCharts"]
            if c["selectedXAxisMetricKey"]
        }

    assert x_scales("optlab-wide") == {"gradient_equivalents": "log", "wall_time": "log"}
    assert x_scales("optlab-batches") == {"gradient_equivalents": "linear", "wall_time": "linear"}
    losses = [c for c in view(store, "optlab-wide")["compareRunCharts"] if c["metricKey"] == "train_loss"]
    assert losses and {c["scaleType"] for c in losses} == {"log"}


def test_the_default_page_lists_reruns_with_workload_strategy_and_metric_columns(store):
    state = view(store, ui.DEFAULT_VIEW_ID)
    assert {r.info.run_id for r in matching(store, state)} == store["ids"]["wide"] | store["ids"]["batches"]
    assert state["selectedColumns"][:3] == [
        "tags.`optlab.workload`",
        "tags.`optlab.strategy`",
        "metrics.`val_accuracy`",
    ]
    assert state["groupBy"] is None and state["orderByKey"] == "tags.`optlab.workload`"
    # the server gives every browser without a page of its own this one for the experiment
    pages = ui_server.experiment_pages(store["client"])
    assert json.loads(pages[ui_state.browser_state_key(store["experiment_id"])]) == state
    script = ui_server.inject("<html><head></head></html>", pages)
    assert 'MLflowLocalStorage-1.1-ExperimentPage-[\\"' + store["experiment_id"] in script


def test_a_view_the_user_saved_over_is_kept_and_optlabs_own_are_refreshed(store):
    c, experiment_id = store["client"], store["experiment_id"]
    mine = json.dumps({"name": "optlab: wide", "createdAt": 1, "updatedAt": 5, "state": "{}"})
    c.set_experiment_tag(experiment_id, ui_state.VIEW_TAG_PREFIX + "optlab-wide", mine)
    c.set_experiment_tag(
        experiment_id,
        ui_state.VIEW_TAG_PREFIX + "optlab-batches",
        ui.saved_view("optlab: batches", {"searchFilter": "old"}, now_ms=1),
    )
    legacy = json.dumps({"name": "optlab: compare runs", "createdAt": 1, "updatedAt": 1, "state": "{}"})
    c.set_experiment_tag(experiment_id, ui_state.VIEW_TAG_PREFIX + "optlab-compare", legacy)
    saved = ui.save_views(c, experiment_id)
    tags = c.get_experiment(experiment_id).tags
    assert tags[ui_state.VIEW_TAG_PREFIX + "optlab-wide"] == mine and "optlab-wide" not in saved
    assert ui.read_view(tags[ui_state.VIEW_TAG_PREFIX + "optlab-batches"]) == view(store, "optlab-batches")
    assert ui_state.VIEW_TAG_PREFIX + "optlab-compare" not in tags


def test_the_pinned_view_format_is_the_checked_in_sample():
    assert ui_state.sample() == json.loads(SAMPLE.read_text()), REFRESH


def test_the_pinned_view_format_matches_the_installed_mlflow_ui():
    bundle = "\n".join(
        p.read_text(errors="replace") for p in (Path(mlflow.__file__).parent / "server/js/build/static/js").glob("*.js")
    )
    persisted = re.search(r'\["selectedColumns"(?:,"[A-Za-z]+")*\]', bundle)
    assert persisted, REFRESH
    assert set(ui_state.UI_STATE_KEYS) <= set(json.loads(persisted.group(0))), REFRESH
    facets = re.search(r'searchFilter:"",orderByKey:[^}]*\}', bundle)
    assert facets and all(f"{k}:" in facets.group(0) for k in ui_state.SEARCH_FACET_KEYS), REFRESH
    assert set(json.loads(SAMPLE.read_text())["state"]) == set(ui_state.UI_STATE_KEYS) | set(ui_state.SEARCH_FACET_KEYS)
    card = json.loads(SAMPLE.read_text())["state"]["compareRunCharts"][0]
    line_class = re.search(r"this\.type=[a-z]\.LINE,.{0,800}", bundle)
    assert line_class and all(
        f"this.{k}=" in line_class.group(0)
        for k in (
            "metricKey",
            "selectedMetricKeys",
            "lineSmoothness",
            "xAxisScaleType",
            "scaleType",
            "range",
            "xAxisKey",
            "selectedXAxisMetricKey",
            "yAxisKey",
            "yAxisExpressions",
            "ignoreOutliers",
            "useGlobalXaxisKey",
        )
    ), REFRESH
    assert set(card) >= {"uuid", "type", "metricSectionId", "runsCountToCompare"}
    for fragment in (
        'e.Tag="tag"',
        'e.Param="param"',
        'e.Average="average"',
        '"mlflow.sharedViewState."',
        '"deflate;"',
        '["MLflowLocalStorage",r.version,this.scope,e].join("-")',
        'version="1.1"',
        'getStoreForComponent("ExperimentPage"',
        'reactComponentStateKey="ReactComponentState"',
        "JSON.stringify([n])",
    ):
        assert fragment in bundle, f"{fragment!r} not in the UI bundle. {REFRESH}"
    assert ui_state.VIEW_TAG_PREFIX == "mlflow.sharedViewState." and ui_state.COMPRESSED == "deflate;"


def test_a_workload_too_big_for_the_uis_first_page_shows_its_runs_timed_alone():
    from types import SimpleNamespace

    def rerun(strategy, seed):
        tags = {"optlab.workload": "w", "optlab.role": "rerun", "optlab.selected": "true", "optlab.strategy": strategy}
        if seed < 5:
            tags[ui.TIMING_TAG] = "alone"
        return SimpleNamespace(
            info=SimpleNamespace(run_id=f"{strategy}{seed}"),
            data=SimpleNamespace(tags=tags, params={"seed": str(seed)}),
        )

    big = ui.Workloads(
        [rerun(s, seed) for s in ("sgd", "adam", "gd", "adamw", "nesterov", "rmsprop") for seed in range(20)]
    )
    assert "tags.`optlab.timing` = 'alone'" in ui.workload_state(big, "w")["searchFilter"]
    small = ui.Workloads([rerun(s, seed) for s in ("sgd", "adam") for seed in range(20)])
    assert "optlab.timing" not in ui.workload_state(small, "w")["searchFilter"]  # 40 runs: all of them
