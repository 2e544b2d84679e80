"""The sweep's worker pool: results, a dead worker's task reported (and re-queued) while the others go
on, exceptions reported, and workers that die with their parent."""

import subprocess
import sys
import time
from pathlib import Path

from fault_helpers import pool_target

from optlab.sweeps.pool import WorkerPool

TESTS = Path(__file__).resolve().parent


def test_a_dead_worker_costs_only_its_task_and_the_pool_goes_on():
    results, deaths, errors = {}, [], {}

    def on_death(task, death):
        deaths.append((task, death))
        return [("ok", 5)] if task == ("die", 2) else []

    tasks = [("ok", 1), ("die", 2), ("ok", 3), ("raise", 4)]
    WorkerPool(2, pool_target).run(
        tasks, lambda t, v: results.__setitem__(t[1], v), on_death, lambda t, text: errors.__setitem__(t[1], text)
    )
    assert results == {1: 10, 3: 30, 5: 50}
    assert [task for task, _ in deaths] == [("die", 2)]
    assert deaths[0][1].describe().startswith("worker died (pid ") and "SIGKILL" in deaths[0][1].describe()
    assert errors == {4: "ValueError: bad task 4"}


def test_workers_die_with_their_parent():
    script = (
        f"import sys; sys.path[:0] = [{str(TESTS)!r}, {str(TESTS.parent)!r}]\n"
        "from fault_helpers import pool_target\n"
        "from optlab.sweeps.pool import WorkerPool\n"
        "pool = WorkerPool(2, pool_target)\n"
        "pool.run([('sleep', 600), ('sleep', 600)], print, print, print,\n"
        "         check=lambda: print('workers', *pool.pids, flush=True))\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = parent.stdout.readline()  # printed once both workers run
        while line and len(line.split()) < 3:
            line = parent.stdout.readline()
        pids = [int(p) for p in line.split()[1:]]
        assert len(pids) == 2 and all(alive(p) for p in pids), line
    finally:
        parent.kill()  # SIGKILL: the parent can do nothing for its workers
        parent.wait()
    deadline = time.monotonic() + 120  # a bound, not a timing claim: on a loaded machine the watch is late
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in pids)


def alive(pid: int) -> bool:
    from optlab.tracking.owners import owner_alive, owner_id

    return owner_alive(f"{owner_id().rpartition(':')[0]}:{pid}")
