"""What the cluster did, second by second, next to what the load saw: timeline.csv.

    with Recorder(cluster_nodes(lc), run.path, failures_csv=load.failures_csv):
        ...  # load and faults
    # on exit: run/cluster.csv (the raw samples) and run/timeline.csv (merged with run/load/)

Once a second (just after the whole second S, and labelled S) a background thread asks
every node, in parallel, for ``statistics`` and ``namespace/<ns>``, and for
``partition-info`` unless the node's copies cannot have changed since it last answered it.
A node that does not answer within ``timeout`` leaves its columns empty for that second.

**Replication.** A partition's *copies* are the nodes that answered this second and hold
a full copy of it: a version without the subset or evade flag, and no immigration pending.
``partitions_below_rf`` counts partitions with fewer copies than the namespace's
replication factor, ``partitions_single_copy`` those with at most one: the *single-replica
window* is the seconds in which that is above 0, when one more lost node loses acknowledged
writes. A node that is down or does not answer holds no copy: from the moment a node dies
the partitions it held count as under-replicated, before the cluster has noticed.

timeline.csv, one row per second from the first sample to the last (``time``, unix s):

* per node ``<node>.<metric>`` for ``NODE_METRICS``; ``nodes_up``, ``cluster_keys``
  (distinct keys among them), ``cluster_size_min``/``_max``, the sums
  ``migrate_partitions_remaining`` and ``migrate_records`` (transmitted, cumulative over
  the nodes that answered: it drops when a node dies), ``migrate_records_rate`` (records
  transmitted in that second, all nodes, a restarted node's counter counted from 0 again),
  ``partitions_below_rf``, ``partitions_single_copy``, ``stop_writes_nodes``, ``rf``;
* per load operation ``<OP>.ops``, ``<OP>.errors``, ``<OP>.p50_ms``, ``<OP>.p99_ms``,
  ``<OP>.p99.9_ms``, ``<OP>.max_ms`` (service time) and ``<OP>.intended_p99_ms`` from the
  load's timeseries.csv (a second written twice keeps the worse percentile), and ``ops``,
  ``errors`` over all operations;
* ``errors.<code>`` per Aerospike result code: the growth of Locust's failures file
  between two samples (so within about a second of when it happened).
"""

import csv
import math
import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from chaos.results import append_csv, read_csv
from cluster.deploy.local import info_request
from cluster.deploy.local_cluster import parse_info_kv

NODE_METRICS = [
    "cluster_size", "cluster_key", "migrate_partitions_remaining", "migrate_tx_partitions_remaining",
    "migrate_rx_partitions_remaining", "migrate_records_transmitted", "migrate_record_receives",
    "stop_writes", "device_used_pct",
]  # fmt: skip
SUMMARY_COLUMNS = [
    "nodes_up", "cluster_keys", "cluster_size_min", "cluster_size_max", "migrate_partitions_remaining",
    "migrate_records", "partitions_below_rf", "partitions_single_copy", "stop_writes_nodes", "rf",
]  # fmt: skip
N_PARTITIONS = 4096
LATENCIES = {"p50_us": "p50_ms", "p99_us": "p99_ms", "p99.9_us": "p99.9_ms", "max_us": "max_ms"}


def cluster_nodes(cluster) -> dict[str, tuple[str, int]]:
    """``{name: (host, port)}`` of a LocalCluster's nodes."""
    return {name: node.address for name, node in cluster.nodes.items()}


