"""Mesh heartbeat: who is alive (the adjacency), and the maximal clique of what we can see.

Inputs: ``tick(now_ms)`` and ``on_pulse(pulse, now_ms)``. Outputs (through the Outbox):
a ``Pulse`` to every known mesh endpoint each ``interval`` ms, and the events
``NodeArrived``, ``NodeDeparted`` and ``AdjacencyChanged``.

* A pulse from X makes X adjacent (unless the adjacency is already ``max_cluster_size − 1``
  large); X departs when nothing was heard for ``interval × timeout`` ms.
* Pulses whose stamp is not newer than the last one from the same incarnation of X are
  dropped (delayed/reordered); a restarted X has a new incarnation.
* A node whose pulses carry another cluster name more than 2 times in a row is evicted.
* Mesh discovery: pulses list the heartbeat endpoints of the sender's adjacent nodes, and
  the receiver pulses those endpoints too. Learned endpoints silent for 10 node timeouts
  are forgotten (Aerospike's MESH_INACTIVE_TIMEOUT); seeds never are, and are pulsed for
  ever. As in Aerospike, two nodes that forgot each other and cannot reach any node that
  knows them both (a seed, or a common neighbour) stay apart until the network lets them
  meet one again.
"""

from dataclasses import dataclass

from .effects import AdjacencyChanged, HeartbeatSend, NodeArrived, NodeDeparted, Outbox
from .messages import Pulse
from .partition_balance import MAX_CLUSTER_SIZE

CLUSTER_NAME_MISMATCH_MAX = 2
MESH_FORGET_TIMEOUTS = 10


