"""Runs the sans-I/O membership core (cluster/core) on the node's event loop.

The core decides; this module only moves bytes and time: pulses over the heartbeat
channel, Paxos and exchange messages over the fabric channel, a tick every `tick_ms`, and
the core's events handed to the node (`on_cluster_changed`, `on_orphaned`,
`on_exchange_complete`). The simulator drives the very same core on a simulated network.

It also keeps the connections honest, as Aerospike does: a heartbeat connection to a node
not heard from for `channel_idle_ms` is dropped (the next pulse, every interval, redials
it), and a node's fabric connections are dropped when it departs (the next message to it
dials afresh). Otherwise a healed partition would wait for TCP's backed-off retransmission
of the old connections.
"""

import asyncio
import logging
import random
import time
from collections.abc import Callable

from cluster.core.clustering import ClusteringConfig
from cluster.core.effects import (
    ClusterChanged,
    ExchangeComplete,
    FabricSend,
    HeartbeatSend,
    NodeDeparted,
    Orphaned,
)
from cluster.core.heartbeat import HeartbeatConfig
from cluster.core.membership import Membership
from cluster.core.messages import (
    CLUSTERING_MESSAGES,
    EXCHANGE_MESSAGES,
    HEARTBEAT_MESSAGES,
    DecodeError,
    Pulse,
    decode,
    encode,
)
from cluster.node.channel import Channel
from cluster.node.config import NodeConfig, dial_via
from cluster.node.info_commands import advertised_service

log = logging.getLogger(__name__)

MEMBERSHIP_MESSAGES = (*HEARTBEAT_MESSAGES, *CLUSTERING_MESSAGES, *EXCHANGE_MESSAGES)


def monotonic_ms() -> int:
    return int(time.monotonic() * 1000)


def split_endpoint(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host, int(port)


class MembershipDriver:
    def __init__(self, node, cfg: NodeConfig, racks: dict[str, int]):
        self.node = node
        hb, fabric, svc = cfg.network["heartbeat"], cfg.network["fabric"], cfg.service
        self.membership = Membership(
            node.node_id,
            cluster_name=svc["cluster-name"],
            endpoint=f"{hb['address']}:{hb['port']}",
            fabric_endpoint=f"{fabric['address']}:{fabric['port']}",
            seeds=tuple(hb["mesh-seed-address-port"]),
            heartbeat_config=HeartbeatConfig(interval_ms=hb["interval"], timeout=hb["timeout"]),
            clustering_config=ClusteringConfig(min_cluster_size=svc["min-cluster-size"],
                                               quantum_interval_ms=svc["quantum-interval-ms"] or None),
            rng=random.Random(),
            now_ms=monotonic_ms(),
        )
        self.membership.exchange.local_racks = racks
        self.membership.exchange.local_service = advertised_service(node.service_address(), cfg)
        # dial-via is read at every dial, so set-config can change it
        self.heartbeat = Channel("heartbeat", hb["address"], hb["port"], self._on_frame,
                                 route=lambda endpoint: dial_via(hb["dial-via"], endpoint))
        self.fabric = Channel("fabric", fabric["address"], fabric["port"], self._on_frame,
                              route=lambda endpoint: dial_via(fabric["dial-via"], endpoint))
        # fabric messages that are not membership's (replication, migration) go here
        self.on_other_message: Callable[[object], None] | None = None
        self.malformed = 0
        self._ticker: asyncio.Task | None = None

    async def start(self) -> None:
        await self.heartbeat.start()
        await self.fabric.start()
        self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())

    def close(self) -> None:
        if self._ticker:
            self._ticker.cancel()
        self.heartbeat.close()
        self.fabric.close()

    def apply_heartbeat_config(self, interval_ms: int, timeout: int) -> None:
        config = self.membership.heartbeat.config
        config.set_interval(interval_ms)
        config.set_timeout(timeout)

    async def _tick_forever(self) -> None:
        """Tick at once (the first pulses go out as the node starts), then when
        membership says (``next_wake``)."""
        last = monotonic_ms()
        while True:
            now = monotonic_ms()
            try:
                self.membership.tick(now)
                self._flush()
                idle_ms = self.membership.heartbeat.config.channel_idle_ms
                if now - last < idle_ms:  # after a stall of our own, what came meanwhile is not read yet
                    self.heartbeat.close_silent(idle_ms / 1000)
                last = now
            except Exception:  # the cluster must keep its heartbeat even if one tick fails
                log.exception("membership tick failed")
            await asyncio.sleep((self.membership.next_wake(now) - now) / 1000)

    def _on_frame(self, payload: bytes) -> None:
        try:
            msg = decode(payload)
        except DecodeError as exc:
            self.malformed += 1
            log.warning("dropping a malformed %d-byte node-to-node message: %s", len(payload), exc)
            return
        if isinstance(msg, MEMBERSHIP_MESSAGES):
            if type(msg) is Pulse:
                self.heartbeat.heard_from(split_endpoint(msg.endpoint))
            self.membership.step(msg, monotonic_ms())
            self._flush()
        elif self.on_other_message is not None:
            self.on_other_message(msg)

    def fabric_endpoint(self, node_id: int) -> tuple[str, int] | None:
        peer = self.membership.heartbeat.adjacency.get(node_id)
        return split_endpoint(peer.fabric_endpoint) if peer is not None else None

    def send_fabric(self, node_id: int, payload: bytes) -> bool:
        endpoint = self.fabric_endpoint(node_id)
        if endpoint is None:
            return False
        self.fabric.send(endpoint, payload)
        return True

    def _flush(self) -> None:
        sends, events = self.membership.ready()
        for send in sends:
            if type(send) is HeartbeatSend:
                self.heartbeat.send(split_endpoint(send.endpoint), encode(send.msg))
            elif type(send) is FabricSend:
                self.send_fabric(send.node, encode(send.msg))
        for event in events:
            if isinstance(event, ClusterChanged):
                self.node.on_cluster_changed(event.cluster_key, event.succession)
            elif isinstance(event, Orphaned):
                self.node.on_orphaned()
            elif isinstance(event, ExchangeComplete):
                self.node.on_exchange_complete(event)
            elif isinstance(event, NodeDeparted):
                peer = self.membership.heartbeat.peers.get(event.node)
                if peer is not None:
                    self.fabric.disconnect(split_endpoint(peer.fabric_endpoint))
