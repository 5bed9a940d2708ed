"""The node: owns configuration, namespaces, the partition table and the listeners.

Membership (heartbeat, Paxos, exchange) runs in `MembershipDriver`, the data plane
(ownership, replication, migration, proxying) in `DataDriver`. When an exchange completes
the data plane rebalances; the node publishes its columns of the client map (`replicas`:
column 0 the partitions it serves as working master, column i those where it is the i-th
replica) and the peers list, and republishes whenever a migration hands a partition over.
"""

import asyncio
import functools
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from cluster import lazy
from cluster.core import partition_balance
from cluster.core.effects import ExchangeComplete
from cluster.core.node_id import derive_node_id, format_node_id, parse_node_id
from cluster.node.config import NodeConfig
from cluster.node.data_driver import DataDriver
from cluster.node.info_commands import InfoHandler
from cluster.node.membership_driver import MembershipDriver, monotonic_ms
from cluster.node.namespace import Namespace
from cluster.node.partition_table import PartitionTable, bitmap
from cluster.node.service import ServiceProtocol
from cluster.node.transactions import Transactions
from cluster.node.udf_modules import UdfModules
from cluster.storage.group_commit import GroupCommit
from cluster.storage.record import now_cl_ms, now_cl_seconds

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Peer:
    name: str
    service: str  # host:port of its service listener


def node_id_of(cfg: NodeConfig) -> int:
    """Configured `node-id`, else Aerospike's scheme: fabric port in the top 16 bits, MAC below."""
    if cfg.service["node-id"]:
        return parse_node_id(cfg.service["node-id"])
    return derive_node_id(cfg.network["fabric"]["port"], uuid.getnode().to_bytes(6, "big"))


