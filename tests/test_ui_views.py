"""optlab's saved views of the MLflow UI, from a small synthetic store: one view per workload showing only
that workload's reported runs, grouped by configuration (one line per strategy with its band), the
configurations view with its intervals in order, the default page every experiment opens on, and the
MLflow-internal format they are written in, pinned against the installed MLflow UI. A workload with more
runs than the UI's first page shows an equal sample of every configuration; the configurations of one
strategy are listed and coloured in numeric order along the report's ordered scale."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
import pytest
from synthetic_store import add_run

from optlab import palette
from optlab.tracking import saved_views, ui, ui_server, ui_state

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
        saved = saved_views.save_views(c, experiment_id, now_ms=1)
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
    saved = saved_views.save_views(c, experiment_id)
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


BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)  # text order would put 1024 before 128 before 16
MORE_BATCHES = (3500, 4096)


def add_batch_size(batch: int) -> set[str]:
    """Ten reruns of one batch size, the odd seeds timed alone (so preferring them differs from the lowest
    seeds first)."""
    return {
        add_run(
            "crowded",
            "steps",
            "minibatch",
            seed,
            NARROW[:2],
            0.8,
            params={"batch_size": batch},
            timing="alone" if seed % 2 else "batched:2",
        )
        for seed in range(100, 110)
    }


@pytest.fixture(scope="module")
def crowded(tmp_path_factory):
    """One strategy at many batch sizes with more reruns than the UI's first page holds."""
    from optlab.tracking.store import client, ensure_experiment

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPTLAB_HOME", str(tmp_path_factory.mktemp("crowded")))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        c = client()
        experiment_id = ensure_experiment(c, "crowded", "batch sizes")
        for batch in BATCHES:
            add_batch_size(batch)
        yield {"client": c, "experiment_id": experiment_id, "add": add_batch_size}


def workload_view(c, experiment_id: str) -> tuple[str, list]:
    """The workload view's name and the runs its filter finds, in the view's order."""
    found = ui_state.read_envelope(c.get_experiment(experiment_id).tags[ui_state.VIEW_TAG_PREFIX + "optlab-steps"])
    state = ui_state.unpack(found["state"])
    order = state["orderByKey"].split("`")[1]
    runs = c.search_runs([experiment_id], state["searchFilter"], max_results=1000, order_by=[f"tags.`{order}` ASC"])
    return found["name"], runs


def test_a_workload_too_big_for_the_uis_first_page_shows_every_configuration_equally(crowded):
    from collections import Counter

    c, experiment_id = crowded["client"], crowded["experiment_id"]
    reruns = c.search_runs([experiment_id], "tags.`optlab.role` = 'rerun'", max_results=1000)
    assert len(reruns) > ui.UI_PAGE
    saved_views.save_views(c, experiment_id)
    name, shown = workload_view(c, experiment_id)
    per_configuration = Counter(r.data.params["batch_size"] for r in shown)
    assert set(per_configuration) == {str(b) for b in BATCHES}  # every configuration drawn
    assert len(set(per_configuration.values())) == 1 and len(shown) <= ui.UI_PAGE
    each = per_configuration["1"]
    assert each == ui.UI_PAGE // len(BATCHES) and f"{each} seeds per configuration" in name
    for batch in BATCHES:  # the runs timed alone first, then the lowest seeds
        runs = [r for r in reruns if r.data.params["batch_size"] == str(batch)]
        alone = sorted(int(r.data.params["seed"]) for r in runs if r.data.tags["optlab.timing"] == "alone")
        others = sorted(int(r.data.params["seed"]) for r in runs if r.data.tags["optlab.timing"] != "alone")
        expected = (alone + others)[:each]
        assert sorted(int(r.data.params["seed"]) for r in shown if r.data.params["batch_size"] == str(batch)) == sorted(
            expected
        )
    # the groups come in numeric order of batch size (the UI lists them as the runs come)
    assert list(dict.fromkeys(int(r.data.params["batch_size"]) for r in shown)) == sorted(BATCHES)

    for batch in MORE_BATCHES:  # more configurations: fewer runs of each fit, the dropped ones lose the tag
        crowded["add"](batch)
    saved_views.save_views(c, experiment_id)
    name, again = workload_view(c, experiment_id)
    per_configuration = Counter(r.data.params["batch_size"] for r in again)
    assert set(per_configuration) == {str(b) for b in BATCHES + MORE_BATCHES}
    assert len(set(per_configuration.values())) == 1 and len(again) <= ui.UI_PAGE
    assert per_configuration["1"] < each and f"{per_configuration['1']} seeds per configuration" in name
    tagged = c.search_runs([experiment_id], f"tags.`{ui.IN_VIEW_TAG}` = 'true'", max_results=1000)
    assert {r.info.run_id for r in tagged} == {r.info.run_id for r in again}
    dropped = {r.info.run_id for r in shown} - {r.info.run_id for r in again}
    assert dropped and not any(ui.IN_VIEW_TAG in c.get_run(i).data.tags for i in dropped)


