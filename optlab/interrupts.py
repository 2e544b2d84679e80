"""SIGTERM (and SIGHUP) handled like SIGINT: the running code gets a KeyboardInterrupt, so a run
in training is recorded KILLED and a sweep stops its workers, instead of the process dying with
runs left RUNNING in the store."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

STOP_SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s)
received: int | None = None  # the stop signal that interrupted this process, once one did


class Terminated(KeyboardInterrupt):
    """A stop signal other than SIGINT; `signum` says which."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def stop_signals_interrupt():
    """Within the block, the first SIGTERM/SIGHUP raises Terminated in the main thread; later ones
    are ignored so the KILLED records the first one triggers are not cut short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum, frame):
        global received
        received = signum  # code that re-raises a plain KeyboardInterrupt loses the exception's signum
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        raise Terminated(signum)

    for s in STOP_SIGNALS:
        previous[s] = signal.signal(s, handler)
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