class Recorder:
    def __init__(self, nodes: dict[str, tuple[str, int]], run_dir: str | Path, namespace: str = "test",
                 failures_csv: str | Path | None = None, load_dir: str | Path | None = None,
                 timeout: float = 0.5):
        self.nodes = dict(nodes)
        self.run_dir = Path(run_dir)
        self.namespace = namespace
        self.failures_csv = Path(failures_csv) if failures_csv else None
        self.load_dir = Path(load_dir) if load_dir else self.run_dir / "load"
        self.timeout = timeout
        self.columns = ["time", "sampled_at", *SUMMARY_COLUMNS,
                        *(f"{name}.{metric}" for name in self.nodes for metric in NODE_METRICS)]
        self._failures_seen: Counter[str] = Counter()
        self._steady_copies: dict[str, tuple[str, set[int]] | None] = {}
        self._stop = threading.Event()
        self._sampled = threading.Condition()
        self._last_sampled_at = 0.0
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=len(self.nodes), thread_name_prefix="recorder")

    # -- running --------------------------------------------------------------------------

    def start(self) -> "Recorder":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> pd.DataFrame:
        """Stop sampling and write timeline.csv (merged with whatever the load has written)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._pool.shutdown()
        return write_timeline(self.run_dir, self.load_dir)

    def __enter__(self) -> "Recorder":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(math.floor(time.time()) + 1.05 - time.time()):
            second = math.floor(time.time())
            row = self.sample() | {"time": second}
            append_csv(self.run_dir / "cluster.csv", self.columns, [row])
            errors = [{"time": second, "error": code, "count": n} for code, n in self._new_failures().items()]
            append_csv(self.run_dir / "errors.csv", ["time", "error", "count"], errors)
            with self._sampled:
                self._last_sampled_at = row["sampled_at"]
                self._sampled.notify_all()

    def wait_sample(self, timeout: float = 10.0) -> None:
        """Until a sample begun after this call is in cluster.csv: what a caller sees now is
        then on the timeline, however late the sampling thread runs on a loaded machine."""
        since = round(time.time(), 3)
        with self._sampled:
            if not self._sampled.wait_for(lambda: self._last_sampled_at >= since, timeout):
                raise TimeoutError(f"the recorder took no sample in {timeout}s")

    # -- one sample -----------------------------------------------------------------------

    def sample(self) -> dict:
        """One row of cluster.csv (without ``time``): every node asked once, in parallel."""
        sampled_at = time.time()
        replies = dict(zip(self.nodes, self._pool.map(self._ask, self.nodes), strict=True))
        row: dict = {"sampled_at": round(sampled_at, 3)}
        for name, reply in replies.items():
            for metric in NODE_METRICS:
                row[f"{name}.{metric}"] = reply["metrics"].get(metric) if reply else None
        return row | summarize([reply for reply in replies.values() if reply])

    def _ask(self, name: str) -> dict | None:
        address, stats, ns = self.nodes[name], "statistics", f"namespace/{self.namespace}"
        try:
            reply = info_request(*address, [stats, ns], timeout=self.timeout)
            if any(value.startswith("ERROR") for value in reply.values()):
                raise ValueError(reply)
            metrics = parse_info_kv(reply[stats]) | parse_info_kv(reply[ns])
            copies = self._full_copies(name, address, metrics)
        except (OSError, KeyError, ValueError):
            self._steady_copies.pop(name, None)
            return None
        return {"metrics": metrics, "full_copies": copies}

    def _full_copies(self, name: str, address: tuple[str, int], metrics: dict) -> set[int]:
        """partition-info costs the node ~25 ms, so it is asked again only if the node's copies
        may have changed: they change at a rebalance (a new cluster key) and as migrations
        complete, never while the node stays in one cluster with none remaining."""
        key, steady = metrics["cluster_key"], metrics["migrate_partitions_remaining"] == "0"
        cached = self._steady_copies.get(name)
        if steady and cached and cached[0] == key:
            return cached[1]
        command = f"partition-info:namespace={self.namespace}"
        copies = full_copies(info_request(*address, [command], timeout=self.timeout)[command])
        self._steady_copies[name] = (key, copies) if steady else None
        return copies

    def _new_failures(self) -> Counter[str]:
        """Failures per result code since the last call, from Locust's cumulative failures file."""
        if self.failures_csv is None or not self.failures_csv.exists():
            return Counter()
        total: Counter[str] = Counter()
        try:
            with self.failures_csv.open(newline="") as src:
                for row in csv.DictReader(src):
                    total[error_code(row["Error"])] += int(row["Occurrences"])
        except (OSError, KeyError, ValueError):
            return Counter()  # caught mid-rewrite: next second's difference has it
        new = total - self._failures_seen
        self._failures_seen = total
        return new


def summarize(replies: list[dict]) -> dict:
    """The cluster-wide columns from the nodes that answered (``_ask`` results)."""
    if not replies:
        return {"nodes_up": 0, "cluster_keys": 0}
    metrics = [reply["metrics"] for reply in replies]
    sizes = [int(m["cluster_size"]) for m in metrics]
    rf = max(int(m.get("replication-factor", 1)) for m in metrics)
    copies: Counter[int] = Counter()
    for reply in replies:
        copies.update(reply["full_copies"])
    return {
        "nodes_up": len(replies),
        "cluster_keys": len({m["cluster_key"] for m in metrics}),
        "cluster_size_min": min(sizes), "cluster_size_max": max(sizes),
        "migrate_partitions_remaining": sum(int(m["migrate_partitions_remaining"]) for m in metrics),
        "migrate_records": sum(int(m.get("migrate_records_transmitted", 0)) for m in metrics),
        "partitions_below_rf": sum(copies[pid] < rf for pid in range(N_PARTITIONS)),
        "partitions_single_copy": sum(copies[pid] <= 1 for pid in range(N_PARTITIONS)),
        "stop_writes_nodes": sum(m.get("stop_writes") == "true" for m in metrics),
        "rf": rf,
    }


