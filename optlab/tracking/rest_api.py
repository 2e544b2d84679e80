"""MLflow's REST API (v2.0) on a tracking server, spoken with the standard library only.

Importing MLflow costs about 1.5 s of CPU here (it loads pandas, its GenAI modules, FastAPI); a sweep's
worker that only records runs on a tracking server needs five of its documented endpoints
(`runs/create`, `runs/log-batch`, `runs/update`, `experiments/get`, and the artifact proxy's PUT and
DELETE under `/api/2.0/mlflow-artifacts/artifacts/`), which this sends as MLflow's client sends them:
the same JSON bodies, the same retry rule (HTTP 429 and 5xx and lost connections retried with MLflow's
retry variables, which optlab.tracking.http sets), errors in the words MLflow's client uses, so a
failure reads the same either way (failures.describe).

It is used only where nothing but the URI is needed to reach the server (`usable`): an http(s) URI with
no credentials in it, none of MLflow's authentication, TLS or workspace variables set, no credentials
file, and no request-header plugin installed. Anything else is recorded by MLflow's own client.
"""

from __future__ import annotations

import http.client
import json
import math
import mimetypes
import os
import random
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

from optlab.tracking.uri import is_http

API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
ARTIFACT_SCHEME = "mlflow-artifacts:"
RETRY_STATUSES = (429, 500, 502, 503, 504)  # what MLflow's client retries
# a server without a route answers 404 (405 where the path takes other methods), optlab's own route 501
# where it cannot serve it (tracking/points_route.py), and a proxy in front 413 to a body larger than it
# takes: MLflow's documented route is used instead
NOT_OFFERED = (404, 405, 413, 501)
# a sweep process's bulk routes (tags_route, histories_route) are a shortcut with MLflow's routes behind it:
# a failing one is retried once, then MLflow's client takes over with its own retries
OPTIONAL_RETRIES = 1
STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)  # a kept-alive socket closed
# Any of these changes how MLflow's client talks to the server (credentials, TLS, workspaces, signing).
MLFLOW_ONLY_ENV = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_AUTH",
    "MLFLOW_TRACKING_AWS_SIGV4",
    "MLFLOW_TRACKING_INSECURE_TLS",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH",
    "MLFLOW_TRACKING_SERVER_CERT_PATH",
    "MLFLOW_WORKSPACE",
    "MLFLOW_ENABLE_WORKSPACES",
)
CREDENTIALS_FILE = Path("~/.mlflow/credentials")  # where MLflow's client also reads a user name and password
HEADER_PLUGINS = "mlflow.request_header_provider"  # entry points that add headers to MLflow's requests
_plugins: bool | None = None
# (server, route) pairs a server answered it does not offer: asked once per process
_not_offered: set[tuple[str, str]] = set()


class Unreachable(Exception):
    """No answer after every retry, in MLflow's words ("API request to ... failed with exception ..."), which
    failures.describe turns into one line. Not an OSError: the cause is the server, not a local file."""


class RestError(Exception):
    """An answer other than 200, in MLflow's words: `ERROR_CODE: message`."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.status, self.code = status, code


def usable(uri: str) -> bool:
    """Whether runs on the server at `uri` can be recorded without MLflow's client (see the module)."""
    if not is_http(uri) or "@" in urlsplit(uri).netloc:
        return False
    if any(os.environ.get(name) for name in MLFLOW_ONLY_ENV):
        return False
    return not CREDENTIALS_FILE.expanduser().exists() and not _header_plugins()


def _header_plugins() -> bool:
    global _plugins
    if _plugins is None:
        from importlib.metadata import entry_points

        _plugins = bool(entry_points(group=HEADER_PLUGINS))
    return _plugins


def number(value: float) -> float | str:
    """A metric value as MLflow's client writes it in JSON (protobuf's names for the non-finite ones)."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def mime_type(name: str) -> str:
    """The Content-Type MLflow's client sends with an artifact."""
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


