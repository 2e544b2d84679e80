"""The `optlab` MLflow server app: MLflow's own server whose UI opens on runs, not on GenAI traces.

MLflow 3.17's UI chooses between its GenAI pages and its model-training pages with a per-browser
switch (localStorage `mlflow.workflowType_v1`, GenAI until the user flips it); an experiment's
`mlflow.experimentKind` tag does not override it. This app is MLflow's server with one addition:
the page that loads the UI carries a few lines of script that set that switch to *Model training*
(and keep MLflow's assistant panel from opening over the runs) when the browser has no choice of its
own yet. A choice the user makes later in the UI is kept. It adds the colours of optlab's run groups
(tracking/ui.py) to the UI's colour map, keeping any colour the user picked for a group: it remembers
the colours it set last (localStorage `optlab.groupColors`) and replaces only those still unchanged.
It also gives every optlab experiment the
runs page it opens on when clicked (the UI keeps that page per browser in localStorage): optlab's
default view (tracking/ui.py: the reported runs with workload, strategy and metric columns), again only
where the browser has no page of its own for that experiment yet. Nothing else of MLflow's is changed.

It also serves optlab's own bulk routes, used instead of MLflow's where the server offers them: a run's start
with its params, its metric points and its end for a sweep's workers (tracking/start_route.py,
points_route.py, end_route.py), the tags and
the curves of many runs and the runs of an experiment with given tags for the sweep process and the reports
(tags_route.py, histories_route.py, runs_route.py).

The servers optlab starts (`optlab ui`, the loopback cluster, the tests' servers) run with SERVER_ENV
unless the user set those variables: MLflow 3.17's server otherwise starts seven job-queue processes for
its GenAI jobs (prompt optimization, scorers), which cost about 14 CPU-seconds at every start and which
optlab's runs never use.

It is registered as the MLflow server plugin `optlab` (entry point group `mlflow.app`), so
`mlflow server --app-name optlab ...` serves it; `optlab ui` (and `make ui`) does that.
"""

from __future__ import annotations

import json
import os

# localStorage entries the UI reads (key -> value as the UI stores it, JSON-encoded): set only when absent
BROWSER_DEFAULTS = {
    "mlflow.workflowType_v1": json.dumps("machine_learning"),
    # the assistant panel opens itself on a first visit and covers a quarter of the runs page
    "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true",
    "mlflow.assistant.panelOpen_v1": "false",
}
MARKER = "optlab-ui-defaults"
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # defaults for the servers optlab starts
SET_COLORS_KEY = "optlab.groupColors"  # localStorage: the group colours this script set last


def server_env(environ: dict[str, str]) -> dict[str, str]:
    """`environ` with SERVER_ENV's defaults where it does not set them."""
    return {**SERVER_ENV, **environ}


def group_colors(client) -> dict[str, str]:
    """The UI's colour map entries of every optlab experiment's run groups (group id -> colour)."""
    from optlab.tracking import ui_state
    from optlab.tracking.ui import GROUP_COLORS_TAG

    colors = {}
    for experiment in client.search_experiments():
        value = (experiment.tags or {}).get(GROUP_COLORS_TAG)
        if value:
            try:
                colors.update(ui_state.unpack(value))
            except (ValueError, TypeError):
                continue  # not a map optlab wrote
    return colors


def experiment_pages(client) -> dict[str, str]:
    """localStorage entries of the runs page each optlab experiment opens on (its default view's state)."""
    from optlab.tracking import ui_state
    from optlab.tracking.ui import DEFAULT_VIEW_ID

    pages = {}
    for experiment in client.search_experiments():
        value = (experiment.tags or {}).get(ui_state.VIEW_TAG_PREFIX + DEFAULT_VIEW_ID)
        if value:
            try:
                state = ui_state.read_state(value)
            except (ValueError, KeyError, TypeError):
                continue  # not a view the UI could open either
            pages[ui_state.browser_state_key(experiment.experiment_id)] = json.dumps(state)
    return pages


def defaults_script(extra: dict[str, str] | None = None, colors: dict[str, str] | None = None) -> str:
    """The script setting absent localStorage entries and adding `colors` to the UI's colour map (a
    colour already in the map is kept when the user picked it, replaced when this script set it)."""
    from optlab.tracking.ui_state import RUN_COLORS_KEY

    entries = json.dumps({**BROWSER_DEFAULTS, **(extra or {})}).replace("</", "<\\/")  # no early </script>
    added = json.dumps(colors or {}).replace("</", "<\\/")
    return (
        f'<script id="{MARKER}">(function(){{try{{var d={entries};for(var k in d)'
        f"{{if(window.localStorage.getItem(k)===null)window.localStorage.setItem(k,d[k]);}}"
        f"var c={added},s=window.localStorage,m={{}},o={{}};"
        f"try{{m=JSON.parse(s.getItem('{RUN_COLORS_KEY}'))||{{}};}}catch(e){{}}"
        f"try{{o=JSON.parse(s.getItem('{SET_COLORS_KEY}'))||{{}};}}catch(e){{}}"
        f"for(var g in c){{if(!(g in m)||m[g]===o[g])m[g]=c[g];o[g]=c[g];}}"
        f"s.setItem('{RUN_COLORS_KEY}',JSON.stringify(m));s.setItem('{SET_COLORS_KEY}',JSON.stringify(o));}}"
        f"catch(e){{}}}})();</script>"
    )


def inject(page: str, extra: dict[str, str] | None = None, colors: dict[str, str] | None = None) -> str:
    """The UI's index page with the defaults script (`extra` localStorage entries, `colors` for the colour
    map) as the first thing in <head> (before MLflow's own script reads the storage). Idempotent."""
    if MARKER in page or "<head>" not in page:
        return page
    return page.replace("<head>", "<head>" + defaults_script(extra, colors), 1)


def _store_defaults() -> tuple[dict[str, str], dict[str, str]]:
    from mlflow import MlflowClient

    try:
        client = MlflowClient(os.environ.get("MLFLOW_TRACKING_URI"))
        return experiment_pages(client), group_colors(client)
    except Exception:  # noqa: BLE001 - a store that cannot be read leaves the UI's own defaults
        return {}, {}


def _add_defaults(response):
    from flask import request

    # "serve" is MLflow's view for the UI's index page (the only HTML page it serves)
    if request.endpoint == "serve" and response.status_code == 200 and response.mimetype == "text/html":
        response.direct_passthrough = False
        response.set_data(inject(response.get_data(as_text=True), *_store_defaults()))
    return response


def create_app(app=None):
    """MLflow's server app with the defaults script and optlab's bulk routes; wrapped for uvicorn as MLflow
    wraps its own."""
    from optlab.tracking import end_route, histories_route, points_route, runs_route, start_route, tags_route

    if app is None:
        from mlflow.server import app
    app.after_request(_add_defaults)
    for route in (start_route, points_route, end_route, tags_route, histories_route, runs_route):
        route.add_route(app)
    if os.environ.get("_MLFLOW_SGI_NAME", "uvicorn") == "uvicorn":
        from mlflow.server.fastapi_app import create_fastapi_app

        return create_fastapi_app(app)
    return app
