"""Actions of the refcluster extension: faults on the run's embedded cluster.

Each is one call of the fault API (cluster.deploy.faults), which records its window in the
run's faults.csv; each returns that window. A fault the API cannot make (an unknown node
or rack, a node already down, a run against an existing cluster) fails the action with a
one-line reason. ``restore`` is the rollback: it undoes whatever is still in force.
"""

import time
from contextlib import contextmanager

from chaoslib.exceptions import ActivityFailed

from cluster.client.client import Client
from cluster.deploy.faults import FaultWindow
from cluster.deploy.local import info_request
from cluster.deploy.local_cluster import parse_info_kv
from cluster.wire.result_codes import AerospikeError

from . import session

__all__ = ["kill_node", "restart_node", "pause_node", "kill_rack", "restart_rack", "hold", "restore",
           "partition", "heal", "slow_links", "fill_devices", "free_space", "stop_safety_writes"]


@contextmanager
def _fault():
    """The run's fault API; its errors as ActivityFailed with their one-line reason."""
    faults = session.current().require_faults()
    try:
        yield faults
    except (ValueError, RuntimeError, TimeoutError) as exc:
        raise ActivityFailed(str(exc).splitlines()[0]) from None


def _sleep(seconds: float) -> None:
    """Sleep in short steps: the signal of a Ctrl-C may reach any thread of the process, and
    only the main thread's next step (not one long sleep) turns it into KeyboardInterrupt."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.2))


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
            _sleep(seconds)
        finally:
            faults.resume(node)
        return _window(window)


def hold(seconds: float) -> float:
    """Keep things as they are for ``seconds`` (a repair window). Use it rather than a long
    ``pauses`` entry: Chaos Toolkit's pause is one long sleep that a Ctrl-C received by
    another thread of the process does not interrupt."""
    if not seconds >= 0:
        raise ActivityFailed(f"seconds must be >= 0, got {seconds}")
    _sleep(seconds)
    return seconds


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


# -- network faults and full devices (partition_heal, slow_link, capacity_overflow) -------

FILL_SET = "fill"  # capacity_overflow's large records, deleted again by free_space
_fills: dict[int, tuple[FaultWindow, int]] = {}  # id(run) -> its open fill window, keys attempted


def partition(groups: str, mode: str = "drop") -> dict:
    """Split the node links: ``groups`` as "n1|n2,n3" (nodes in no group form one more);
    ``drop`` blackholes the links (connections stay open), ``refuse`` closes them. Clients
    still reach every node. Ends with heal or restore."""
    parsed = [[name.strip() for name in group.split(",") if name.strip()] for group in groups.split("|")]
    with _fault() as faults:
        return _window(faults.partition(parsed, mode=mode))


def heal() -> list[dict]:
    """Remove every network fault of the run (partition, latency, ...); their windows."""
    with _fault() as faults:
        return [_window(window) for window in faults.heal()]


def stop_safety_writes() -> int:
    """Stop the safety workload's writes (its reads go on; chaos.safety stop_writes): before a
    heal, so that the final read-back sees what the heal kept. The writes acknowledged so far."""
    return session.current().safety.stop_writes()


def slow_links(node: str, ms: int, jitter: int = 0, channel: str = "fabric", outgoing_only: bool = False) -> list[dict]:
    """Delay the messages on ``channel`` (fabric: replica writes, their acks, migrations)
    between ``node`` and each other node by ``ms`` (± ``jitter``), both ways unless
    ``outgoing_only``; one latency window for all those links (targets: ``node``, then its peers)."""
    with _fault() as faults:
        peers = [name for name in faults.cluster.nodes if name != node]
        return [_window(faults.latency(node, peers, ms, jitter, channels=[channel], one_way=outgoing_only))]


def _stop_writes() -> dict[str, bool]:
    from .probes import _node_addresses

    state = {}
    for name, address in _node_addresses().items():
        try:
            reply = info_request(*address, [f"namespace/{session.NAMESPACE}"], timeout=1.0)
            state[name] = parse_info_kv(reply[f"namespace/{session.NAMESPACE}"]).get("stop_writes") == "true"
        except OSError:
            pass  # a node that does not answer is not judged
    return state


def fill_devices(record_kib: int = 64, timeout_s: float = 60.0) -> dict:
    """Write ``record_kib`` KiB records into set "fill" until every running node's namespace
    is in stop-writes (a genuinely full device, not a lowered threshold). Opens a "fill"
    window in faults.csv, closed by free_space. Writes refused with 8 on the way are counted
    (a node in stop-writes refuses what it masters while the others still fill)."""
    if record_kib < 1 or not timeout_s > 0:
        raise ActivityFailed(f"record_kib must be >= 1 and timeout_s > 0, got {record_kib}, {timeout_s}")
    run = session.current()
    if id(run) in _fills:
        raise ActivityFailed("the devices are already being filled; free_space first")
    with _fault() as faults:  # recorded by the fault API, so that the probes see a fault in force
        window = faults.record("fill", sorted(_stop_writes()))
    client = Client({"hosts": run.hosts}).connect()
    payload, codes, attempted = bytes(record_kib * 1024), {}, 0
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if attempted % 10 == 0 and all((state := _stop_writes()).values()) and state:
                break
            if time.monotonic() >= deadline:
                raise ActivityFailed(f"not every node in stop-writes after {timeout_s} s: {_stop_writes()}")
            try:
                client.put((session.NAMESPACE, FILL_SET, attempted), {"b": payload})
                code = 0
            except AerospikeError as exc:
                code = exc.code
            codes[code] = codes.get(code, 0) + 1
            attempted += 1
    finally:
        client.close()
        _fills[id(run)] = (window, attempted)  # free_space deletes what was attempted, even on failure
    return {"records_written": codes.get(0, 0), "result_codes": {str(k): v for k, v in sorted(codes.items())},
            "mib_written": round(codes.get(0, 0) * record_kib / 1024, 1), "seconds": round(time.time() - window.start, 1)}


def free_space(timeout_s: float = 60.0) -> dict:
    """Delete the fill records (deletes are allowed in stop-writes) and wait until no node is
    in stop-writes any more; closes the fill window. Nothing to do without a fill (rollback)."""
    run = session.active()
    if run is None or id(run) not in _fills:
        return {"deleted": 0}
    window, attempted = _fills.pop(id(run))
    client = Client({"hosts": run.hosts}).connect()
    deleted, failed = 0, {}
    try:
        for key in range(attempted):
            try:
                client.remove((session.NAMESPACE, FILL_SET, key))
                deleted += 1
            except AerospikeError as exc:
                if exc.code != 2:  # never written (refused with 8) or already deleted
                    failed[exc.code] = failed.get(exc.code, 0) + 1
    finally:
        client.close()
    deadline = time.monotonic() + timeout_s
    while any(_stop_writes().values()):
        if time.monotonic() >= deadline:
            raise ActivityFailed(f"still in stop-writes {timeout_s} s after the deletes: {_stop_writes()}")
        time.sleep(0.2)
    with _fault() as faults:
        faults.end(window)
    if failed:
        raise ActivityFailed(f"deletes failed with result codes {failed}")
    return {"deleted": deleted, "seconds": round(window.end - window.start, 1)}
