"""A local pool of spawned worker processes that die with their parent and whose deaths are seen.

`concurrent.futures.ProcessPoolExecutor` ties nothing to the parent: after a SIGKILL of the parent
its workers keep training and writing (a rerun then races them), and one dead worker breaks the
whole pool (BrokenProcessPool). Here each worker has its own pipe; the parent sends one task at a
time and waits on every pipe and every process sentinel, so it knows which task a dead worker
held, reports it (`on_death`) and starts a replacement while the other workers go on.

Workers die with their parent three ways: on Linux the kernel sends them SIGKILL when the parent
dies (PR_SET_PDEATHSIG); everywhere, a thread in each worker blocks on a "lifeline" pipe that the
parent never writes, so its end of file means the parent is gone; and an idle worker reading its
task pipe sees the same end of file.

Stopping: workers ignore SIGINT (a Ctrl-C reaches the whole process group; the parent decides) and
turn the first SIGTERM into KeyboardInterrupt, so a run they are training is recorded KILLED. The
parent sends SIGTERM to busy workers when it is interrupted, waits `grace` seconds, then kills.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_for

PR_SET_PDEATHSIG = 1


@dataclass
class Death:
    """A worker that died while it held a task."""

    pid: int
    exitcode: int | None
    note: str | None = None

    def describe(self) -> str:
        if self.note:
            return f"worker {self.note} (pid {self.pid})"
        code = self.exitcode
        if code is not None and code < 0:
            try:
                return f"worker died (pid {self.pid}, killed by {signal.Signals(-code).name})"
            except ValueError:
                return f"worker died (pid {self.pid}, signal {-code})"
        return f"worker died (pid {self.pid}, exit code {code})"


class _Worker:
    def __init__(self, ctx, target):
        self.conn, child_conn = ctx.Pipe(duplex=True)
        lifeline_read, self.lifeline = ctx.Pipe(duplex=False)
        self.process = ctx.Process(
            target=worker_main,
            args=(child_conn, lifeline_read, os.getpid(), target, time.time()),
            daemon=True,
            name="optlab-sweep-worker",
        )
        self.process.start()
        child_conn.close()
        lifeline_read.close()
        self.task = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def close(self) -> None:
        for conn in (self.conn, self.lifeline):
            try:
                conn.close()
            except OSError:
                pass


class WorkerPool:
    """Run `target(task)` for every task on `workers` processes.

    `on_result(task, value)` gets each return value, `on_death(task, Death)` each task whose worker
    died (the pool starts a replacement; it may return tasks to queue again), `on_error(task, text)`
    each exception a task raised; `check()` is called about once a second and may raise to stop
    the pool. `start()` spawns the workers ahead of the first task; `run(..., close=False)` keeps them
    for another `run` (then `close()` them)."""

    def __init__(self, workers: int, target, grace: float = 10.0):
        self.workers, self.target, self.grace = workers, target, grace
        self.ctx = multiprocessing.get_context("spawn")  # forking a parent holding torch/SQLite threads is unsafe
        self.pool: list[_Worker] = []

    def start(self) -> None:
        """Spawn every worker now, idle (their start-up then overlaps the caller's own)."""
        while len(self.pool) < self.workers:
            self.pool.append(_Worker(self.ctx, self.target))

    def close(self) -> None:
        self._shutdown()

    def run(self, tasks, on_result, on_death, on_error, check=lambda: None, close: bool = True) -> None:
        queue = deque(tasks)
        finished = False
        try:
            while queue or any(w.task is not None for w in self.pool):
                self._assign(queue)
                busy = [w for w in self.pool if w.task is not None]
                waitables = [w.conn for w in busy] + [w.process.sentinel for w in busy]
                ready = set(wait_for(waitables, timeout=1.0)) if waitables else set()
                for worker in busy:
                    if worker.conn in ready:
                        queue.extend(self._receive(worker, on_result, on_death, on_error) or ())
                    elif worker.process.sentinel in ready:
                        queue.extend(self._died(worker, on_death) or ())
                check()
            finished = True
        except BaseException:
            self._stop_busy()
            raise
        finally:
            if close or not finished:
                self._shutdown()

    def _assign(self, queue: deque) -> None:
        for worker in list(self.pool):
            if worker.task is None and queue:
                task = queue.popleft()
                try:
                    worker.conn.send(task)
                    worker.task = task
                except (OSError, EOFError):
                    queue.appendleft(task)  # it died idle: replaced below
                    self._discard(worker)
        while queue and len(self.pool) < self.workers:
            worker = _Worker(self.ctx, self.target)
            self.pool.append(worker)
            task = queue.popleft()
            worker.conn.send(task)
            worker.task = task

    def _receive(self, worker: _Worker, on_result, on_death, on_error) -> list | None:
        try:
            kind, value = worker.conn.recv()
        except (EOFError, OSError):
            return self._died(worker, on_death)
        task, worker.task = worker.task, None
        if kind == "ok":
            on_result(task, value)
        elif kind == "interrupted":  # someone else sent it SIGTERM: its runs are recorded KILLED
            worker.task = task
            return self._died(worker, on_death, note="was interrupted (SIGTERM)")
        else:
            on_error(task, value)
        return None

    def _died(self, worker: _Worker, on_death, note: str | None = None) -> list | None:
        worker.process.join(timeout=5)
        task = worker.task
        self._discard(worker)
        if task is not None:
            return on_death(task, Death(worker.pid, worker.process.exitcode, note))
        return None

    def _discard(self, worker: _Worker) -> None:
        worker.close()
        if worker in self.pool:
            self.pool.remove(worker)

    def _stop_busy(self) -> None:
        """Interrupted: ask busy workers to stop (their runs are recorded KILLED), then kill stragglers."""
        busy = [w for w in self.pool if w.task is not None and w.process.is_alive()]
        for worker in busy:
            try:
                os.kill(worker.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + self.grace
        for worker in busy:
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))

    def _shutdown(self) -> None:
        for worker in self.pool:
            if worker.task is None:
                try:
                    worker.conn.send(None)
                except (OSError, EOFError):
                    pass
        deadline = time.monotonic() + 5
        for worker in self.pool:
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=5)
            worker.close()
        self.pool = []

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.pool]


# ---- the worker side ------------------------------------------------------------------------
def worker_main(conn, lifeline, parent_pid: int, target, spawned_at: float | None = None) -> None:
    die_with_parent(lifeline, parent_pid)
    if spawned_at is not None:
        from optlab.tracking import accounting

        accounting.mark_spawned(spawned_at)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _interrupt_once)
    try:
        serve(conn, target)
    except KeyboardInterrupt:
        pass  # asked to stop while idle or while replying: nothing left to record


def serve(conn, target) -> None:
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            os._exit(1)  # the parent is gone
        if task is None:
            return
        try:
            reply = ("ok", target(task))
        except KeyboardInterrupt:
            _send(conn, ("interrupted", None))
            return
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which records it
            reply = ("error", f"{type(exc).__name__}: {exc}")
        _send(conn, reply)


def _send(conn, reply) -> None:
    try:
        conn.send(reply)
    except (OSError, EOFError):
        os._exit(1)


def _interrupt_once(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one KeyboardInterrupt: the run's KILLED record must not be cut
    raise KeyboardInterrupt


def die_with_parent(lifeline, parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before the line above
        os._exit(1)

    def watch():
        try:
            lifeline.recv()  # the parent never writes: this returns only at end of file
        except (EOFError, OSError):
            pass
        os._exit(1)

    threading.Thread(target=watch, name="optlab-parent-watch", daemon=True).start()
