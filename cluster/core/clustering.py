"""Clustering: agreeing on the succession list and cluster key with a Paxos variant.

Every node is an acceptor; the principal (highest id of the succession list) proposes
membership changes, and so does the highest orphan of a group of orphans that forms a new
cluster. Decisions are taken only at quantum boundaries so that correlated faults are
handled together (Aerospike's clustering.c quantum intervals). Inputs: ``tick(now_ms)``, ``step(msg, now_ms)`` for the
clustering messages, ``on_heartbeat_event(event, now_ms)``. Outputs: fabric messages and
the events ``ClusterChanged`` (new register applied by all members) and ``Orphaned``.

Register: ``cluster_key`` (0 = orphan), ``succession`` (descending), the proposal that
installed it, and whether every member has applied it (SYNCED).

Paxos round (proposal id = (seq, proposer), seq above every seq seen so far):
PREPARE → PROMISE from a majority → ACCEPT → ACCEPTED from *all* acceptors and the list at
least ``min-cluster-size`` long → LEARN(new random 48-bit key, list), retransmitted until
every member answered CHANGE_APPLIED. A round not decided within the proposal timeout is
dropped and retried at a later quantum. An acceptor answers only an orphan-making or its
own principal's proposal, and only proposals not older than the last it promised.
"""

from dataclasses import dataclass, field
from functools import lru_cache

from .effects import AdjacencyChanged, ClusterChanged, NodeArrived, NodeDeparted, Orphaned, Outbox
from .heartbeat import Heartbeat
from .messages import (
    Accept,
    Accepted,
    AcceptNack,
    ChangeApplied,
    JoinReject,
    JoinRequest,
    Learn,
    MergeMove,
    Prepare,
    PrepareNack,
    Promise,
)

CLUSTER_KEY_BITS = 48
QUANTUM_SKIP_MAX = 2
EARLY_VIEWS_MAX = 4
DEPARTURE_FAULTS = frozenset({"departed", "principal departed", "adjacency"})
TIMER_MS = 75  # Aerospike's clustering timer; the driver should tick at least this often


@dataclass
class ClusteringConfig:
    min_cluster_size: int = 1
    latency_max_ms: int = 5  # fabric latency-max-ms
    quantum_interval_ms: int | None = None  # override the formula (tests)

    def __post_init__(self):
        if self.min_cluster_size < 1:
            raise ValueError("min-cluster-size must be >= 1")
        if self.quantum_interval_ms is not None and self.quantum_interval_ms < 50:
            raise ValueError("quantum interval must be >= 50 ms")


