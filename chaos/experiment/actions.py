"""Actions of the refcluster extension: faults on the run's embedded cluster.

Each is one call of the fault API (cluster.deploy.faults), which records its window in the
run's faults.csv; each returns that window. A fault the API cannot make (an unknown node
or rack, a node already down, a run against an existing cluster) fails the action with a
one-line reason. ``restore`` is the rollback: it undoes whatever is still in force.
"""

import time
from contextlib import contextmanager

from chaoslib.exceptions import ActivityFailed

from cluster.deploy.faults import FaultWindow

from . import session

__all__ = ["kill_node", "restart_node", "pause_node", "kill_rack", "restart_rack", "restore"]


@contextmanager
def _fault():
    """The run's fault API; its errors as ActivityFailed with their one-line reason."""
    faults = session.current().require_faults()
    try:
        yield faults
    except (ValueError, RuntimeError, TimeoutError) as exc:
        raise ActivityFailed(str(exc).splitlines()[0]) from None


def _window(window: FaultWindow | None) -> dict | None:
    return None if window is None else {"kind": window.kind, "targets": list(window.targets),
                                        "start": window.start, "end": window.end}


def kill_node(node: str) -> dict:
    """SIGKILL one node (nothing flushed); it stays down until restart_node or restore."""
    with _fault() as faults:
        return _window(faults.kill(node))


def restart_node(node: str, wipe: bool = False) -> dict:
    """Start a node again (stopping it first if it runs), with its data files deleted if
    ``wipe`` (a replaced disk); returns once the cluster has re-formed."""
    with _fault() as faults:
        return _window(faults.restart(node, wipe=wipe))


def pause_node(node: str, seconds: float) -> dict:
    """Freeze a node (SIGSTOP) for ``seconds``, as a long GC pause does, then resume it
    (SIGCONT) — also when the run is interrupted meanwhile."""
    if not seconds > 0:
        raise ActivityFailed(f"seconds must be > 0, got {seconds}")
    with _fault() as faults:
        window = faults.pause(node)
        try:
            time.sleep(seconds)
        finally:
            faults.resume(node)
        return _window(window)


def kill_rack(rack: int) -> dict:
    """SIGKILL every running node of ``rack`` at once (its circuit breaker trips)."""
    with _fault() as faults:
        return _window(faults.kill_rack(rack))


def restart_rack(rack: int, wipe: bool = False) -> list[str]:
    """Start every node of ``rack`` again; returns once the cluster has re-formed. The nodes."""
    with _fault() as faults:
        faults.restart_rack(rack, wipe=wipe)
        return [spec.name for spec in faults.cluster.specs if spec.rack == rack]


def restore() -> list[dict]:
    """Undo every fault still in force (resume paused nodes, start killed ones) and wait
    until the cluster has re-formed. Nothing to do without a run or faults."""
    run = session.active()
    if run is None or run.faults is None:
        return []
    with _fault() as faults:
        ended = faults.restore()
        # nodes that a terminal's Ctrl-C stopped are not waited for
        cluster = run.cluster
        cluster.wait_for(lambda: not cluster.running() or cluster.agreed_cluster_key(),
                         run.settings.settle_timeout_s, "the nodes to agree on one cluster")
        return [_window(window) for window in ended]