@dataclass
class HeartbeatConfig:
    """``interval`` and ``timeout`` may be changed at run time (``set_interval``/``set_timeout``)."""

    interval_ms: int = 150
    timeout: int = 10  # intervals without a pulse before a node is declared dead
    max_cluster_size: int = MAX_CLUSTER_SIZE

    def __post_init__(self):
        self.set_interval(self.interval_ms)
        self.set_timeout(self.timeout)
        if not 1 <= self.max_cluster_size <= MAX_CLUSTER_SIZE:
            raise ValueError(f"max cluster size must be 1..{MAX_CLUSTER_SIZE}")

    def set_interval(self, interval_ms: int) -> None:
        if not 50 <= interval_ms <= 600_000:
            raise ValueError(f"heartbeat interval must be 50..600000 ms, got {interval_ms}")
        self.interval_ms = interval_ms

    def set_timeout(self, timeout: int) -> None:
        if timeout < 3:
            raise ValueError(f"heartbeat timeout must be >= 3 intervals, got {timeout}")
        self.timeout = timeout

    @property
    def node_timeout_ms(self) -> int:
        return self.interval_ms * self.timeout

    @property
    def channel_idle_ms(self) -> int:
        """How long a connection to a silent node is kept: a fraction of the node timeout,
        so a fresh one can replace a bad one before the node is declared dead (Aerospike's
        CHANNEL_NODE_READ_IDLE_TIMEOUT; 450 ms at defaults)."""
        return self.interval_ms * max(2, self.timeout // 3)


@dataclass(slots=True)
class Peer:
    """The last pulse heard from a node, and when."""

    pulse: Pulse
    heard_at: int
    adjacency: frozenset[int]
    name_mismatches: int = 0

    @property
    def fabric_endpoint(self) -> str:
        return self.pulse.fabric_endpoint

    @property
    def cluster_key(self) -> int:
        return self.pulse.cluster_key

    @property
    def succession(self) -> tuple[int, ...]:
        return self.pulse.succession

    @property
    def sequence(self) -> int:
        return self.pulse.sequence


class Heartbeat:
    def __init__(
        self,
        node_id: int,
        outbox: Outbox,
        *,
        cluster_name: str,
        endpoint: str,
        fabric_endpoint: str,
        seeds: tuple[str, ...] = (),
        config: HeartbeatConfig | None = None,
        incarnation: int,
        now_ms: int,
    ):
        self.node_id = node_id
        self.config = config or HeartbeatConfig()
        self.cluster_name = cluster_name
        self.endpoint = endpoint
        self.fabric_endpoint = fabric_endpoint
        self.incarnation = incarnation
        self.adjacency: dict[int, Peer] = {}
        self.peers: dict[int, Peer] = {}  # everyone heard from, adjacent or not
        self.seeds = tuple(dict.fromkeys(s for s in seeds if s != endpoint))  # ordered: runs must replay
        self._mesh: dict[str, int] = dict.fromkeys(self.seeds, now_ms)  # endpoint -> last sign of life
        self._mesh_oldest = now_ms  # a lower bound of the non-seed signs of life
        self._out = outbox
        self._next_pulse = now_ms
        self._last_stamp = 0
        self._adjacency_view: tuple | None = None  # (ids, known) for our pulses; None = recompute
        # The clustering view carried by our pulses; set by clustering.
        self.cluster_key = 0
        self.succession: tuple[int, ...] = ()
        self.sequence = 0

    # --- queries ---------------------------------------------------------------------

    def is_alive(self, node: int) -> bool:
        return node == self.node_id or node in self.adjacency

    def knows(self, endpoint: str) -> bool:
        """Whether we pulse ``endpoint`` (a seed, or learned and not yet forgotten)."""
        return endpoint in self._mesh

    def adjacency_of(self, node: int) -> frozenset[int]:
        if node == self.node_id:
            return frozenset(self.adjacency)
        peer = self.adjacency.get(node)
        return peer.adjacency if peer else frozenset()

    def maximal_clique(self, nodes) -> tuple[int, ...]:
        """A full mesh containing us within ``nodes``, sorted descending (Aerospike's greedy
        heuristic, so not necessarily the largest one).

        Nodes not mutually adjacent with us go first; then, while some pair cannot see each
        other, the node with the most missing links is dropped (ties: the smaller id).
        """
        mine = self.adjacency_of(self.node_id)
        kept = {self.node_id} | {n for n in nodes if n in mine and self.node_id in self.adjacency_of(n)}
        while True:
            missing = {n: 0 for n in kept}
            members = sorted(kept)
            for i, a in enumerate(members):
                seen_by_a = self.adjacency_of(a)
                for b in members[i + 1 :]:
                    if b not in seen_by_a or a not in self.adjacency_of(b):
                        missing[a] += 1
                        missing[b] += 1
            worst = max(missing.values())
            if worst == 0:
                return tuple(sorted(kept, reverse=True))
            kept.remove(min(n for n, count in missing.items() if count == worst))

    def next_deadline(self) -> int:
        """The earliest ms at which ``tick`` has something to do: the next pulse, or the
        first moment an adjacent node can expire. Ticking earlier changes nothing."""
        timeout = self.config.interval_ms * self.config.timeout + 1
        due = self._next_pulse - timeout  # in heard_at terms
        for peer in self.adjacency.values():
            if peer.heard_at < due:
                due = peer.heard_at
        return due + timeout

    # --- inputs ----------------------------------------------------------------------

    def tick(self, now_ms: int) -> None:
        if now_ms >= self._next_pulse:
            self._next_pulse = max(self._next_pulse + self.config.interval_ms, now_ms)
            self._forget_silent_endpoints(now_ms)
            self._send_pulses(now_ms)
        deadline = now_ms - self.config.interval_ms * self.config.timeout
        for peer in self.adjacency.values():
            if peer.heard_at < deadline:
                self._expire(now_ms)
                break

    def on_pulse(self, pulse: Pulse, now_ms: int) -> None:
        src = pulse.src
        if src == self.node_id:
            return
        peer = self.peers.get(src)
        if peer is None:
            if pulse.cluster_name != self.cluster_name:
                return  # a stranger of another cluster: nothing to count against
            last = None
            peer = self.peers[src] = Peer(pulse, now_ms, frozenset(pulse.adjacency))
            adjacency_changed = False
        else:
            last = peer.pulse
            if last.incarnation == pulse.incarnation and pulse.stamp <= last.stamp:
                return  # delayed or duplicated
            if pulse.cluster_name != self.cluster_name:
                self._on_foreign_pulse(pulse, peer)
                return
            peer.pulse, peer.heard_at, peer.name_mismatches = pulse, now_ms, 0
            adjacency_changed = pulse.adjacency != last.adjacency
            if adjacency_changed:
                peer.adjacency = frozenset(pulse.adjacency)
        mesh = self._mesh
        mesh[pulse.endpoint] = now_ms
        if last is None or pulse.known != last.known:
            for _, endpoint in pulse.known:
                if endpoint not in mesh and endpoint != self.endpoint:
                    mesh[endpoint] = now_ms  # discovered through the sender
        if src in self.adjacency:
            if adjacency_changed:
                self._out.emit(AdjacencyChanged(src))
            if last.endpoint != pulse.endpoint:
                self._adjacency_view = None
        elif len(self.adjacency) < self.config.max_cluster_size - 1:
            self.adjacency[src] = peer
            self._adjacency_view = None
            self._out.emit(NodeArrived(src))

    # --- internals -------------------------------------------------------------------

    def _expire(self, now_ms: int) -> None:
        deadline = now_ms - self.config.node_timeout_ms
        for node in [n for n, peer in self.adjacency.items() if peer.heard_at < deadline]:
            del self.adjacency[node]
            self._adjacency_view = None
            self._out.emit(NodeDeparted(node))

    def _forget_silent_endpoints(self, now_ms: int) -> None:
        forget_before = now_ms - MESH_FORGET_TIMEOUTS * self.config.node_timeout_ms
        if self._mesh_oldest >= forget_before:
            return  # last signs of life only ever move forward: nothing can be that old yet
        for endpoint in [e for e, t in self._mesh.items() if t < forget_before and e not in self.seeds]:
            del self._mesh[endpoint]
        self._mesh_oldest = min((t for e, t in self._mesh.items() if e not in self.seeds), default=now_ms)

    def _on_foreign_pulse(self, pulse: Pulse, known: Peer | None) -> None:
        if known is None:
            return
        known.name_mismatches += 1
        if known.name_mismatches > CLUSTER_NAME_MISMATCH_MAX and self.adjacency.pop(pulse.src, None):
            self._adjacency_view = None
            self._out.emit(NodeDeparted(pulse.src, evicted=True))

    def _send_pulses(self, now_ms: int) -> None:
        # Stamps only need to increase per incarnation; now_ms normally already does.
        self._last_stamp = max(now_ms, self._last_stamp + 1)
        view = self._adjacency_view
        if view is None or len(view[0]) != len(self.adjacency):  # the length guards direct edits
            ids = tuple(sorted(self.adjacency))
            view = self._adjacency_view = (ids, tuple((n, self.adjacency[n].pulse.endpoint) for n in ids))
        pulse = Pulse(
            self.node_id,
            self.cluster_name,
            self.incarnation,
            self._last_stamp,
            self.endpoint,
            self.fabric_endpoint,
            view[0],
            view[1],
            self.cluster_key,
            self.succession,
            self.sequence,
        )
        self._out.sends += [HeartbeatSend(endpoint, pulse) for endpoint in self._mesh]  # Outbox.pulse, for each
