"""Time every HTTP request this Python process makes, for `make cluster-bench`.

Python imports `sitecustomize` at start-up from any folder on sys.path: the benchmark puts this
folder on PYTHONPATH (which optlab hands on to its pool and Ray workers) and sets
OPTLAB_HTTP_TRACE=DIR. Each request through `requests` (how MLflow's client reaches a tracking
server, artifact uploads included) appends one line to DIR/<pid>.tsv: start time, seconds, method,
host, URL path, status. Without OPTLAB_HTTP_TRACE nothing is patched.
"""

import os

_TRACE_DIR = os.environ.get("OPTLAB_HTTP_TRACE")

if _TRACE_DIR:
    import time
    from urllib.parse import urlsplit

    import requests.sessions

    _request = requests.sessions.Session.request

    def _timed_request(self, method, url, *args, **kwargs):
        started, status = time.time(), "error"
        clock = time.perf_counter()
        try:
            response = _request(self, method, url, *args, **kwargs)
            status = str(response.status_code)
            return response
        finally:
            seconds = time.perf_counter() - clock
            parts = urlsplit(url)
            with open(os.path.join(_TRACE_DIR, f"{os.getpid()}.tsv"), "a") as out:
                out.write(f"{started:.6f}\t{seconds:.6f}\t{method}\t{parts.netloc}\t{parts.path}\t{status}\n")

    requests.sessions.Session.request = _timed_request
