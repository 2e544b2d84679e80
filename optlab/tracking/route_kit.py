"""What the optlab server app's own routes share (points_route, tags_route, histories_route): where a route
is served, MLflow's error JSON and wording, and the server's SQL store.

The routes live under /api/2.0/optlab/, so proxies route them with MLflow's API and MLflow's checks for API
routes (Host header, cross-origin writes) apply, and no MLflow route can take their paths. They rely on
MLflow internals, guarded: the server's store comes from `mlflow.server.handlers._get_tracking_store` (the
one MLflow's own handlers use) and must be MLflow's SQL store with the methods a route names. When one is
missing, or the server keeps runs per workspace (MLflow's own routes filter by workspace; these do not),
a route answers 501 NOT_IMPLEMENTED and the client uses MLflow's documented routes, as it does on a
server without them (404).
"""

from __future__ import annotations

import json
import os

from optlab.tracking.store import as_sql_store

WORKSPACES_ENV = "MLFLOW_ENABLE_WORKSPACES"


def add_rule(app, path: str, endpoint: str, view, methods: tuple[str, ...] = ("POST",)) -> None:
    """Serve `view` at `path` on MLflow's Flask app (under --static-prefix, as MLflow's own routes); once."""
    if endpoint in app.view_functions:
        return
    try:
        from mlflow.server.handlers import _add_static_prefix  # internal, guarded: MLflow's own prefixing
    except ImportError:
        prefixed = path
    else:
        prefixed = _add_static_prefix(path)
    app.add_url_rule(prefixed, endpoint, view, methods=list(methods))


def server_store(internals: tuple[str, ...]):
    """The server's tracking store when it is MLflow's SQL store with every method in `internals` and no
    workspaces, else None (the route is then not offered)."""
    if os.environ.get(WORKSPACES_ENV, "").strip().lower() in ("1", "true", "yes"):
        return None
    try:
        from mlflow.server.handlers import _get_tracking_store  # internal, guarded (see the module)

        store = as_sql_store(_get_tracking_store())
    except Exception:  # noqa: BLE001 - an MLflow whose server is laid out otherwise: the route is not offered
        return None
    if store is None or not all(hasattr(store, name) for name in internals):
        return None
    return store


def oversized(request, most_bytes: int):
    """The 400 for a request body larger than `most_bytes`, else None (read before parsing the body)."""
    if (request.content_length or 0) > most_bytes:
        return answer(400, "INVALID_PARAMETER_VALUE", f"a request can hold at most {most_bytes} bytes")
    return None


def not_offered(what: str):
    return answer(501, "NOT_IMPLEMENTED", f"this server cannot {what}: use MLflow's own routes")


def invalid(path: str, value, message: str) -> str:
    """MLflow's wording for a bad parameter (mlflow.utils.validation.invalid_value)."""
    shown = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return f"Invalid value {shown[:300]} for parameter '{path}' supplied: {message}"


def mlflow_error(exc):
    """The answer MLflow's handlers give for an MlflowException, except that a missing run is bad input
    here (400): a 404 from these routes would read as "no such route"."""
    if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
        return answer(400, "INVALID_PARAMETER_VALUE", exc.message)
    return answer(exc.get_http_status_code(), exc.error_code, exc.message)


def answer(status: int, code: str | None = None, message: str = "", body: dict | None = None):
    """A JSON answer: `body` (or `{}`) for 200, MLflow's error JSON otherwise."""
    from flask import Response

    if code is not None:
        body = {"error_code": code, "message": message}
    return Response(json.dumps(body or {}, allow_nan=False), status=status, mimetype="application/json")
