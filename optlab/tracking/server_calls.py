"""Independent calls to a store made several at a time where each is a round trip to a tracking server.

On a server each MLflow call waits on the network and the server, not on this process, so a sweep's
bookkeeping (a tag write per run, a curve read per hundred runs) runs SERVER_CALLS at once; MLflow's client
is safe across threads. Any other store is called one at a time, in order, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from optlab.tracking.uri import is_http

SERVER_CALLS = 4

Item = TypeVar("Item")
Result = TypeVar("Result")


def each_request(client, call: Callable[[Item], Result], items: Sequence[Item]) -> list[Result]:
    """`call(item)` for every item, results in the items' order. On a tracking server several at once, and a
    failed call stops no other: the first error is raised once every call has ended."""
    if not is_http(client.tracking_uri) or len(items) < 2:
        return [call(item) for item in items]
    with ThreadPoolExecutor(max_workers=SERVER_CALLS, thread_name_prefix="optlab-store") as pool:
        futures = [pool.submit(call, item) for item in items]  # all of them, even after a failure
    return [future.result() for future in futures]