def test_groups_of_one_strategy_are_coloured_along_an_ordered_scale_in_numeric_order(crowded):
    c, experiment_id = crowded["client"], crowded["experiment_id"]
    saved_views.save_views(c, experiment_id)
    colors = ui_state.unpack(c.get_experiment(experiment_id).tags[ui.GROUP_COLORS_TAG])
    reruns = c.search_runs([experiment_id], "tags.`optlab.role` = 'rerun'", max_results=1000)
    label = {int(r.data.params["batch_size"]): r.data.tags[ui.CONFIG_TAG] for r in reruns}
    ordered = [colors[ui_state.group_id([("tag", ui.CONFIG_TAG, label[b])])] for b in sorted(label)]
    assert len(set(ordered)) == len(label)  # one colour per batch size, not the strategy's for all
    assert ordered == palette.sequential(len(label))  # dark to light as the batch size grows
    assert palette.color("minibatch") not in ordered


def test_the_ordered_scale_is_the_one_the_report_drew_with_seaborn():
    import seaborn as sns

    def hex_of(rgb) -> str:
        return "#" + "".join(f"{round(255 * float(c)):02X}" for c in rgb)

    assert palette.sequential(13) == [hex_of(c) for c in sns.color_palette("viridis", 14)[:13]]
    assert palette.configuration_colors({"sgd": "sgd", "adam": "adam"}) == {
        "sgd": palette.color("sgd"),
        "adam": palette.color("adam"),
    }


def test_more_configurations_than_the_uis_page_show_one_seed_each_and_the_name_says_so():
    from types import SimpleNamespace

    def rerun(batch, seed):
        tags = {"optlab.workload": "w", "optlab.role": "rerun", "optlab.selected": "true", "optlab.strategy": "sgd"}
        return SimpleNamespace(
            info=SimpleNamespace(run_id=f"{batch}-{seed}", run_name=f"sgd batch_size={batch} seed={seed}"),
            data=SimpleNamespace(tags=tags, params={"seed": str(seed), "batch_size": str(batch)}),
        )

    batches = range(1, ui.UI_PAGE + 21)
    workloads = ui.Workloads([rerun(b, seed) for b in batches for seed in (7, 3)])
    name = ui.views(workloads)["optlab-w"][0]
    assert "1 seed per configuration" in name and f"{ui.UI_PAGE} of {len(batches)} configurations" in name
    sampled = {i: t for i, t in workloads.tag_changes.items() if t.get(ui.IN_VIEW_TAG) == "true"}
    assert sorted(sampled) == sorted(f"{b}-3" for b in batches)  # one each, the lowest seed
    # the UI draws the first page in the view's order: the smallest batch sizes, as numbers
    first = sorted(sampled, key=lambda i: sampled[i][ui.ORDER_TAG])[: ui.UI_PAGE]
    assert [int(i.split("-")[0]) for i in first] == list(batches)[: ui.UI_PAGE]


