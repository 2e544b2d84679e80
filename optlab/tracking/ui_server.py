"""The `optlab` MLflow server app: MLflow's own server whose UI opens on runs, not on GenAI traces.

MLflow 3.17's UI chooses between its GenAI pages and its model-training pages with a per-browser
switch (localStorage `mlflow.workflowType_v1`, GenAI until the user flips it); an experiment's
`mlflow.experimentKind` tag does not override it. This app is MLflow's server with one addition:
the page that loads the UI carries a few lines of script that set that switch to *Model training*
(and keep MLflow's assistant panel from opening over the runs) when the browser has no choice of its
own yet. A choice the user makes later in the UI is kept. It also gives every optlab experiment the
runs page it opens on when clicked (the UI keeps that page per browser in localStorage): optlab's
default view (tracking/ui.py: the reported runs with workload, strategy and metric columns), again only
where the browser has no page of its own for that experiment yet. Nothing else is changed.

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


def defaults_script(extra: dict[str, str] | None = None) -> str:
    entries = json.dumps({**BROWSER_DEFAULTS, **(extra or {})}).replace("</", "<\\/")  # no early </script>
    return (
        f'<script id="{MARKER}">(function(){{try{{var d={entries};for(var k in d)'
        f"{{if(window.localStorage.getItem(k)===null)window.localStorage.setItem(k,d[k]);}}}}"
        f"catch(e){{}}}})();</script>"
    )


def inject(page: str, extra: dict[str, str] | None = None) -> str:
    """The UI's index page with the defaults script (and `extra` localStorage entries) as the first thing
    in <head> (before MLflow's own script reads the storage). Idempotent."""
    if MARKER in page or "<head>" not in page:
        return page
    return page.replace("<head>", "<head>" + defaults_script(extra), 1)


def _store_pages() -> dict[str, str]:
    from mlflow import MlflowClient

    try:
        return experiment_pages(MlflowClient(os.environ.get("MLFLOW_TRACKING_URI")))
    except Exception:  # noqa: BLE001 - a store that cannot be read leaves the UI's own defaults
        return {}


def _add_defaults(response):
    from flask import request

    # "serve" is MLflow's view for the UI's index page (the only HTML page it serves)
    if request.endpoint == "serve" and response.status_code == 200 and response.mimetype == "text/html":
        response.direct_passthrough = False
        response.set_data(inject(response.get_data(as_text=True), _store_pages()))
    return response


def create_app(app=None):
    """MLflow's server app with the defaults script; wrapped for uvicorn as MLflow wraps its own."""
    if app is None:
        from mlflow.server import app
    app.after_request(_add_defaults)
    if os.environ.get("_MLFLOW_SGI_NAME", "uvicorn") == "uvicorn":
        from mlflow.server.fastapi_app import create_fastapi_app

        return create_fastapi_app(app)
    return app