def full_copies(partition_info: str) -> set[int]:
    """Partition ids of which a node's ``partition-info`` shows a full copy: data, neither
    subset nor evade, nothing immigrating. Line: ns:pid:replica:master:version:pending:records."""
    pids = set()
    for line in filter(None, partition_info.split(";")):
        _ns, pid, _replica, _master, version, pending, _records = line.split(":")
        if version != "0" and not ({"s", "e"} & set(version.rsplit(".", 1)[1])) and pending == "0":
            pids.add(int(pid))
    return pids


def error_code(name: str) -> str:
    """``AerospikeError 9 TIMEOUT`` → ``9``; any other failure keeps its name."""
    match = re.match(r"AerospikeError (-?\d+)", name)
    return match.group(1) if match else name


# -- the merge ----------------------------------------------------------------------------

def write_timeline(run_dir: str | Path, load_dir: str | Path | None = None) -> pd.DataFrame:
    """timeline.csv from run_dir/cluster.csv, errors.csv and load_dir/timeseries.csv."""
    run_dir = Path(run_dir)
    load_dir = Path(load_dir) if load_dir else run_dir / "load"
    timeline = merge_timeline(read_csv(run_dir / "cluster.csv"), read_csv(load_dir / "timeseries.csv"),
                              read_csv(run_dir / "errors.csv"))
    timeline.to_csv(run_dir / "timeline.csv", index=False)
    return timeline


def merge_timeline(cluster: pd.DataFrame | None, load: pd.DataFrame | None,
                   errors: pd.DataFrame | None) -> pd.DataFrame:
    """One row per second over the recorder's samples (or, without any, the load's seconds)."""
    parts = []
    if cluster is not None:
        parts.append(cluster.drop_duplicates("time", keep="last").set_index("time"))
    if load is not None:
        parts.append(load_columns(load))
    if errors is not None and not errors.empty:
        by_code = errors.pivot_table(index="time", columns="error", values="count", aggfunc="sum")
        parts.append(by_code.rename(columns=lambda code: f"errors.{code}"))
    if not parts:
        return pd.DataFrame(columns=["time"])
    span = parts[0].index
    seconds = pd.RangeIndex(int(span.min()), int(span.max()) + 1, name="time")
    timeline = pd.concat([part.reindex(seconds) for part in parts], axis=1).reset_index()
    if cluster is not None:
        timeline["migrate_records_rate"] = records_migrated(timeline)
    return timeline


def records_migrated(timeline: pd.DataFrame) -> pd.Series:
    """Records transmitted by migrations per second, all nodes (indexed like the timeline)."""
    sent = timeline[[c for c in timeline.columns if c.endswith(".migrate_records_transmitted")]]
    growth = sent.diff()
    # a restarted node's counter starts from 0 again: what it shows is all new
    growth = growth.where(growth >= 0, sent)
    return growth.fillna(0).sum(axis=1)


def load_columns(timeseries: pd.DataFrame) -> pd.DataFrame:
    """The load's per-second rows (workloads/measure.py) as ``<OP>.<column>`` columns."""
    timeseries = timeseries.astype({"timestamp": int})
    service = timeseries[timeseries["kind"] == "service"]
    intended = timeseries[timeseries["kind"] == "intended"]
    per_op = service.groupby(["timestamp", "op"]).agg(
        ops=("count", "sum"), errors=("errors", "sum"), **{ms: (us, "max") for us, ms in LATENCIES.items()})
    for column in LATENCIES.values():
        per_op[column] = per_op[column] / 1000
    per_op["intended_p99_ms"] = intended.groupby(["timestamp", "op"])["p99_us"].max() / 1000
    wide = per_op.unstack("op")
    wide.columns = [f"{op}.{column}" for column, op in wide.columns]
    totals = service.groupby("timestamp")[["count", "errors"]].sum().rename(columns={"count": "ops"})
    return pd.concat([wide.sort_index(axis=1), totals], axis=1).rename_axis("time")