def test_a_work_axis_is_log_when_the_configurations_of_one_strategy_span_decades_together(tmp_path, monkeypatch):
    from optlab.tracking.store import client, ensure_experiment

    monkeypatch.setenv("OPTLAB_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    c = client()
    experiment_id = ensure_experiment(c, "spread", "batch sizes")
    # each batch size's curve spans less than two decades of work; the two together span more
    for batch, curve in ((1, [(0.01, 0.3), (0.05, 0.8)]), (2048, [(5.0, 0.3), (20.0, 0.8)])):
        add_run("spread", "w", "minibatch", 100, curve, 0.8, params={"batch_size": batch})
    saved_views.save_views(c, experiment_id)
    state = ui.read_view(c.get_experiment(experiment_id).tags[ui_state.VIEW_TAG_PREFIX + "optlab-w"])
    scales = {card["selectedXAxisMetricKey"]: card["xAxisScaleType"] for card in state["compareRunCharts"]}
    assert scales["gradient_equivalents"] == "log"


def test_every_view_fits_the_longest_run_and_group_name_it_lists_in_its_name_column(store):
    widths = {}
    for view_id in store["saved"]:
        state = view(store, view_id)
        runs = matching(store, state)
        width = widths[view_id] = state["columnWidths"][ui_state.RUN_NAME_COLUMN]
        assert state["columnOrder"][0] == ui_state.RUN_NAME_COLUMN  # the UI sizes the columns columnOrder lists
        needed = [ui.PIXELS_PER_CHARACTER * len(r.info.run_name) for r in runs]
        if state["groupBy"]:
            needed += [ui.PIXELS_PER_CHARACTER * len("Group: " + r.data.tags[ui.CONFIG_TAG]) for r in runs]
        assert ui_state.RUN_NAME_WIDTH <= width <= ui.NAME_WIDTH_MAX, view_id
        assert width >= max(needed, default=0), view_id
    # groups named `minibatch batch_size=16` do not fit the UI's own 190 pixels; no name at all keeps them
    assert widths["optlab-batches"] > ui_state.RUN_NAME_WIDTH
    assert widths["optlab-batches-configurations"] == ui_state.RUN_NAME_WIDTH
    # the page a browser opens the experiment on is the default view, with its width
    pages = ui_server.experiment_pages(store["client"])
    opened = json.loads(pages[ui_state.browser_state_key(store["experiment_id"])])
    assert opened["columnWidths"][ui_state.RUN_NAME_COLUMN] == widths[ui.DEFAULT_VIEW_ID]


def test_the_name_column_grows_with_the_longest_name_up_to_a_bound():
    run = "minibatch lr=0.03 B=3500 [fixed_lr] rerun seed=109"
    assert ui.name_width() == ui_state.RUN_NAME_WIDTH
    assert ui.name_width(["a"]) == ui_state.RUN_NAME_WIDTH  # never narrower than the UI's own width
    assert ui.name_width([run]) >= ui.PIXELS_PER_CHARACTER * len(run) > ui_state.RUN_NAME_WIDTH
    assert ui.name_width([run, run + "-longer"]) > ui.name_width([run])
    assert ui.name_width(group_names=[run]) > ui.name_width([run])  # "Group: ", expander and run count
    assert ui.name_width(["x" * 500]) == ui.NAME_WIDTH_MAX  # a runaway name does not push every column away


def test_the_run_name_column_width_is_set_as_the_installed_mlflow_ui_reads_it():
    bundle = "\n".join(
        p.read_text(errors="replace") for p in (Path(mlflow.__file__).parent / "server/js/build/static/js").glob("*.js")
    )
    # the column's id: `attributes.\`Run Name\``, the format column() writes
    assert '(e,t)=>e+".`"+t+"`"' in bundle, REFRESH
    assert re.search(r'[\w$.]+\.RUN_NAME\]:\(0,[\w$]+\.GF\)\([\w$.]+\.ATTRIBUTES,"Run Name"\)', bundle), REFRESH
    assert ui_state.RUN_NAME_COLUMN == ui_state.column("attributes", "Run Name")
    # its own width (what optlab's widths replace), resizable with no maximum
    definition = re.search(
        r'headerName:[\w$.]+\.RUN_NAME,colId:[^{}]{0,200}cellRenderer:"RunNameCellRenderer".{0,600}?'
        r"initialWidth:[\w$]+\?void 0:(\d+),",
        bundle,
    )
    assert definition and int(definition.group(1)) == ui_state.RUN_NAME_WIDTH, REFRESH
    assert "maxWidth" not in definition.group(0), REFRESH
    # the page state's columnWidths applied to every column its columnOrder lists
    applied = re.search(r"columnOrder:([\w$]+),columnWidths:([\w$]+)\}=[\w$]+\.current;.{0,200}", bundle)
    assert applied, REFRESH
    assert re.search(r"\{colId:([\w$]+),width:[\w$]+\[\1\]\}", applied.group(0)), REFRESH
    assert re.search(r"applyColumnState\(\{state:[\w$]+,applyOrder:!0\}\)", applied.group(0)), REFRESH


def test_the_views_read_in_bulk_are_the_ones_mlflows_client_reads(store, monkeypatch):
    """On SQLite the runs and work-axis histories come from plain queries, with no per-run history call;
    through MLflow's client (any other store) the views are the same."""
    from optlab.tracking import bulk_reads

    c, experiment_id = store["client"], store["experiment_id"]
    calls = []
    monkeypatch.setattr(c, "get_metric_history", lambda *a, **k: calls.append(a) or [])
    monkeypatch.setattr(c, "search_runs", lambda *a, **k: calls.append(a) or [])
    bulk = ui.views(saved_views.read_workloads(c, experiment_id))
    assert calls == []
    monkeypatch.undo()
    monkeypatch.setattr(saved_views, "runs_with_tags", lambda *a: None)
    monkeypatch.setattr(bulk_reads, "database", lambda uri: None)
    through_mlflow = ui.views(saved_views.read_workloads(c, experiment_id))
    assert bulk == through_mlflow
    assert bulk["optlab-wide"][1] == view(store, "optlab-wide")
    scales = {c["xAxisScaleType"] for c in bulk["optlab-wide"][1]["compareRunCharts"] if c["selectedXAxisMetricKey"]}
    assert scales == {"log"}  # the histories were read: work spans three decades


def test_views_with_a_line_per_configuration_lay_one_chart_per_row_the_default_view_the_uis_own(store):
    for view_id in ("optlab-wide", "optlab-wide-configurations", "optlab-batches", "optlab-batches-configurations"):
        sections = view(store, view_id)["compareRunSections"]
        assert sections and {s.get("columns") for s in sections} == {ui.CHARTS_PER_ROW}, view_id
    # one line per run: no layout fits a hundred legend entries, the UI keeps its three charts per row
    assert all("columns" not in s for s in view(store, ui.DEFAULT_VIEW_ID)["compareRunSections"])


def test_the_default_view_draws_no_run_until_ticked_a_workload_view_one_line_per_configuration(store):
    # a line per run, of several workloads in one chart: the workload views draw the curves
    assert view(store, ui.DEFAULT_VIEW_ID)["runsHiddenMode"] == "HIDE_ALL"
    for view_id in ("optlab-wide", "optlab-batches"):
        state = view(store, view_id)
        assert state["runsHiddenMode"] == "SHOW_ALL" and state["useGroupedValuesInCharts"] is True, view_id
    bundle = "\n".join(
        p.read_text(errors="replace") for p in (Path(mlflow.__file__).parent / "server/js/build/static/js").glob("*.js")
    )
    assert 'e.HIDEALL="HIDE_ALL"' in bundle and 'e.SHOWALL="SHOW_ALL"' in bundle, REFRESH


def test_the_chart_layout_is_set_as_the_installed_mlflow_ui_reads_it():
    bundle = "\n".join(
        p.read_text(errors="replace") for p in (Path(mlflow.__file__).parent / "server/js/build/static/js").glob("*.js")
    )
    # a section's cards per row and height: `columns` (3 when absent) and `cardHeight` (360)
    layout = re.search(
        r"\?1:null!==\(([\w$]+)=[\w$]+\.columns\)&&void 0!==\1\?\1:(\d+),"
        r"[\w$]+=null!==\(([\w$]+)=[\w$]+\.cardHeight\)&&void 0!==\3\?\3:(\d+)",
        bundle,
    )
    assert layout and layout.group(2) == "3", REFRESH
    # kept in the section's entry of compareRunSections (what a view saves), 1 to 5 per row as the UI sets it
    assert re.search(r"compareRunSections:[^;]{0,120}\.map\(([\w$]+)=>\1\.uuid===[\w$]+\?\{\.\.\.\1,columns:", bundle)
    assert re.search(r"\[1,2,3,4,5\]\.map\(([\w$]+)=>\(\{cols:\1,", bundle), REFRESH
    assert 1 <= ui.CHARTS_PER_ROW <= 5
    card = json.loads(SAMPLE.read_text())["state"]["compareRunSections"][0]
    assert card["columns"] == 1, REFRESH
    # why fewer per row: the legend box under a chart is a fixed height (32 px; 100 full screen) that wraps
    # its entries and scrolls, whatever the card's height; a wider card fits more entries in its two lines
    legend = re.search(
        r"\(\{labelData:[\w$]+,fullScreen:([\w$]+),children:[\w$]+\}\)=>\{[^;]{0,40},([\w$]+)=\1\?100:(\d+),", bundle
    )
    assert legend and legend.group(3) == "32", REFRESH
    assert re.search(r'\{display:"flex",flexWrap:"wrap",height:[\w$]+,[^}]{0,120}overflowY:"auto"', bundle), REFRESH


def test_the_installed_mlflow_ui_prints_metric_cells_unformatted():
    """Why the workload views list no metric column: the runs table takes a metric column's formatter from a
    table of known metrics that MLflow's open-source UI leaves empty, and copies each value into its row as
    stored; no saved state or setting rounds them (the configurations view shows the rounded summaries)."""
    changed = (
        "MLflow's runs table may format metric cells now: read the metric column's definition in the UI bundle "
        '(headerName:"Metrics"); if it rounds, the workload views can list metric columns (tracking/ui.py)'
    )
    chunks = [
        p.read_text(errors="replace") for p in (Path(mlflow.__file__).parent / "server/js/build/static/js").glob("*.js")
    ]
    pattern = r'headerName:"Metrics",groupId:[\w$.]+\.METRICS,.{0,200}?,([\w$]+)=([\w$]+)\.g\[e\]'
    chunk, metrics = next(((c, m) for c in chunks if (m := re.search(pattern, c))), (None, None))
    assert metrics, changed
    formatter, table = metrics.groups()
    column_def = chunk[metrics.start() : metrics.start() + 1200]
    assert f"valueFormatter:null==={formatter}||void 0==={formatter}?void 0:{formatter}.valueFormatter" in column_def, (
        changed
    )
    # the table's module, imported in the same module as the column (the nearest import under that name)
    imports = [
        (abs(m.start() - metrics.start()), m.group(1))
        for m in re.finditer(rf"[,\s]{re.escape(table)}=[\w$]+\((\d+)\)", chunk)
    ]
    assert imports, changed
    module = min(imports)[1]
    assert any(f'{module}(e,t,n){{"use strict";n.d(t,{{g:()=>r}});const r={{}}}}' in c for c in chunks), changed
    # each run's metric value goes into its row as it is
    stored = (
        r"for\(const\{key:([\w$]+),value:([\w$]+)\}of [\w$]+\)\(\2\|\|\(0,[\w$]+\.isNumber\)\(\2\)\)"
        r"&&\([\w$]+\[`\$\{[\w$]+\}-\$\{\1\}`\]=\2\)"
    )
    assert any(re.search(stored, c) for c in chunks), changed
