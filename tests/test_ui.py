"""What optlab writes for MLflow's UI: experiment kind and description, the saved runs view, run colours,
the sweep parent's description, and the `optlab` server app that opens the UI on runs."""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib.metadata import entry_points

import pytest
from sweep_helpers import TUNED_PAIR, write_spec

from optlab import palette
from optlab.tracking import saved_views, ui, ui_server, ui_state

DESCRIPTION = "minibatch vs adam on digits, lr tuned per strategy"


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    from optlab.sweeps import load, run_sweep
    from optlab.tracking.store import client

    home = tmp_path_factory.mktemp("desk")
    path = write_spec(home, TUNED_PAIR, name="desk", description=DESCRIPTION)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPTLAB_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        report = run_sweep(load(path), progress=False)
        c = client()
        experiment = c.get_experiment_by_name("desk")
        runs = c.search_runs([experiment.experiment_id])
        yield {"home": home, "client": c, "experiment": experiment, "runs": runs, "report": report}


def test_a_sweep_experiment_is_model_training_described_and_has_its_views(swept):
    tags = swept["experiment"].tags
    assert tags[ui.EXPERIMENT_KIND_TAG] == "custom_model_development"
    assert tags[ui.NOTE_TAG] == DESCRIPTION
    workloads = {r.data.tags["optlab.workload"] for r in swept["runs"] if r.data.tags.get("optlab.role") == "rerun"}
    assert len(workloads) == 1
    workload = workloads.pop()
    groups = ui.read_view(tags[ui.VIEW_TAG_PREFIX + f"optlab-{ui.slug(workload)}-configurations"])
    assert groups["searchFilter"] == f"tags.`optlab.workload` = '{workload}' AND tags.`optlab.role` = 'group'"
    assert "metrics.`final/val_accuracy/ci_low`" in groups["selectedColumns"]
    state = ui.read_view(tags[ui.VIEW_TAG_PREFIX + f"optlab-{ui.slug(workload)}"])
    assert state["runsHiddenMode"] == "SHOW_ALL"  # every run drawn, not the first 10
    # no metric column: the UI would print every stored digit (the configurations view has 4 significant)
    assert state["selectedColumns"][0] == "tags.`optlab.strategy`"
    assert not any(c.startswith("metrics.") for c in state["selectedColumns"])
    # grouped by the runs' short configuration name: the legend says the strategy, nothing else here
    assert state["groupBy"]["groupByKeys"] == [{"mode": "tag", "groupByData": ui.CONFIG_TAG}]
    shown = swept["client"].search_runs([swept["experiment"].experiment_id], state["searchFilter"])
    assert len(shown) == 4 and {r.data.tags["optlab.role"] for r in shown} == {"rerun"}
    assert {r.data.tags[ui.CONFIG_TAG] for r in shown} == {"minibatch", "adam"}
    sections = {s["uuid"]: s for s in state["compareRunSections"]}
    counters = [c for c in state["compareRunCharts"] if c["metricKey"] in ui.COUNTERS and c["xAxisKey"] == "step"]
    assert counters and {sections[c["metricSectionId"]]["display"] for c in counters} == {False}
    leading = [c for c in state["compareRunCharts"] if sections[c["metricSectionId"]]["display"]]
    assert {c["metricKey"] for c in leading} <= {"val_accuracy", "train_loss"}
    assert {c["selectedXAxisMetricKey"] for c in leading} == {"gradient_equivalents", "wall_time"}


def test_each_run_group_of_a_workload_view_is_coloured_as_its_strategy(swept):
    tags = swept["client"].get_experiment(swept["experiment"].experiment_id).tags
    colors = ui_state.unpack(tags[ui.GROUP_COLORS_TAG])
    reruns = [r for r in swept["runs"] if r.data.tags.get("optlab.role") == "rerun"]
    workload = reruns[0].data.tags["optlab.workload"]
    keys = ui.read_view(tags[ui.VIEW_TAG_PREFIX + f"optlab-{ui.slug(workload)}"])["groupBy"]["groupByKeys"]
    for run in reruns:  # the id the UI gives the run's group, from the view's own grouping keys
        values = [
            (
                k["mode"],
                k["groupByData"],
                (run.data.tags if k["mode"] == "tag" else run.data.params).get(k["groupByData"]),
            )
            for k in keys
        ]
        assert colors[ui_state.group_id(values)] == palette.color(run.data.tags["optlab.strategy"])
    assert len(colors) == 2  # minibatch and adam


