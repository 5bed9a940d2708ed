"""Probes of the refcluster extension: the steady state as the load and the cluster see it.

Load probes judge the last ``window_s`` seconds the running YCSB load has written, and
only seconds after the cluster was last quiet: when no fault is active they wait (bounded)
until such a window exists, so that the hypothesis after the method measures the
recovered cluster and not the tail of the fault. While a fault is active (a continuous
hypothesis) they judge the latest window as it is.

Cluster probes ask every node of the run that answers (statistics, namespace/test,
partition-info) and count as the recorder does (chaos.recorder).
"""

import time

from chaoslib.exceptions import ActivityFailed

from chaos.load import recent
from chaos.recorder import full_copies, summarize
from chaos.safety import wait_settled as settled_key
from cluster.deploy.local import info_request
from cluster.deploy.local_cluster import parse_info_kv

from . import session

__all__ = [
    "load_error_rate", "load_p99_ms", "cluster_size", "cluster_keys", "migrations_remaining",
    "partitions_below_rf", "stop_writes_nodes", "acknowledged_writes_lost", "failed_writes_visible",
    "wait_cluster_reformed", "wait_settled",
]  # fmt: skip

LOAD_LAG_S = 5  # the load writes a second about 4 s after it ended (chaos.load.recent)


# -- load --------------------------------------------------------------------------------

def _load_window(window_s: int) -> dict:
    if window_s < 1:
        raise ActivityFailed(f"window_s must be >= 1, got {window_s}")
    run = session.current()
    if not run.load.running():
        raise ActivityFailed(f"the load is not running; see {run.load.results_dir / 'locust.log'}")
    deadline = time.monotonic() + window_s + LOAD_LAG_S + 10
    while True:
        stats = recent(run.load.results_dir, window_s)
        fresh = stats["first"] is not None and stats["first"] > run.quiet_since
        if (fresh and stats["ops"]) or run.faults_active() or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    if not stats["ops"]:
        raise ActivityFailed(f"the load did no operation in the last {window_s} s it wrote")
    return stats


def load_error_rate(window_s: int = 10) -> float:
    """Errors / operations of the YCSB load over the last ``window_s`` seconds."""
    return _load_window(window_s)["error_rate"]


def load_p99_ms(window_s: int = 10) -> float:
    """The worst per-second p99 (ms, service time) of any operation over the last ``window_s`` s."""
    return _load_window(window_s)["p99_ms"]


# -- cluster -----------------------------------------------------------------------------

def _ask(address: tuple[str, int]) -> dict | None:
    commands = ["statistics", f"namespace/{session.NAMESPACE}", f"partition-info:namespace={session.NAMESPACE}"]
    try:
        reply = info_request(*address, commands, timeout=1.0)
    except OSError:
        return None
    if any(value.startswith("ERROR") for value in reply.values()):
        return None
    return {"metrics": parse_info_kv(reply[commands[0]]) | parse_info_kv(reply[commands[1]]),
            "full_copies": full_copies(reply[commands[2]])}


def _replies() -> list[dict]:
    replies = [reply for reply in map(_ask, session.current().nodes.values()) if reply]
    if not replies:
        raise ActivityFailed("no node of the cluster answers")
    return replies


def _cluster() -> dict:
    return summarize(_replies())


def cluster_size() -> int:
    """The smallest cluster size any answering node reports (with cluster_keys 1: the size)."""
    return _cluster()["cluster_size_min"]


def cluster_keys() -> int:
    """How many different cluster keys the answering nodes report (1: one cluster)."""
    return _cluster()["cluster_keys"]


def migrations_remaining() -> int:
    """Partitions still to migrate, summed over the answering nodes."""
    return _cluster()["migrate_partitions_remaining"]


def partitions_below_rf() -> int:
    """Partitions with fewer full copies on the answering nodes than the replication factor."""
    return _cluster()["partitions_below_rf"]


def stop_writes_nodes() -> int:
    """Answering nodes whose namespace is in stop-writes."""
    return _cluster()["stop_writes_nodes"]


# -- safety ------------------------------------------------------------------------------

def _verdict() -> dict | None:
    """The safety verdict once the method has ended (it stops the safety workload, waits for
    the cluster to settle and reads every key back); None before: nothing is read back while
    the workload runs."""
    run = session.current()
    if not run.method_ended:
        if not any(op.kind == "write" and op.outcome == "ok" for op in run.safety.history):
            raise ActivityFailed("the safety workload has no acknowledged write yet")
        return None
    try:
        return run.check_safety()
    except TimeoutError as exc:
        raise ActivityFailed(f"no safety verdict: {exc}") from None


def acknowledged_writes_lost() -> int:
    """Acknowledged writes of the safety workload whose value is gone (Jepsen's lost
    updates). Before the method ends: 0, once the workload has writes acknowledged."""
    verdict = _verdict()
    return 0 if verdict is None else verdict["counts"]["lost"]


def failed_writes_visible() -> int:
    """Writes the safety workload was told definitely failed, whose value was read anyway."""
    verdict = _verdict()
    return 0 if verdict is None else verdict["counts"]["failed_visible"]


# -- waiting (for the method) ------------------------------------------------------------

def wait_cluster_reformed(timeout_s: float = 30.0) -> str:
    """Wait until the answering nodes agree on one cluster of all of them (migrations may
    still run); its cluster key."""
    deadline = time.monotonic() + timeout_s
    while True:
        replies = _replies()
        summary = summarize(replies)
        if summary["cluster_keys"] == 1 and summary["cluster_size_min"] == summary["cluster_size_max"] == len(replies):
            return replies[0]["metrics"]["cluster_key"]
        if time.monotonic() >= deadline:
            raise ActivityFailed(f"the cluster did not re-form within {timeout_s} s")
        time.sleep(0.2)


def wait_settled(timeout_s: float = 60.0) -> str:
    """Wait until the answering nodes form one cluster with nothing left to migrate; its key.
    The load probes then judge only the seconds after this."""
    run = session.current()
    try:
        key = settled_key(run.hosts, timeout_s)
    except TimeoutError:
        raise ActivityFailed(f"the cluster did not settle within {timeout_s} s") from None
    if not run.faults_active():
        run.quiet_since = time.time()
    return key
