"""Probes of the refcluster extension: the steady state as the load and the cluster see it.

Load probes judge the last ``window_s`` seconds the running YCSB load has written, and
only seconds after the cluster was last quiet: when no fault is active they wait (bounded)
until such a window exists, so that the hypothesis after the method measures the
recovered cluster and not the tail of the fault. While a fault is active (a continuous
hypothesis) they judge the latest window as it is.

Cluster probes ask every node of the run that answers (statistics, namespace/test,
partition-info) and count as the recorder does (chaos.recorder).
"""

import logging
import time

import pandas as pd
from chaoslib.exceptions import ActivityFailed

from chaos.load import recent
from chaos.recorder import full_copies, summarize
from chaos.safety import wait_settled as settled_key
from cluster.client import operations
from cluster.client.batch import read_message
from cluster.client.client import Client
from cluster.client.command import frame_request, key_fields, parse_reply
from cluster.client.connection import Connection
from cluster.client.keys import Key
from cluster.client.policies import Policy
from cluster.deploy.local import info_request
from cluster.deploy.local_cluster import parse_info_kv
from cluster.wire.message import Info2, Message
from cluster.wire.result_codes import AerospikeError

from . import session

__all__ = [
    "load_error_rate", "load_p99_ms", "cluster_size", "cluster_keys", "migrations_remaining",
    "partitions_below_rf", "stop_writes_nodes", "acknowledged_writes_lost", "failed_writes_visible",
    "wait_cluster_reformed", "wait_settled",
    "wait_cluster_keys", "each_node_serves", "acknowledged_writes_discarded", "client_ops_in_stop_writes",
    "p99_shift_ms",
]  # fmt: skip

logger = logging.getLogger("chaostoolkit")
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


# -- splits, capacity and slow links (partition_heal, capacity_overflow, slow_link) -------

PROBE_SET = "probe"  # the set the direct probes below write; the workloads never read it


def _node_addresses() -> dict[str, tuple[str, int]]:
    """name -> client address of the embedded cluster's running nodes (else the run's hosts)."""
    run = session.current()
    if run.cluster is None:
        return dict(run.nodes)
    return {name: node.address for name, node in run.cluster.nodes.items() if node.is_running()}


def _direct(address: tuple[str, int], msg, timeout_s: float = 2.0) -> int:
    """Send one request to this node only (it may proxy it inside its own cluster); the result code."""
    policy = Policy(total_timeout=int(timeout_s * 1000), max_retries=0)
    conn = Connection(*address, timeout_s)
    try:
        conn.send(frame_request(msg, policy))
        return parse_reply(conn.read_frame()[1])[0].result_code
    finally:
        conn.close()


def _write_msg(key: Key, value) -> Message:
    policy = Policy()
    return Message(info2=Info2.WRITE, fields=key_fields(key, policy), ops=[operations.to_wire(operations.write("v", value))])


def wait_cluster_keys(count: int, timeout_s: float = 30.0) -> dict[str, int]:
    """Wait until the answering nodes form exactly ``count`` clusters (a split: 2), each node's
    cluster size being the number of nodes that share its key; cluster key -> size."""
    if count < 1:
        raise ActivityFailed(f"count must be >= 1, got {count}")
    deadline = time.monotonic() + timeout_s
    while True:
        metrics = [reply["metrics"] for reply in _replies()]
        sizes: dict[str, int] = {}
        for m in metrics:
            sizes[m["cluster_key"]] = sizes.get(m["cluster_key"], 0) + 1
        if len(sizes) == count and all(int(m["cluster_size"]) == sizes[m["cluster_key"]] for m in metrics):
            return sizes
        if time.monotonic() >= deadline:
            raise ActivityFailed(f"the nodes did not form {count} cluster(s) within {timeout_s} s: {sizes}")
        time.sleep(0.2)


def each_node_serves(keys: int = 10) -> dict[str, int]:
    """Write ``keys`` records through each running node alone and read them back from it: in
    a split, every side takes writes (AP). Node -> records written and read back; fails if a
    node served none."""
    if keys < 1:
        raise ActivityFailed(f"keys must be >= 1, got {keys}")
    served = {}
    for name, address in _node_addresses().items():
        ok = 0
        for i in range(keys):
            key = Key.of((session.NAMESPACE, PROBE_SET, f"{name}-{i}"))
            try:
                if _direct(address, _write_msg(key, i)) == 0 and _direct(address, read_message(key, None, Policy())) == 0:
                    ok += 1
            except (OSError, AerospikeError):
                pass
        served[name] = ok
    if not all(served.values()):
        raise ActivityFailed(f"nodes that served no write and read: {[n for n, ok in served.items() if not ok]}")
    return served