class Node:
    def __init__(self, cfg: NodeConfig):
        self.cfg = cfg
        self.node_id = node_id_of(cfg)
        self.name = format_node_id(self.node_id)
        self.started = time.monotonic()
        self.counters: Counter[str] = Counter()
        self.client_connections = 0
        self.namespaces = {name: Namespace(name, cfg) for name in cfg.namespaces}
        self.group_commit = GroupCommit([ns.storage for ns in self.namespaces.values() if ns.commit_to_device])
        self.partition_table = PartitionTable()
        self.udf = UdfModules(Path(cfg.service["work-directory"]))  # registered modules, the Lua runtime
        self.info = InfoHandler(self)
        # the committed cluster: key 0 and no members while orphaned (clients keep the old map)
        self.cluster_key = 0
        self.succession: tuple[int, ...] = ()
        self.cluster_generation = 0
        self.exchanged_key = 0  # cluster key of the last completed exchange (balance applied)
        self.rebalance_generation = 0
        self._peers: list[Peer] = []
        self.peers_generation = 1
        self.process = psutil.Process()
        self.membership = MembershipDriver(self, cfg, {name: p["rack-id"] for name, p in cfg.namespaces.items()})
        self.data = DataDriver(self, self.send_data_message)
        self.transactions = Transactions(self.namespaces, self.data, cfg.service["transaction-max-ms"])
        self.transactions.udf = self.udf
        self.data.handle_proxied = self.transactions.proxied
        self.membership.on_other_message = self.data.on_message
        self._server: asyncio.AbstractServer | None = None
        self._ticker: asyncio.Task | None = None
        self._metrics = None  # the server of GET /metrics (cluster.node.metrics), when configured
        self._refusal_logged = -1.0

    @property
    def cluster_size(self) -> int:
        return len(self.succession)

    # -- membership events ------------------------------------------------------------

    def on_cluster_changed(self, cluster_key: int, succession: tuple[int, ...]) -> None:
        self.cluster_key, self.succession = cluster_key, succession
        self.cluster_generation += 1
        self.data.plane.on_cluster_changed(cluster_key)
        log.info("cluster changed: key %X size %d principal %s", cluster_key, len(succession),
                 format_node_id(succession[0]))

    def on_orphaned(self) -> None:
        self.cluster_key, self.succession = 0, ()
        self.cluster_generation += 1
        self.data.plane.on_orphaned()
        log.warning("orphaned: no longer a member of a cluster")

    def on_exchange_complete(self, event: ExchangeComplete) -> None:
        """Every member computes the same balance from the same exchanged data, as after Aerospike's exchange."""
        self.data.plane.on_exchange_complete(event, monotonic_ms())
        for name, (tx, rx, signals) in ((n, self.data.plane.remaining(n)) for n in self.namespaces):
            log.info("{ns:%s} rebalanced: expected-migrations (%d,%d,%d)", name, tx, rx, signals)
        self.data.publish()  # at once: clients and the next exchange must see the new balance
        self.data.flush()
        peers = [Peer(format_node_id(n), event.services.get(n, "")) for n in event.succession if n != self.node_id]
        if peers != self._peers:
            self._peers = peers
            self.peers_generation += 1
        self.exchanged_key = event.cluster_key
        self.rebalance_generation += 1
        self.info.share_truncations()
        self.info.share_udf_modules()
        log.info("exchange complete: key %X, partition map generation %d", event.cluster_key,
                 self.partition_table.generation)

    def send_data_message(self, node_id: int, payload: bytes) -> bool:
        """The data plane's fabric sends (replica and migration acks, proxy replies among them)
        leave only once the writes made before them are on disk (commit-to-device), in order.
        False if the node is unknown (the caller gives up at once rather than wait)."""
        self.group_commit.after(lambda: self.membership.send_fabric(node_id, payload))
        return self.membership.fabric_endpoint(node_id) is not None

    def publish_partitions(self) -> None:
        """The client map from the data plane's current ownership (versions go to the exchange
        only when a new cluster forms: `versions_source`). Only a whole map: while some
        partition has no master (before the first balance) clients keep what they have."""
        me = self.node_id
        plane = self.data.plane.partitions
        if any(not st.working_master for states in plane.values() for st in states):
            return
        for name, states in plane.items():
            rf = max((len(st.replicas) for st in states), default=0)
            columns = [[pid for pid, st in enumerate(states) if st.working_master == me]]
            columns += [[pid for pid, st in enumerate(states) if len(st.replicas) > i and st.replicas[i] == me]
                        for i in range(1, rf)]
            self.partition_table.publish(name, [bitmap(c) for c in columns])

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        svc = self.cfg.network["service"]
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: ServiceProtocol(self), svc["address"], svc["port"],
                                                reuse_address=True, backlog=1024)
        self._ticker = loop.create_task(self._housekeeping())
        self.data.plane.load_versions(now_cl_seconds())
        self.membership.membership.exchange.versions_source = self.data.plane.local_versions
        self.data.start()
        await self.membership.start()
        metrics = self.cfg.network["metrics"]
        if metrics["port"]:
            # imported here: only a node serving metrics needs prometheus_client
            from cluster.node.metrics import Latencies, serve
            self.transactions.latencies = Latencies()
            self._metrics = await serve(self)
            log.info("metrics on http://%s:%d/metrics", metrics["address"], metrics["port"])
        log.info("node %s serving %s on %s:%d", self.name, ",".join(self.namespaces), svc["address"], svc["port"])
        # What the first rebalance and the first feature request would import, imported in a
        # thread while the node waits for its first quantum; from one heartbeat interval in,
        # so that nodes starting together first get their own imports done.
        loop.call_later(self.cfg.network["heartbeat"]["interval"] / 1000, lazy.load_in_background,
                        functools.partial(partition_balance.precompute, self.node_id))

    async def stop(self) -> None:
        if self._ticker:
            self._ticker.cancel()
        self.membership.close()
        self.data.close()
        if self._server:
            self._server.close()
        if self._metrics:
            self._metrics.close()
        await self.group_commit.drain()  # its fdatasync must not outlive the files
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

    def connection_opened(self) -> bool:
        """Admit a client connection, or refuse it at proto-fd-max as the real server does
        (it closes the connection at accept time; the count is ours, the server only logs)."""
        limit = self.cfg.service["proto-fd-max"]
        if self.client_connections >= limit:
            self.counters["client_connections_refused"] += 1
            now = time.monotonic()
            if now - self._refusal_logged >= 1:  # like the real server's ticker warning
                self._refusal_logged = now
                log.warning("refusing client connection - proto-fd-max %d", limit)
            return False
        self.client_connections += 1
        self.counters["client_connections_opened"] += 1
        return True

    def connection_closed(self) -> None:
        self.client_connections -= 1
        self.counters["client_connections_closed"] += 1

    def service_address(self) -> str:
        svc = self.cfg.network["service"]
        return f"{svc['access-address'] or svc['address']}:{svc['port']}"

    def peers(self) -> list[Peer]:
        return self._peers

    def migrations_remaining(self, namespace: str | None = None) -> int:
        """Partitions still to send or receive (in one namespace, or all)."""
        names = [namespace] if namespace else list(self.namespaces)
        return sum(tx + rx for tx, rx, _ in map(self.data.plane.remaining, names))

    def cluster_is_stable(self) -> bool:
        """In a cluster whose exchange has completed, so the published map is the balanced one."""
        return self.cluster_key != 0 and self.exchanged_key == self.cluster_key

    def config_changed(self, context: str) -> None:
        if context == "network":
            hb = self.cfg.network["heartbeat"]
            self.membership.apply_heartbeat_config(hb["interval"], hb["timeout"])
        for ns in self.namespaces.values():
            ns.apply_storage_params()
            ns.evaluate_stop_writes()
        self.transactions.max_ms = self.cfg.service["transaction-max-ms"]
        self.data.apply_config()

    def statistics(self) -> dict[str, Any]:
        with self.process.oneshot():
            cpu = self.process.cpu_times()
            rss = self.process.memory_info().rss
        stats: dict[str, Any] = {
            "cluster_size": self.cluster_size,
            "cluster_key": f"{self.cluster_key:X}",
            "cluster_generation": self.cluster_generation,
            "cluster_principal": format_node_id(self.succession[0]) if self.succession else "0",
            "cluster_is_member": self.cluster_key != 0,
            "cluster_integrity": self.cluster_key != 0,
            "heartbeat_received_foreign": self.membership.heartbeat.received,
            "fabric_msgs_received": self.membership.fabric.received,
            # node links: closed = dropped by us because the peer went silent or departed
            "heartbeat_connections_opened": self.membership.heartbeat.connections_opened,
            "heartbeat_connections_closed": self.membership.heartbeat.connections_closed,
            "fabric_connections_opened": self.membership.fabric.connections_opened,
            "fabric_connections_closed": self.membership.fabric.connections_closed,
            "uptime": int(time.monotonic() - self.started),
            "client_connections": self.client_connections,
            "migrate_allowed": self.data.plane.migrations.allowed,
            "migrate_partitions_remaining": self.migrations_remaining(),
            "proxy_in_progress": self.counters["proxy_in_progress"],
            "client_connections_refused": self.counters["client_connections_refused"],
            "group_commits": self.group_commit.flushes,
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
        stats.update(self.data.namespace_statistics(name))
        return stats
