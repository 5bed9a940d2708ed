"""A namespace on one node: its storage engine, capacity state (stop-writes) and counters."""

import logging
from collections import Counter
from typing import Any

from cluster.node.config import NodeConfig
from cluster.storage.device import DeviceStore
from cluster.storage.engine import StorageEngine
from cluster.storage.memory import MemoryStore
from cluster.storage.record import now_cl_seconds

log = logging.getLogger(__name__)


def open_storage(cfg: NodeConfig, name: str) -> StorageEngine:
    se = cfg.namespaces[name]["storage-engine"]
    if se["type"] == "memory":
        return MemoryStore(data_size=se["data-size"])
    path = cfg.data_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    return DeviceStore(
        str(path),
        filesize=se["filesize"],
        write_block_size=se["write-block-size"],
        defrag_lwm_pct=se["defrag-lwm-pct"],
        flush_max_ms=se["flush-max-ms"],
        now_s=now_cl_seconds(),
    )


class Namespace:
    def __init__(self, name: str, cfg: NodeConfig):
        self.name = name
        self.cfg = cfg
        self.storage = open_storage(cfg, name)
        # acknowledged writes must be on disk: the node's group commit covers this store
        self.commit_to_device = isinstance(self.storage, DeviceStore) and cfg.namespaces[name]["storage-engine"][
            "commit-to-device"]
        self.stop_writes = False
        self.counters: Counter[str] = Counter()
        self.evaluate_stop_writes()

    @property
    def params(self) -> dict[str, Any]:
        return self.cfg.namespaces[self.name]

    def evaluate_stop_writes(self) -> None:
        """Aerospike's rule: used >= stop-writes-used-pct or available < stop-writes-avail-pct.

        The real server re-evaluates every 10 s (nsup); we do it on every housekeeping tick
        so a run sees the transition within tick-ms, and say so in the docs.
        """
        se = self.params["storage-engine"]
        used_pct, avail_pct = self.storage.space_pct()  # stats() without counting 4096 partitions
        breached = used_pct >= se["stop-writes-used-pct"] or avail_pct < se["stop-writes-avail-pct"]
        if breached != self.stop_writes:
            log.warning("namespace %s %s stop-writes (used %.1f%% avail %.1f%%)", self.name,
                        "breached" if breached else "cleared", used_pct, avail_pct)
        self.stop_writes = breached

    def apply_storage_params(self) -> None:
        """Push dynamic storage-engine settings (set-config) down to the store."""
        se = self.params["storage-engine"]
        if isinstance(self.storage, DeviceStore):
            self.storage.defrag_lwm_pct = se["defrag-lwm-pct"]
            self.storage.flush_max_ms = se["flush-max-ms"]

    def tick(self, now_ms: int) -> None:
        self.storage.tick(now_ms)
        self.evaluate_stop_writes()

    def statistics(self) -> dict[str, Any]:
        st = self.storage.stats()
        se = self.params["storage-engine"]
        stats: dict[str, Any] = {
            "objects": st.objects,
            "tombstones": st.tombstones,
            "stop_writes": str(self.stop_writes).lower(),
            "storage-engine": se["type"],
            "data_total_bytes": st.total_bytes,
            "data_used_bytes": st.used_bytes,
            "data_used_pct": round(st.used_pct, 2),
            "data_avail_pct": round(st.avail_pct, 2),
            # pre-7.0 names that operators and dashboards still query
            "device_total_bytes": st.total_bytes,
            "device_used_bytes": st.used_bytes,
            "device_used_pct": round(st.used_pct, 2),
            "device_available_pct": round(st.avail_pct, 2),
            "device_free_wblocks": st.free_wblocks,
            "defrag_q": st.defrag_queue,
            "defrag_reads": st.defrag_reads,
            "wblocks_written": st.wblocks_written,
            "replication-factor": self.params["replication-factor"],
        }
        for key in ("stop-writes-used-pct", "stop-writes-avail-pct"):
            stats[key] = se[key]
        stats.update(sorted(self.counters.items()))
        return stats