def acknowledged_writes_discarded() -> int:
    """After the method: acknowledged writes of the safety workload that the final state lost
    (safety.json counts.discarded: on each lost key, the acknowledged writes the surviving value
    precedes, chaos.safety), i.e. what a heal's conflict resolution discarded. Recorded in
    safety.json as ``discarded``, with the acknowledged writes issued during the fault windows
    (the split), and printed with the summary; reported, not judged."""
    run = session.current()
    if not run.method_ended:
        return 0
    verdict = _verdict()
    discarded, acknowledged = verdict["counts"]["discarded"], verdict["counts"]["writes"]["ok"]
    windows = [(f.start, f.end if f.end is not None else float("inf")) for f in run.folder.faults()]
    during = sum(op.kind == "write" and op.outcome == "ok" and any(a <= op.start < b for a, b in windows)
                 for op in run.safety.history)
    policy = verdict.get("policy", {}).get("namespace_config", {}).get("conflict-resolution-policy")
    verdict["discarded"] = {"acknowledged_writes_discarded": discarded, "acknowledged_writes": acknowledged,
                            "acknowledged_during_faults": during, "keys_lost": verdict["counts"]["lost"],
                            "conflict_resolution_policy": policy, "safety_mode": run.safety.mode}
    run.folder.write_safety(verdict)
    note = (f"acknowledged writes the heal discarded: {discarded} of {acknowledged} "
            f"({during} acknowledged during the faults; on {verdict['counts']['lost']} keys; "
            f"safety mode {run.safety.mode}; conflict-resolution-policy {policy})")
    if note not in run.notes:
        run.notes.append(note)
    return discarded


def client_ops_in_stop_writes(key: int = 0) -> dict[str, int]:
    """With every node in stop-writes: result codes of a client write (must be 8, out of space),
    a read and a delete of fill record ``key`` (must be 0) through the run's client."""
    from .actions import FILL_SET  # the fill records: actions.fill_devices writes them

    if stop_writes_nodes() != len(_node_addresses()):
        raise ActivityFailed("not every running node is in stop-writes")
    client = Client({"hosts": session.current().hosts}).connect()
    codes = {}
    try:
        for op, call in (("write", lambda: client.put((session.NAMESPACE, PROBE_SET, "sw"), {"v": 1})),
                         ("read", lambda: client.get((session.NAMESPACE, FILL_SET, key))),
                         ("delete", lambda: client.remove((session.NAMESPACE, FILL_SET, key)))):
            try:
                call()
                codes[op] = 0
            except AerospikeError as exc:
                codes[op] = exc.code
    finally:
        client.close()
    if codes != {"write": 8, "read": 0, "delete": 0}:
        raise ActivityFailed(f"expected write 8, read 0, delete 0 in stop-writes, got {codes}")
    return codes


def p99_shift_ms(op: str, window_s: int = 10, min_ms: float = -1e9, max_ms: float = 1e9) -> float:
    """How much the p99 of load operation ``op`` (READ, UPDATE, ...) rose during the run's fault
    windows (the seconds wholly between the first start and the last end) over the
    ``window_s`` seconds before the first start: the median of the per-second p99s, robust to
    one noisy second on a shared machine. Fails unless min_ms <= shift <= max_ms."""
    run = session.current()
    faults = run.folder.faults()
    if not faults or any(f.end is None for f in faults):
        raise ActivityFailed("p99_shift_ms needs fault windows that have ended")
    start, end = faults[0].start, max(f.end for f in faults)
    path = run.load.results_dir / "timeseries.csv"
    deadline = time.monotonic() + LOAD_LAG_S + 10
    while True:  # the load writes a second a few seconds after it ended
        rows = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["timestamp", "kind", "op"])
        rows = rows[(rows["kind"] == "service") & (rows["op"] == op)]
        if (len(rows) and rows["timestamp"].max() >= end) or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    per_second = rows.groupby(rows["timestamp"].astype(int))["p99_us"].max() / 1000  # row t: the second before t
    before = per_second[(per_second.index <= start) & (per_second.index > start - window_s)]
    during = per_second[(per_second.index - 1 >= start) & (per_second.index <= end)]
    if before.empty or during.empty:
        raise ActivityFailed(f"no {op} seconds before ({len(before)}) or during ({len(during)}) the faults")
    shift = float(during.median() - before.median())
    logger.info(f"{op} p99: {before.median():.1f} ms before, {during.median():.1f} ms during the faults "
                f"(median of {len(before)} and {len(during)} per-second p99s)")
    if not min_ms <= shift <= max_ms:
        raise ActivityFailed(f"{op} p99 shifted by {shift:.1f} ms, expected {min_ms} to {max_ms}")
    return round(shift, 1)