class RestApi:
    """One tracking server, one kept-alive connection (a recorder calls from one thread)."""

    def __init__(self, uri: str, retries: int | None = None):
        parts = urlsplit(uri.rstrip("/"))
        self.uri, self.scheme, self.netloc, self.root = uri.rstrip("/"), parts.scheme, parts.netloc, parts.path
        self.retries = int(os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")) if retries is None else retries
        self.timeout = float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "120"))
        self.backoff = float(os.environ.get("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "2"))
        self.jitter = float(os.environ.get("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "1"))
        self._connection: http.client.HTTPConnection | None = None

    # ---- the endpoints -------------------------------------------------------------------
    def post(self, endpoint: str, body: dict) -> dict:
        return self.call("POST", f"{API}/{endpoint}", json.dumps(body).encode(), "application/json")

    def post_if_offered(self, path: str, body: dict) -> bool:
        """POST `body` to a route beyond MLflow's API (`path` under the server's root); False when the server
        does not offer it (NOT_OFFERED), remembered so that each server is asked once per process. Other
        answers are retried and raised as any call's."""
        return self.answer_if_offered(path, body) is not None

    def answer_if_offered(self, path: str, body: dict, retries: int | None = None) -> dict | None:
        """post_if_offered, with the server's answer (None when the route is not offered); `retries` in place of
        this API's own for this call."""
        if (self.uri, path) in _not_offered:
            return None
        try:
            return self.call("POST", self.root + path, json.dumps(body).encode(), "application/json", retries)
        except RestError as exc:
            if exc.status not in NOT_OFFERED:
                raise
            _not_offered.add((self.uri, path))
            return None

    def get(self, endpoint: str, query: dict[str, str]) -> dict:
        params = "&".join(f"{quote(k)}={quote(str(v))}" for k, v in query.items())
        return self.call("GET", f"{API}/{endpoint}?{params}", None, None)

    def artifact_path(self, artifact_uri: str) -> str | None:
        """The proxy path of an `mlflow-artifacts:` location served by this server, else None."""
        if not artifact_uri.startswith(ARTIFACT_SCHEME):
            return None
        parts = urlsplit(artifact_uri)
        if parts.netloc and parts.netloc != self.netloc:
            return None
        return "/" + "/".join(p for p in (self.root + ARTIFACTS + parts.path).split("/") if p)

    def put_file(self, path: str, name: str, data: bytes) -> None:
        self.send("PUT", f"{path}/{quote(name)}", data, mime_type(name))

    def delete_file(self, path: str, name: str) -> None:
        self.send("DELETE", f"{path}/{quote(name)}", None, None)

    # ---- one request, with MLflow's retry rule --------------------------------------------
    def call(
        self, method: str, path: str, body: bytes | None, content_type: str | None, retries: int | None = None
    ) -> dict:
        data = self.send(method, self.root + path if path.startswith(API) else path, body, content_type, retries)
        return json.loads(data) if data.strip() else {}

    def send(
        self, method: str, path: str, body: bytes | None, content_type: str | None, retries: int | None = None
    ) -> bytes:
        headers = {"Content-Type": content_type} if content_type else {}
        retries = self.retries if retries is None else retries
        for attempt in range(retries + 1):
            if attempt:
                wait = 0.0 if attempt == 1 else self.backoff * 2 ** (attempt - 1)
                time.sleep(wait + random.uniform(0, self.jitter) * (attempt > 1))
            try:
                status, data = self._request(method, path, body, headers)
            except (OSError, http.client.HTTPException) as exc:
                self._close()
                if attempt == retries:
                    raise Unreachable(
                        f"API request to {self.uri}{path} failed with exception {type(exc).__name__}: {exc}"
                    ) from exc
                continue
            if status == 200:
                return data
            if status in RETRY_STATUSES and attempt < retries:
                continue
            if status in RETRY_STATUSES:
                raise Unreachable(
                    f"API request to {self.uri}{path} failed with exception ResponseError: too many {status} "
                    f"error responses"
                )
            raise _error(status, data)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _request(self, method: str, path: str, body: bytes | None, headers: dict) -> tuple[int, bytes]:
        reused = self._connection is not None
        try:
            return self._exchange(method, path, body, headers)
        except STALE:
            if not reused:
                raise
            # the server closed the kept-alive connection while it was idle (uvicorn after 5 s): the request
            # never reached it, so it goes once more on a new connection, as urllib3 does, not as a retry
            self._close()
            return self._exchange(method, path, body, headers)

    def _exchange(self, method: str, path: str, body: bytes | None, headers: dict) -> tuple[int, bytes]:
        if self._connection is None:
            kind = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            self._connection = kind(self.netloc, timeout=self.timeout)
        self._connection.request(method, path, body=body, headers=headers)
        answer = self._connection.getresponse()
        return answer.status, answer.read()

    def close(self) -> None:
        """Close the kept-alive connection (a later call opens a new one)."""
        self._close()

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _error(status: int, data: bytes) -> RestError:
    try:
        found = json.loads(data)
        return RestError(status, str(found["error_code"]), str(found.get("message", "")))
    except (ValueError, KeyError, TypeError):
        return RestError(status, f"HTTP {status}", data[:300].decode(errors="replace"))
