"""The node: owns configuration, namespaces, the partition table and the listeners.

This issue's node is a cluster of one: it masters all 4096 partitions of every namespace.
The clustering issue replaces `_publish_single_node_map` with the balance computed from
the succession list.
"""

import asyncio
import logging
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import psutil

from cluster.node.config import NodeConfig
from cluster.node.info_commands import InfoHandler
from cluster.node.namespace import Namespace
from cluster.node.partition_table import PartitionTable, bitmap
from cluster.node.service import ServiceProtocol
from cluster.node.transactions import Transactions
from cluster.storage.record import now_cl_ms
from cluster.wire.digest import N_PARTITIONS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Peer:
    name: str
    service: str  # host:port of its service listener


def derive_node_id(cfg: NodeConfig) -> int:
    """Configured `node-id`, else Aerospike's scheme: fabric port in the top 16 bits, MAC below."""
    if cfg.service["node-id"]:
        return int(cfg.service["node-id"], 16)
    return (cfg.network["fabric"]["port"] << 48) | (uuid.getnode() & 0xFFFF_FFFF_FFFF)


class Node:
    def __init__(self, cfg: NodeConfig):
        self.cfg = cfg
        self.node_id = derive_node_id(cfg)
        self.name = f"{self.node_id:X}"
        self.started = time.monotonic()
        self.counters: Counter[str] = Counter()
        self.client_connections = 0
        self.namespaces = {name: Namespace(name, cfg) for name in cfg.namespaces}
        self.transactions = Transactions(self.namespaces)
        self.partition_table = PartitionTable()
        self.info = InfoHandler(self)
        self.cluster_key = random.getrandbits(48) or 1
        self.cluster_size = 1
        self.cluster_generation = 1
        self.peers_generation = 1
        self.rebalance_generation = 1
        self.process = psutil.Process()
        self._server: asyncio.AbstractServer | None = None
        self._ticker: asyncio.Task | None = None
        self._publish_single_node_map()

    def _publish_single_node_map(self) -> None:
        everything = bitmap(range(N_PARTITIONS))
        for ns in self.namespaces:
            self.partition_table.publish(ns, [everything])

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        svc = self.cfg.network["service"]
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: ServiceProtocol(self), svc["address"], svc["port"],
                                                reuse_address=True, backlog=1024)
        self._ticker = loop.create_task(self._housekeeping())
        log.info("node %s serving %s on %s:%d", self.name, ",".join(self.namespaces), svc["address"], svc["port"])

    async def stop(self) -> None:
        if self._ticker:
            self._ticker.cancel()
        if self._server:
            self._server.close()
        for ns in self.namespaces.values():
            ns.storage.close()

    async def _housekeeping(self) -> None:
        period = self.cfg.service["tick-ms"] / 1000
        while True:
            await asyncio.sleep(period)
            now_ms = now_cl_ms()  # storage expiry compares against void-times on the citrusleaf clock
            for ns in self.namespaces.values():
                try:
                    ns.tick(now_ms)
                except Exception:
                    log.exception("housekeeping failed for namespace %s", ns.name)

    # -- hooks used by the service and info handlers ----------------------------------

    def connection_opened(self) -> None:
        self.client_connections += 1
        self.counters["client_connections_opened"] += 1

    def connection_closed(self) -> None:
        self.client_connections -= 1
        self.counters["client_connections_closed"] += 1

    def service_address(self) -> str:
        svc = self.cfg.network["service"]
        return f"{svc['access-address'] or svc['address']}:{svc['port']}"

    def peers(self) -> list[Peer]:
        return []

    def migrations_remaining(self) -> int:
        return 0

    def cluster_is_stable(self) -> bool:
        return True

    def config_changed(self, context: str) -> None:
        for ns in self.namespaces.values():
            ns.apply_storage_params()
            ns.evaluate_stop_writes()

    def statistics(self) -> dict[str, Any]:
        with self.process.oneshot():
            cpu = self.process.cpu_times()
            rss = self.process.memory_info().rss
        stats: dict[str, Any] = {
            "cluster_size": self.cluster_size,
            "cluster_key": f"{self.cluster_key:X}",
            "cluster_generation": self.cluster_generation,
            "cluster_principal": self.name,
            "cluster_is_member": True,
            "cluster_integrity": True,
            "uptime": int(time.monotonic() - self.started),
            "client_connections": self.client_connections,
            "migrate_allowed": True,
            "migrate_partitions_remaining": self.migrations_remaining(),
            "process_cpu_user_s": round(cpu.user, 3),
            "process_cpu_system_s": round(cpu.system, 3),
            "process_rss_bytes": rss,
            "stop_writes": any(ns.stop_writes for ns in self.namespaces.values()),
        }
        stats.update(sorted(self.counters.items()))
        return stats

    def namespace_statistics(self, name: str) -> dict[str, Any]:
        stats = {"ns_cluster_size": self.cluster_size}
        stats.update(self.namespaces[name].statistics())
        return stats
