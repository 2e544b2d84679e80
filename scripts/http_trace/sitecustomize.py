"""Time every HTTP request this Python process makes, for `make cluster-bench`.

Python imports `sitecustomize` at start-up from any folder on sys.path: the benchmark puts this
folder on PYTHONPATH (which optlab hands on to its pool and Ray workers) and sets
OPTLAB_HTTP_TRACE=DIR. Each request made through the standard library's http.client (which both
MLflow's client, by way of requests and urllib3, and optlab's own REST writer use) appends one line
to DIR/<pid>.tsv: start time, seconds until the answer's status and headers arrived, method, host,
URL path, status. Without OPTLAB_HTTP_TRACE nothing is patched.
"""

import os

_TRACE_DIR = os.environ.get("OPTLAB_HTTP_TRACE")

if _TRACE_DIR:
    import http.client
    import time

    _putrequest = http.client.HTTPConnection.putrequest
    _getresponse = http.client.HTTPConnection.getresponse

    def _started(self, method, url, *args, **kwargs):
        self._optlab_trace = (time.time(), time.perf_counter(), method, url.split("?", 1)[0])
        return _putrequest(self, method, url, *args, **kwargs)

    def _answered(self, *args, **kwargs):
        status = "error"
        try:
            response = _getresponse(self, *args, **kwargs)
            status = str(response.status)
            return response
        finally:
            trace = getattr(self, "_optlab_trace", None)
            if trace is not None:
                self._optlab_trace = None
                started, clock, method, path = trace
                seconds = time.perf_counter() - clock
                with open(os.path.join(_TRACE_DIR, f"{os.getpid()}.tsv"), "a") as out:
                    out.write(f"{started:.6f}\t{seconds:.6f}\t{method}\t{self.host}:{self.port}\t{path}\t{status}\n")

    http.client.HTTPConnection.putrequest = _started
    http.client.HTTPConnection.getresponse = _answered
