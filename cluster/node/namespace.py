"""A namespace on one node: its storage engine, capacity state (stop-writes), truncation
cutoffs, secondary-index definitions and counters."""

import json
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

from cluster.core.sindex import Catalog
from cluster.node.config import NodeConfig
from cluster.storage.device import DeviceStore
from cluster.storage.engine import StorageEngine
from cluster.storage.memory import MemoryStore
from cluster.storage.record import now_cl_seconds

log = logging.getLogger(__name__)

# counters the server reports even at zero (monitoring looks for them before they first move)
ALWAYS_REPORTED = ("client_read_filtered_out", "client_write_filtered_out", "client_delete_filtered_out")


def write_json_durably(path: Path, value) -> None:
    """Replace `path` with `value` as JSON, on disk before returning (system metadata a node
    acts on must survive a crash right after it answered)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        json.dump(value, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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
        post_write_cache=se["post-write-cache"],
        now_s=now_cl_seconds(),
    )


class Namespace:
    def __init__(self, name: str, cfg: NodeConfig):
        self.name = name
        self.cfg = cfg
        self.storage = open_storage(cfg, name)
        # Truncation, as the server keeps it in its system metadata: per set ("" = the whole
        # namespace) a last-update-time cutoff (citrusleaf ms, 0 = undone) and the wall-clock
        # ms stamp of the command that set it; the newest stamp wins when nodes share them.
        self.truncate_path = Path(cfg.service["work-directory"]) / "smd" / f"truncate-{name}.json"
        self.truncation: dict[str, tuple[int, int]] = {}
        if self.truncate_path.exists():
            saved = json.loads(self.truncate_path.read_text())
            self.truncation = {set_name: (lut, stamp) for set_name, (lut, stamp) in saved.items()}
        # Secondary-index definitions (SMD module "sindex"), kept and shared like truncation.
        self.sindex_path = self.truncate_path.with_name(f"sindex-{name}.json")
        saved = json.loads(self.sindex_path.read_text()) if self.sindex_path.exists() else {}
        self.sindexes = Catalog(name, {key: (index_name, stamp) for key, (index_name, stamp) in saved.items()})
        # acknowledged writes must be on disk: the node's group commit covers this store
        self.commit_to_device = isinstance(self.storage, DeviceStore) and cfg.namespaces[name]["storage-engine"][
            "commit-to-device"]
        self.stop_writes = False
        self.counters: Counter[str] = Counter(dict.fromkeys(ALWAYS_REPORTED, 0))
        self._apply_truncation()  # a cold start may bring back records truncated before it
        self.evaluate_stop_writes()

    def truncate_lut(self, set_name: str = "") -> int:
        return self.truncation.get(set_name, (0, 0))[0]

    def merge_truncation(self, set_name: str, lut: int, stamp: int) -> bool:
        """Take a truncation entry (lut 0: an undo) if it is newer than ours: persist it
        before acting on it, then drop what it truncates. True if it was taken."""
        lut_now, stamp_now = self.truncation.get(set_name, (0, 0))
        if (stamp, lut) <= (stamp_now, lut_now):
            return False
        self.truncation[set_name] = (lut, stamp)
        write_json_durably(self.truncate_path, self.truncation)
        log.info("{%s%s} truncate cutoff now %d (stamp %d)", self.name, f"|{set_name}" if set_name else "", lut, stamp)
        self._apply_truncation()
        return True

    def merge_sindex(self, key: str, index_name: str | None, stamp: int) -> bool:
        """Take an index definition entry (name None: a delete) if it is newer than ours,
        persisted before it is acted on. True if it was taken."""
        if not self.sindexes.merge(key, index_name, stamp):
            return False
        write_json_durably(self.sindex_path, self.sindexes.entries)
        log.info("{%s} sindex %s -> %s (stamp %d)", self.name, key, index_name, stamp)
        return True

    def _apply_truncation(self) -> None:
        if not self.truncation:
            return
        sets = {name: lut for name, (lut, _stamp) in self.truncation.items() if name}
        self.counters["truncated_records"] += self.storage.truncate(self.truncate_lut(), sets)

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
            # record reads served from memory (write buffer, post-write cache), since start
            "cache_read_pct": round(st.cache_reads * 100 / max(1, st.cache_reads + st.device_reads), 2),
            "wblocks_written": st.wblocks_written,
            "replication-factor": self.params["replication-factor"],
            "truncate_lut": self.truncate_lut(),
        }
        for key in ("stop-writes-used-pct", "stop-writes-avail-pct"):
            stats[key] = se[key]
        stats.update(sorted(self.counters.items()))
        return stats