def test_the_parent_run_says_what_the_sweep_compares_and_how_to_read_it(swept):
    parent = [r for r in swept["runs"] if r.data.tags.get("optlab.role") == "parent"]
    assert len(parent) == 1
    note = parent[0].data.tags[ui.NOTE_TAG]
    assert note.startswith("minibatch vs adam on digits")
    assert "`minibatch`, `adam`" in note and "lr ∈ {0.003, 0.03, 0.1, 0.5}" in note
    assert "`train_loss`" in note and "optlab.selected=true" in note
    assert "Seeds**: 0" in note and ui.DEFAULT_VIEW_NAME in note
    assert ui.WORKLOAD_VIEW_NAME.format(workload="<workload>") in note


def test_every_run_carries_its_strategys_colour(swept):
    children = [r for r in swept["runs"] if r.data.tags.get("optlab.role") not in ("parent", "group")]
    assert len(children) == 8  # 4 tuning trials, 4 reruns
    groups = [r for r in swept["runs"] if r.data.tags.get("optlab.role") == "group"]
    assert len(groups) == 2 and all(
        g.data.tags[ui.RUN_COLOR_TAG] == palette.color(g.data.tags["optlab.strategy"]) for g in groups
    )
    for run in children:
        assert run.data.tags[ui.RUN_COLOR_TAG] == palette.color(run.data.tags["optlab.strategy"])


def test_a_view_the_user_changed_is_kept_and_the_description_follows_the_file(swept):
    c, experiment_id = swept["client"], swept["experiment"].experiment_id
    c.set_experiment_tag(experiment_id, ui.VIEW_TAG_PREFIX + ui.DEFAULT_VIEW_ID, '{"name": "mine"}')
    ui.describe_experiment(c, experiment_id, "a new description")
    saved_views.save_views(c, experiment_id)
    tags = c.get_experiment(experiment_id).tags
    assert tags[ui.VIEW_TAG_PREFIX + ui.DEFAULT_VIEW_ID] == '{"name": "mine"}'
    assert tags[ui.NOTE_TAG] == "a new description"
    ui.describe_experiment(c, experiment_id)  # no description given: the existing one stays
    assert c.get_experiment(experiment_id).tags[ui.NOTE_TAG] == "a new description"


def test_view_url_opens_the_saved_view_in_model_training_mode():
    url = ui.view_url("http://127.0.0.1:5000/", "7")
    assert url == (
        "http://127.0.0.1:5000/#/experiments/7/runs?viewStateShareKey=optlab-reruns&workflowType=machine_learning"
    )


def test_saved_view_is_stored_as_the_ui_compresses_it():
    state = ui.default_state(ui.Workloads())
    value = json.loads(ui.saved_view(ui.DEFAULT_VIEW_NAME, state, now_ms=1))
    assert value["name"] == ui.DEFAULT_VIEW_NAME and value["createdAt"] == 1
    assert value["state"].startswith("deflate;")
    assert ui.read_view(ui.saved_view(ui.DEFAULT_VIEW_NAME, state)) == state


def test_server_app_sets_the_ui_defaults_before_mlflow_reads_them():
    page = '<!doctype html><html><head><meta charset="utf-8"/><script defer src="main.js"></script></head></html>'
    injected = ui_server.inject(page)
    assert injected.index(ui_server.MARKER) < injected.index("main.js")
    assert ui_server.inject(injected) == injected  # idempotent
    assert '"mlflow.workflowType_v1": "\\"machine_learning\\""' in injected
    assert "getItem(k)===null" in injected  # a choice the browser already has is kept


