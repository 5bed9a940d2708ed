"""One node's membership stack: heartbeat + clustering + exchange behind one interface.

The runtime (asyncio node or simulator) drives it like etcd's raft ``Node``::

    m = Membership(node_id, cluster_name=..., endpoint="10.0.0.1:3002",
                   fabric_endpoint="10.0.0.1:3001", seeds=(...), rng=random.Random(), now_ms=now)
    m.tick(now)                 # every ``tick_ms`` ms or sooner (ticks before
                                # ``m.next_deadline(now)`` are no-ops and may be skipped)
    m.step(decode(data), now)   # every message received, heartbeat or fabric
    sends, events = m.ready()   # HeartbeatSend / FabricSend to deliver; events to act on

Events are routed internally too: heartbeat arrivals/departures feed clustering's quantum
generator, ``ClusterChanged``/``Orphaned`` start/stop the exchange. Fabric messages to self
are handled at once without leaving the node.
"""

from .clustering import TIMER_MS, Clustering, ClusteringConfig
from .effects import AdjacencyChanged, ClusterChanged, NodeArrived, NodeDeparted, Orphaned, Outbox
from .exchange import Exchange
from .heartbeat import Heartbeat, HeartbeatConfig
from .messages import CLUSTERING_MESSAGES, EXCHANGE_MESSAGES, Pulse, Versions


class Membership:
    def __init__(
        self,
        node_id: int,
        *,
        cluster_name: str,
        endpoint: str,
        fabric_endpoint: str,
        seeds: tuple[str, ...] = (),
        heartbeat_config: HeartbeatConfig | None = None,
        clustering_config: ClusteringConfig | None = None,
        rng,
        now_ms: int,
    ):
        self.node_id = node_id
        self._out = Outbox(node_id)
        self.heartbeat = Heartbeat(
            node_id,
            self._out,
            cluster_name=cluster_name,
            endpoint=endpoint,
            fabric_endpoint=fabric_endpoint,
            seeds=seeds,
            config=heartbeat_config,
            incarnation=rng.getrandbits(63),
            now_ms=now_ms,
        )
        self.clustering = Clustering(
            node_id, self._out, self.heartbeat, config=clustering_config, rng=rng, now_ms=now_ms
        )
        self.exchange = Exchange(node_id, self._out, self.heartbeat.config)

    @property
    def tick_ms(self) -> int:
        """How often the runtime should call ``tick``."""
        return min(TIMER_MS, self.heartbeat.config.interval_ms // 2)

    @property
    def cluster_key(self) -> int:
        return self.clustering.cluster_key

    @property
    def succession(self) -> tuple[int, ...]:
        return self.clustering.succession

    def set_local_versions(self, versions: Versions) -> None:
        self.exchange.local_versions = versions

    def tick(self, now_ms: int) -> None:
        out = self._out
        self.heartbeat.tick(now_ms)
        if out.unrouted or out.loopback:
            self._settle(now_ms)
        # Clustering and exchange ticks before their deadlines are no-ops: skip them.
        if self.clustering.next_deadline(now_ms) <= now_ms:
            self.clustering.tick(now_ms)
        due = self.exchange.next_deadline()
        if due is not None and due <= now_ms:
            self.exchange.tick(now_ms)
        if out.unrouted or out.loopback:
            self._settle(now_ms)

    def next_deadline(self, now_ms: int) -> int:
        """The earliest ms at which ``tick`` can have an effect (next pulse, expiry check,
        quantum, retransmission); ``<= now_ms`` means at the next tick. Ticks before it are
        no-ops, so a driver may skip them. It can only move earlier through ``step``, and
        only when that step produced sends or events or was not a pulse."""
        due = self.clustering.next_deadline(now_ms)
        if due <= now_ms:
            return due  # busy: tick at every opportunity
        heartbeat = self.heartbeat.next_deadline()
        if heartbeat < due:
            due = heartbeat
        exchange = self.exchange.next_deadline()
        return due if exchange is None or due < exchange else exchange

    def next_wake(self, now_ms: int) -> int:
        """When a real-time driver should tick next: at ``next_deadline``, but at least every
        ``tick_ms`` (a step can move deadlines earlier). While that deadline is already due
        (a round in flight, an orphan following pulses), every ``tick_ms`` and at the end
        of the quantum: on Aerospike's 75 ms timer alone a due quantum starts 37 ms late on
        average."""
        due = self.next_deadline(now_ms)
        if due <= now_ms:
            due = self.clustering.quantum_due()
        return due if now_ms < due < now_ms + self.tick_ms else now_ms + self.tick_ms

    def step(self, msg, now_ms: int) -> None:
        if type(msg) is Pulse:  # the bulk of all traffic: skip the dispatch chain
            self.heartbeat.on_pulse(msg, now_ms)
        else:
            self._dispatch(msg, now_ms)
        if self._out.unrouted or self._out.loopback:
            self._settle(now_ms)

    def has_ready(self) -> bool:
        return bool(self._out.sends or self._out.events)

    def ready(self) -> tuple[list, list]:
        """Take what to send and what happened since the last call."""
        return self._out.take()

    def _dispatch(self, msg, now_ms: int) -> None:
        if isinstance(msg, Pulse):
            self.heartbeat.on_pulse(msg, now_ms)
        elif isinstance(msg, CLUSTERING_MESSAGES):
            self.clustering.step(msg, now_ms)
        elif isinstance(msg, EXCHANGE_MESSAGES):
            self.exchange.step(msg, now_ms)
        else:
            raise TypeError(f"not a membership message: {type(msg).__name__}")

    def _settle(self, now_ms: int) -> None:
        out = self._out
        if not (out.loopback or out.unrouted):
            return
        while out.loopback or out.unrouted:
            if out.unrouted:
                event = out.unrouted.popleft()
                if isinstance(event, NodeArrived | NodeDeparted | AdjacencyChanged):
                    self.clustering.on_heartbeat_event(event, now_ms)
                elif isinstance(event, ClusterChanged):
                    self.exchange.on_cluster_changed(event.cluster_key, event.succession, now_ms)
                elif isinstance(event, Orphaned):
                    self.exchange.on_orphaned()
            else:
                self._dispatch(out.loopback.popleft(), now_ms)