@dataclass(frozen=True)
class Timing:
    """Aerospike's quantum timings, from the current heartbeat settings (they can change at run time)."""

    quantum: int
    proposal_timeout: int
    paxos_retransmit: int
    join_timeout: int
    join_retransmit: int
    join_blackout: int
    sync_check: int
    wait_arrived: int
    wait_departed: int
    wait_adjacency: int
    wait_join: int

    @staticmethod
    @lru_cache(maxsize=32)
    def of(interval: int, timeout: int, latency: int, quantum: int | None = None) -> "Timing":
        rtt = 2 * latency
        node_timeout = interval * timeout
        hop = 2 * (interval + latency)
        q = quantum or max(4 * rtt, min(max(5000, 2 * interval), node_timeout + hop))
        join_timeout = int((1 + 0.5 + (QUANTUM_SKIP_MAX - 1)) * q)
        return Timing(
            quantum=q,
            proposal_timeout=max(q // 2, rtt),
            paxos_retransmit=max(min(q // 4, 100), rtt),
            join_timeout=join_timeout,
            join_retransmit=min(interval // 2, q // 2),
            join_blackout=min(join_timeout, q // 2, 2 * interval),
            sync_check=max(rtt, interval),
            wait_arrived=min(q, hop + q // 2),
            wait_departed=min(q, node_timeout + hop + q // 4),
            wait_adjacency=min(q, interval + latency),
            wait_join=min(q, TIMER_MS + latency + interval),
        )


@dataclass
class _Round:
    seq: int
    succession: tuple[int, ...]
    cluster_key: int
    started_at: int
    sent_at: int
    phase: str = "prepare"  # prepare -> accept -> learn
    promised: set[int] = field(default_factory=set)
    nacked: set[int] = field(default_factory=set)
    accepted: set[int] = field(default_factory=set)

    @property
    def majority(self) -> int:
        return len(self.succession) // 2 + 1


class Clustering:
    def __init__(
        self,
        node_id: int,
        outbox: Outbox,
        heartbeat: Heartbeat,
        *,
        config: ClusteringConfig | None = None,
        rng,
        now_ms: int,
    ):
        self.node_id = node_id
        self.config = config or ClusteringConfig()
        self.hb = heartbeat
        self._out = outbox
        self._rng = rng  # anything with getrandbits(n), e.g. random.Random(seed)
        self._timing_key: tuple | None = None
        self._tick_clique: tuple[int, ...] | None = None  # the orphan clique, cached during tick()
        self._timing: Timing | None = None
        # register
        self.cluster_key = 0
        self.succession: tuple[int, ...] = ()
        self.synced = False
        self._installed_at = now_ms
        self._applied_by: set[int] = set()
        self._early_applied: dict[tuple[int, tuple[int, ...]], set[int]] = {}  # for a view not yet installed
        self._sync_sent_at = now_ms
        # acceptor
        self._max_seq = 0
        self._promised: tuple[int, int] | None = None
        self._accepted: tuple[int, int] | None = None
        # proposer
        self._round: _Round | None = None
        # quantum generator: first time each kind of fault was seen in this quantum
        self._quantum_start = now_ms  # restarted by the first tick
        self._ticked = False
        self._faults: dict[str, int] = {}
        # joins received (as principal, or orphan about to form) and sent (as orphan)
        self._join_requests: dict[int, int] = {}
        self._join_target: int | None = None
        self._join_sent_at = 0
        self._join_retransmitted_at = 0
        self._blackout: dict[int, int] = {}
        self._join_turn = 0
        self._merge_sent_at: int | None = None
        self._lost: tuple[int, ...] = ()  # the cluster we were in before turning orphan

    # --- queries ---------------------------------------------------------------------

    @property
    def timing(self) -> Timing:
        hb, cfg = self.hb.config, self.config
        key = (hb.interval_ms, hb.timeout, cfg.latency_max_ms, cfg.quantum_interval_ms)
        if key != self._timing_key:  # the settings can change at run time
            self._timing_key, self._timing = key, Timing.of(*key)
        return self._timing

    @property
    def is_orphan(self) -> bool:
        return self.cluster_key == 0

    @property
    def principal(self) -> int | None:
        return self.succession[0] if self.succession else None

    @property
    def is_principal(self) -> bool:
        return self.principal == self.node_id

    def next_deadline(self, now_ms: int) -> int:
        """The earliest ms at which ``tick`` may act: ``now_ms`` while a round is in flight,
        the register is not synced or we are orphan (what a tick does then depends on what
        the latest pulses say); otherwise the quantum's end, or now if a loss has already
        settled (``_loss_settled`` reads only state that changes with heartbeat events)."""
        if self._round is not None or not self.synced or self.cluster_key == 0:
            return now_ms
        if self._faults:
            return now_ms if self._loss_settled() else self._quantum_due(self.timing)
        return self._quantum_start + self.timing.quantum

    def quantum_due(self) -> int:
        """When the current quantum interval ends (it can move earlier as faults arrive)."""
        return self._quantum_due(self.timing)

    # --- inputs ----------------------------------------------------------------------

    def on_heartbeat_event(self, event, now_ms: int) -> None:
        t = self.timing
        if isinstance(event, NodeArrived):
            self._fault("arrived", t.wait_arrived, now_ms)
        elif isinstance(event, NodeDeparted):
            principal_left = event.node == self.principal
            self._fault("principal departed" if principal_left else "departed", t.wait_departed, now_ms)
        elif isinstance(event, AdjacencyChanged):
            self._fault("adjacency", t.wait_adjacency, now_ms)

    def tick(self, now_ms: int) -> None:
        t = self.timing
        if not self._ticked:
            # The first quantum counts from the first tick, when the heartbeat sends its first
            # pulses (Aerospike starts its quantum generator after the heartbeat), not from
            # construction: a node slow to start would otherwise reach its first quantum before
            # it could hear its seeds and form a cluster of its own: every partition would get
            # an empty master copy, which can win over the data when the clusters merge.
            self._ticked = True
            self._quantum_start = now_ms
        self._tick_clique = ()  # nothing a tick does changes what the heartbeat sees: compute it once
        try:
            self._tick_round(now_ms, t)
            if self.succession and not self.synced:
                self._tick_sync(now_ms, t)
            if self.is_orphan:
                self._tick_join(now_ms, t)
            if now_ms >= self._quantum_due(t) or self._loss_settled():
                self._start_quantum(now_ms, t)
        finally:
            self._tick_clique = None

    def step(self, msg, now_ms: int) -> None:
        handler = getattr(self, "_on_" + type(msg).__name__)
        handler(msg, now_ms)

    # --- quantum intervals -------------------------------------------------------------

    def _fault(self, kind: str, wait: int, now_ms: int) -> None:
        self._faults.setdefault(kind, now_ms + wait)

    def _quantum_due(self, t: Timing) -> int:
        if not self._faults:
            return self._quantum_start + t.quantum
        due = max(self._quantum_start + t.quantum // 2, max(self._faults.values()))
        return min(due, self._quantum_start + (1 + QUANTUM_SKIP_MAX) * t.quantum)

    def _loss_settled(self) -> bool:
        """Start the quantum early when the only news is dead members and everyone left agrees.

        Our deviation for faster failover: Aerospike waits out the quantum after a departure
        (about Q after detection) so that correlated faults land in one decision. When every
        surviving member's latest pulse already shows the dead gone, there is nothing left to
        wait for, so the principal re-forms at once, members whose principal died turn orphan
        at once, and the survivors re-form as soon as all of them have asked to join.
        """
        if self._round is not None:
            return False
        if self.is_orphan:
            return self._survivors_ready()
        if not self._faults or not self._faults.keys() <= DEPARTURE_FAULTS:
            return False
        if not self.is_principal:
            return not self.hb.is_alive(self.principal)
        dead = {m for m in self.succession if not self.hb.is_alive(m)}
        survivors = set(self.succession) - dead
        # the survivors still form a full mesh that no longer lists the dead: any adjacency
        # change we heard is explained by the deaths
        return bool(dead) and all(
            self.hb.adjacency[m].adjacency | {m} == survivors for m in survivors if m != self.node_id
        )

    def _survivors_ready(self) -> bool:
        """We lead every live member of the cluster we just lost, and all of them asked to join us."""
        if not self._lost:
            return False
        alive = {m for m in self._lost if self.hb.is_alive(m)}
        clique = self._orphan_clique()
        return (
            clique[0] == self.node_id
            and set(clique) == alive
            and len(clique) >= self.config.min_cluster_size
            and alive - {self.node_id} <= self._join_requests.keys()
            and self._join_target is None
        )

    def _start_quantum(self, now_ms: int, t: Timing) -> None:
        self._quantum_start = now_ms
        self._faults.clear()
        for node in [n for n, at in self._join_requests.items() if at + t.join_timeout < now_ms]:
            del self._join_requests[node]
        if self._round is not None:
            return  # the round in flight decides first
        if self.is_principal:
            self._principal_quantum(now_ms, t)
        elif self.is_orphan:
            self._orphan_quantum(now_ms)
        else:
            self._member_quantum(t)

    def _principal_quantum(self, now_ms: int, t: Timing) -> None:
        members = set(self.succession)
        dead = {m for m in members if not self.hb.is_alive(m)}
        faulty = {m for m in members - dead if m != self.node_id and self._view_differs(m, t)}
        joiners = {n for n in self._join_requests if self.hb.is_alive(n) and self._peer_is_orphan(n)}
        proposal = self.hb.maximal_clique((members - dead - faulty) | joiners)
        self._reject_joins(exclude=proposal)
        if not dead and not faulty and self._try_merge(now_ms, t):
            return
        if set(proposal) == members and not faulty:
            return
        if faulty and proposal == (self.node_id,):
            self._become_orphan()  # the others re-formed without us
        elif len(proposal) < self.config.min_cluster_size:
            self._become_orphan()
        else:
            self._start_round(proposal, now_ms)

    def _member_quantum(self, t: Timing) -> None:
        self._reject_joins()
        principal = self.hb.adjacency.get(self.principal)
        if principal is None:
            self._become_orphan()
        elif principal.heard_at > self._installed_at + t.sync_check and self.node_id not in principal.succession:
            self._become_orphan()  # evicted by the principal

    def _orphan_quantum(self, now_ms: int) -> None:
        """Form a new cluster when we lead a clique of orphans that all asked to join us."""
        if self._join_target is not None or self._neighbour_principals(now_ms):
            return
        clique = self._orphan_clique()
        if clique[0] != self.node_id or len(clique) < self.config.min_cluster_size:
            return
        if set(clique) - {self.node_id} <= set(self._join_requests):
            self._reject_joins(exclude=clique)
            self._start_round(clique, now_ms)

    # --- joining -----------------------------------------------------------------------

    def _tick_join(self, now_ms: int, t: Timing) -> None:
        if self._join_target is not None:
            if now_ms - self._join_sent_at < t.join_timeout and self.hb.is_alive(self._join_target):
                if now_ms - self._join_retransmitted_at >= t.join_retransmit:
                    self._send_join(self._join_target, now_ms, first=False)
                return
            self._blackout[self._join_target] = now_ms + t.join_blackout
            self._join_target = None
        principals = self._neighbour_principals(now_ms)
        if principals:
            self._join_turn += 1
            self._send_join(principals[self._join_turn % len(principals)], now_ms)
            return
        leader = self._orphan_clique()[0]
        if leader != self.node_id and self._blackout.get(leader, 0) <= now_ms:
            self._send_join(leader, now_ms)

    def _send_join(self, target: int, now_ms: int, first: bool = True) -> None:
        if first:
            self._join_target, self._join_sent_at = target, now_ms
        self._join_retransmitted_at = now_ms
        self._out.fabric(target, JoinRequest(self.node_id))

    def _neighbour_principals(self, now_ms: int) -> list[int]:
        return sorted(
            (
                n
                for n, peer in self.hb.adjacency.items()
                if peer.cluster_key and peer.succession[:1] == (n,) and self._blackout.get(n, 0) <= now_ms
            ),
            reverse=True,
        )

    def _orphan_clique(self) -> tuple[int, ...]:
        if self._tick_clique:
            return self._tick_clique
        clique = self.hb.maximal_clique(n for n in self.hb.adjacency if self._peer_is_orphan(n))
        if self._tick_clique is not None:  # within tick()
            self._tick_clique = clique
        return clique

    def _peer_is_orphan(self, node: int) -> bool:
        peer = self.hb.adjacency.get(node)
        return peer is not None and peer.cluster_key == 0

    def _on_JoinRequest(self, msg: JoinRequest, now_ms: int) -> None:
        t = self.timing
        recently_merged = self._merge_sent_at is not None and now_ms - self._merge_sent_at < t.quantum
        willing = self.is_principal or (self.is_orphan and self._join_target is None)
        if not willing or recently_merged:
            self._out.fabric(msg.src, JoinReject(self.node_id))
            return
        if msg.src not in self._join_requests:
            self._fault("join", t.wait_join, now_ms)
        self._join_requests[msg.src] = now_ms

    def _on_JoinReject(self, msg: JoinReject, now_ms: int) -> None:
        if msg.src == self._join_target:
            self._blackout[msg.src] = now_ms + self.timing.join_blackout
            self._join_target = None

    def _reject_joins(self, exclude=()) -> None:
        for node in self._join_requests:
            if node not in exclude:
                self._out.fabric(node, JoinReject(self.node_id))
        self._join_requests.clear()

    # --- merging clusters that can see each other ----------------------------------------

    def _try_merge(self, now_ms: int, t: Timing) -> bool:
        """Dissolve into an adjacent cluster whose principal has a higher id, if the union is a mesh."""
        if self._merge_sent_at is not None and now_ms - self._merge_sent_at < t.quantum:
            return False
        ours = set(self.succession)
        for node in sorted(self.hb.adjacency, reverse=True):
            peer = self.hb.adjacency[node]
            if node < self.node_id:
                break
            if peer.cluster_key in (0, self.cluster_key) or peer.succession[:1] != (node,):
                continue
            union = ours | set(peer.succession)
            if len(self.hb.maximal_clique(union)) == len(union):
                self._merge_sent_at = now_ms
                for member in self.succession:
                    self._out.fabric(member, MergeMove(self.node_id, node, self.cluster_key))
                return True
        return False

    def _on_MergeMove(self, msg: MergeMove, now_ms: int) -> None:
        if msg.cluster_key == self.cluster_key and msg.src == self.principal:
            self._become_orphan()
            self._send_join(msg.candidate, now_ms)

    # --- the register --------------------------------------------------------------------

    def _view_differs(self, node: int, t: Timing) -> bool:
        """A member whose heartbeat, sent after we installed, shows another view is faulty."""
        peer = self.hb.adjacency[node]
        fresh = peer.heard_at > self._installed_at + t.sync_check
        return fresh and (peer.cluster_key, peer.succession) != (self.cluster_key, self.succession)

    def _install(self, cluster_key: int, succession: tuple[int, ...], now_ms: int) -> None:
        self.cluster_key, self.succession = cluster_key, succession
        self._lost = ()
        self.synced = False
        self._installed_at = self._sync_sent_at = now_ms
        self._applied_by = {self.node_id} | self._early_applied.pop((cluster_key, succession), set())
        self._early_applied.clear()
        self._accepted = None
        self._join_target = None
        self._publish_view()
        for member in succession:
            if member != self.node_id:
                self._out.fabric(member, ChangeApplied(self.node_id, cluster_key, succession))
        self._check_synced()

    def _become_orphan(self) -> None:
        if self.is_orphan:
            return
        self._lost = self.succession
        self.cluster_key, self.succession = 0, ()
        self.synced = False
        self._publish_view()
        self._out.emit(Orphaned())

    def _publish_view(self) -> None:
        self.hb.cluster_key, self.hb.succession = self.cluster_key, self.succession

    def _tick_sync(self, now_ms: int, t: Timing) -> None:
        for member in self.succession:
            peer = self.hb.adjacency.get(member)
            if peer and (peer.cluster_key, peer.succession) == (self.cluster_key, self.succession):
                self._applied_by.add(member)
        self._check_synced()
        if not self.synced and now_ms - self._sync_sent_at >= t.sync_check:
            self._sync_sent_at = now_ms
            for member in set(self.succession) - self._applied_by:
                self._out.fabric(member, ChangeApplied(self.node_id, self.cluster_key, self.succession))

    def _check_synced(self) -> None:
        if not self.synced and self._applied_by >= set(self.succession):
            self.synced = True
            if self._round is not None and self._round.cluster_key == self.cluster_key:
                self._round = None  # every member applied our decision
            self._out.emit(ClusterChanged(self.cluster_key, self.succession))

    def _on_ChangeApplied(self, msg: ChangeApplied, now_ms: int) -> None:
        view = (msg.cluster_key, msg.succession)
        if view == (self.cluster_key, self.succession):
            self._applied_by.add(msg.src)
            self._check_synced()
        elif self.node_id in msg.succession and len(self._early_applied) < EARLY_VIEWS_MAX:
            # Members apply at slightly different times; remember who is ahead of us.
            self._early_applied.setdefault(view, set()).add(msg.src)

    # --- Paxos: proposer -----------------------------------------------------------------

    def _start_round(self, succession: tuple[int, ...], now_ms: int) -> None:
        peers_seq = max((p.sequence for p in self.hb.adjacency.values()), default=0)
        seq = max(now_ms, self._max_seq, peers_seq) + 1
        self._note_seq(seq)
        key = 0
        while key in (0, self.cluster_key):
            key = self._rng.getrandbits(CLUSTER_KEY_BITS)
        self._round = _Round(seq, succession, key, started_at=now_ms, sent_at=now_ms)
        for node in succession:
            self._out.fabric(node, Prepare(self.node_id, seq))

    def _tick_round(self, now_ms: int, t: Timing) -> None:
        r = self._round
        if r is None:
            return
        if now_ms - r.started_at > t.proposal_timeout:
            self._round = None
            return
        if now_ms - r.sent_at < t.paxos_retransmit:
            return
        r.sent_at = now_ms
        for node in r.succession:
            if r.phase == "prepare" and node not in r.promised | r.nacked:
                self._out.fabric(node, Prepare(self.node_id, r.seq))
            elif r.phase == "accept" and node not in r.accepted:
                self._out.fabric(node, Accept(self.node_id, r.seq))
            elif r.phase == "learn" and node not in self._applied_by:
                self._out.fabric(node, Learn(self.node_id, r.seq, r.cluster_key, r.succession))

    def _current_round(self, seq: int, proposer: int) -> _Round | None:
        r = self._round
        return r if r is not None and proposer == self.node_id and seq == r.seq else None

    def _on_Promise(self, msg: Promise, now_ms: int) -> None:
        r = self._current_round(msg.seq, msg.proposer)
        if r is None or r.phase != "prepare" or msg.src not in r.succession:
            return
        r.promised.add(msg.src)
        if len(r.promised) >= r.majority:
            r.phase, r.sent_at = "accept", now_ms
            for node in r.succession:
                self._out.fabric(node, Accept(self.node_id, r.seq))

    def _on_PrepareNack(self, msg: PrepareNack, now_ms: int) -> None:
        self._note_seq(msg.max_seq)
        r = self._current_round(msg.seq, msg.proposer)
        if r is None or r.phase != "prepare":
            return
        r.nacked.add(msg.src)
        if len(r.nacked) > len(r.succession) - r.majority:
            self._round = None  # a majority can no longer promise

    def _on_Accepted(self, msg: Accepted, now_ms: int) -> None:
        r = self._current_round(msg.seq, msg.proposer)
        if r is None or r.phase != "accept" or msg.src not in r.succession:
            return
        r.accepted.add(msg.src)
        if r.accepted == set(r.succession):
            if len(r.succession) < self.config.min_cluster_size:
                self._round = None
                return
            r.phase, r.sent_at = "learn", now_ms
            for node in r.succession:
                self._out.fabric(node, Learn(self.node_id, r.seq, r.cluster_key, r.succession))

    def _on_AcceptNack(self, msg: AcceptNack, now_ms: int) -> None:
        self._note_seq(msg.max_seq)
        if self._current_round(msg.seq, msg.proposer) is not None:
            self._round = None  # unanimity is impossible

    # --- Paxos: acceptor -----------------------------------------------------------------

    def _note_seq(self, seq: int) -> None:
        self._max_seq = max(self._max_seq, seq)
        self.hb.sequence = self._max_seq

    def _acceptable(self, seq: int, proposer: int) -> bool:
        eligible = self.is_orphan or proposer == self.principal
        return eligible and (self._promised is None or (seq, proposer) >= self._promised)

    def _on_Prepare(self, msg: Prepare, now_ms: int) -> None:
        self._note_seq(msg.seq)
        if self._acceptable(msg.seq, msg.src):
            self._promised = (msg.seq, msg.src)
            self._out.fabric(msg.src, Promise(self.node_id, msg.seq, msg.src))
        else:
            self._out.fabric(msg.src, PrepareNack(self.node_id, msg.seq, msg.src, self._max_seq))

    def _on_Accept(self, msg: Accept, now_ms: int) -> None:
        self._note_seq(msg.seq)
        if self._acceptable(msg.seq, msg.src):
            self._promised = self._accepted = (msg.seq, msg.src)
            self._out.fabric(msg.src, Accepted(self.node_id, msg.seq, msg.src))
        else:
            self._out.fabric(msg.src, AcceptNack(self.node_id, msg.seq, msg.src, self._max_seq))

    def _on_Learn(self, msg: Learn, now_ms: int) -> None:
        if (msg.cluster_key, msg.succession) == (self.cluster_key, self.succession):
            # A retransmission (a duplicate ACCEPT may even have re-armed _accepted): answer, never re-install.
            self._out.fabric(msg.src, ChangeApplied(self.node_id, self.cluster_key, self.succession))
        elif self._accepted == (msg.seq, msg.src) and self.node_id in msg.succession:
            if self._round is not None and self._round.seq < msg.seq:
                self._round = None  # someone else's decision supersedes our attempt
            self._install(msg.cluster_key, msg.succession, now_ms)