def test_server_app_is_registered_for_mlflow_server_app_name():
    found = {e.name: e.value for e in entry_points(group="mlflow.app")}
    assert found.get("optlab") == "optlab.tracking.ui_server:create_app"


@pytest.mark.parametrize("prefix", ["", "/mlflow"])
def test_server_app_serves_its_routes_under_mlflows_prefix(monkeypatch, prefix):
    import flask

    from optlab.tracking import end_route, histories_route, points_route, runs_route, start_route, tags_route

    monkeypatch.setenv("_MLFLOW_SGI_NAME", "gunicorn")  # the Flask app itself, not wrapped for uvicorn
    monkeypatch.setenv("_MLFLOW_STATIC_PREFIX", prefix)  # what `mlflow server --static-prefix` sets
    app = ui_server.create_app(flask.Flask("mlflow_like"))
    ui_server.create_app(app)  # a second call adds nothing
    routes = (start_route, points_route, end_route, tags_route, histories_route, runs_route)
    served = {r.endpoint: r for r in app.url_map.iter_rules()}
    ours = [
        (r.rule, r.methods - {"OPTIONS"})
        for r in app.url_map.iter_rules()
        if r.rule.startswith(f"{prefix}/api/2.0/optlab/")
    ]
    assert sorted(ours) == sorted((prefix + route.PATH, {"POST"}) for route in routes)
    assert all(served[route.ENDPOINT].rule == prefix + route.PATH for route in routes)


def test_optlab_ui_refuses_a_server_uri_and_a_bad_port_in_one_line(capsys):
    from optlab.cli import main

    assert main(["ui", "--tracking-uri", "http://mlflow.example:5000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("optlab: error:") and "--app-name optlab" in err and err.count("\n") == 1
    assert main(["ui", "--port", "0"]) == 2
    assert "--port" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the injected script")
def test_the_injected_script_adds_group_colours_and_keeps_the_users(tmp_path):
    from optlab.tracking.ui_state import RUN_COLORS_KEY

    def run_script(store: dict, colors: dict) -> dict:
        body = ui_server.defaults_script(colors=colors).split(">", 1)[1].rsplit("</script>", 1)[0]
        storage = (
            "var window={localStorage:{getItem:function(k){return k in store?store[k]:null;},"
            "setItem:function(k,v){store[k]=String(v);}}};"
        )
        program = tmp_path / "run.js"
        program.write_text(f"var store={json.dumps(store)};{storage}{body}\nconsole.log(JSON.stringify(store));")
        result = subprocess.run(["node", str(program)], capture_output=True, text=True, timeout=60, check=True)
        return json.loads(result.stdout)

    user = {"tag.optlab.strategy.sgd": "#123456", "some-run-id": "#abcdef"}
    first = {"tag.optlab.strategy.adam": "#D55E00", "tag.optlab.strategy.sgd": "#E69F00"}
    store = run_script({RUN_COLORS_KEY: json.dumps(user)}, first)
    assert json.loads(store[RUN_COLORS_KEY]) == {
        "tag.optlab.strategy.sgd": "#123456",  # the user's pick is kept
        "some-run-id": "#abcdef",
        "tag.optlab.strategy.adam": "#D55E00",  # optlab's added
    }
    # the store's colours change (views rewritten): optlab's earlier colour is replaced, the user's still kept
    store = run_script(store, {"tag.optlab.strategy.adam": "#414487", "tag.optlab.strategy.sgd": "#2A788E"})
    colors = json.loads(store[RUN_COLORS_KEY])
    assert colors["tag.optlab.strategy.adam"] == "#414487" and colors["tag.optlab.strategy.sgd"] == "#123456"


def test_the_servers_optlab_starts_skip_mlflows_job_queue_unless_the_user_asks_for_it():
    assert ui_server.server_env({"PATH": "/bin"}) == {"PATH": "/bin", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    asked = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true"}
    assert ui_server.server_env(asked) == asked
