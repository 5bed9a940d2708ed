"""One node's data plane, sans I/O: partition ownership, replica writes and migrations.

The node runtime and the simulator drive the same object: they hand it the exchange's
outcome, fabric messages and the time, send what it puts in the outbox and act on the
events it emits there (`Replicated`, `ServeProxied`, `ProxyDone`, `DupResolved`: the
transaction layer's replica writes, proxies and duplicate resolution). It decides,
per namespace and partition, who serves (`route`), where a write must be replicated
(`replica_targets`), what migrates where, and which version of each partition this node
reports in the next exchange (`local_versions`).

Per-partition life after a rebalance (see rebalance.py for the plan itself):

* the final master that is not yet the working master waits for its immigrations (from the
  acting master and from duplicates); when the last one is in, it becomes the working
  master, adopts the final version and sends its contingent migrations to the replicas
  that still need the data; when those are done it signals ALL_DONE to the witnesses;
* the acting master serves until the final master acknowledged its emigration (DONE_ACK),
  then hands off: it stops serving and forwards to the final master;
* a replica that waits for an immigration takes replica writes but serves no reads;
* a witness (not a replica, holding a copy) drops its copy on ALL_DONE.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from cluster.storage.engine import N_PARTITIONS, StorageEngine, StorageError, partition_id
from cluster.wire.result_codes import ResultCode

from .data_messages import (
    MIGRATION_MESSAGES,
    DupRequest,
    DupResponse,
    MigrateAllDone,
    MigrateAllDoneAck,
    ProxyRequest,
    ProxyResponse,
    ReplWrite,
    ReplWriteAck,
)
from .dup_res import DuplicateResolution
from .effects import ExchangeComplete, Outbox
from .messages import Versions
from .migration import CONTROL_RETRANSMIT_MS, Emigration, MigrationConfig, Migrations
from .partition_balance import effective_replication_factor, partition_table
from .partition_version import ISOLATED, Version, version_ckey
from .proxy import Proxies
from .rebalance import ACTING_MASTER, CONTINGENT, PartitionPlan, balance_namespace, versions_by_pid
from .records import LAST_UPDATE_TIME, apply_if_better
from .replication import Replication

LOCAL, PROXY, UNAVAILABLE = "local", "proxy", "unavailable"


@dataclass(eq=False)
class PartitionState:
    replicas: tuple[int, ...] = ()
    working_master: int = 0
    immigrating: set[int] = field(default_factory=set)  # sources still expected
    contingent: tuple[int, ...] = ()  # final master: to send once immigrations are in
    contingent_pending: set[int] = field(default_factory=set)
    witnesses: tuple[int, ...] = ()
    signals_pending: dict[int, int] = field(default_factory=dict)  # witness -> ALL_DONE sent at
    version: Version = Version()
    final_version: Version = Version()
    duplicates: tuple[int, ...] = ()  # nodes holding other lineages to merge (rebalance.py)


@dataclass
class DataPlaneStats:
    replica_writes_applied: int = 0
    replica_writes_rejected: int = 0
    partitions_dropped: int = 0


class DataPlane:
    def __init__(self, node_id: int, outbox: Outbox, stores: Mapping[str, StorageEngine],
                 replication_factor: Mapping[str, int], migration: MigrationConfig,
                 partitions: int = N_PARTITIONS):
        """`partitions` < 4096 restricts the plane to pids 0..partitions-1 (a simulator that
        only ever uses those digests saves the cost of the rest; every node must agree)."""
        self.node_id = node_id
        self.out = outbox
        self.stores = stores
        self.replication_factor = replication_factor  # configured, per namespace (may change)
        self.config = migration
        self.stats = DataPlaneStats()
        self.cluster_key = 0  # of the last completed exchange; 0 before the first balance
        self.partitions: dict[str, list[PartitionState]] = {
            ns: [PartitionState() for _ in range(partitions)] for ns in stores}
        self.n_partitions = partitions
        self.migrations = Migrations(node_id, outbox, stores, migration, self._expects, self._emigrated,
                                     self._immigrated)
        self.replication = Replication(node_id, outbox, migration)
        self.proxies = Proxies(node_id, outbox)
        self.dup_res = DuplicateResolution(node_id, outbox, stores, migration)
        # partitions with ALL_DONE unacked; a dict, not a set: its order decides the order of
        # messages, and a set of str-keyed tuples iterates differently with every hash seed
        self._signalling: dict[tuple[str, int], None] = {}
        self.map_version = 0  # bumped whenever ownership or versions change (republish the map)
        self._frozen = False  # between a cluster change and its exchange: versions must not move

    # -- versions ------------------------------------------------------------------------

    def load_versions(self, now_s: int) -> None:
        """At start-up: every partition with anything on disk is an isolated copy (as Aerospike's exchange treats a restarted node's data)."""
        for ns, store in self.stores.items():
            for pid, state in enumerate(self.partitions[ns]):
                has_data = store.partition_count(pid) or store.partition_entries(pid, now_s)  # tombstones count
                state.version = ISOLATED if has_data else Version()
        self.map_version += 1

    def local_versions(self) -> Versions:
        out: Versions = {}
        for ns, states in self.partitions.items():
            by_version: dict[int, list[int]] = {}
            for pid, state in enumerate(states):
                if state.version.has_data:
                    by_version.setdefault(state.version.pack(), []).append(pid)
            out[ns] = {v: tuple(pids) for v, pids in by_version.items()}
        return out

    # -- membership events ---------------------------------------------------------------

    def on_cluster_changed(self, cluster_key: int) -> None:
        """Migrations stop at once; routing stays as it is until the exchange completes.

        From now until the exchange completes the versions this node sent must not change
        (every member plans from them), so late migration signals are ignored meanwhile."""
        self.migrations.reset(cluster_key)
        self.replication.cluster_key = cluster_key
        self._frozen = True

    def on_orphaned(self) -> None:
        """No cluster: partitions are unavailable here (the real server's "frozen" partitions) until the next
        exchange; the versions stay, to be exchanged when a cluster forms again."""
        self.migrations.reset(0)
        self.cluster_key = 0
        self._frozen = True
        self._signalling = {}
        self.map_version += 1

    def on_exchange_complete(self, event: ExchangeComplete, now_ms: int) -> None:
        self.cluster_key = event.cluster_key
        self._frozen = False
        self.migrations.reset(event.cluster_key)
        self.replication.cluster_key = event.cluster_key
        self._signalling = {}
        for ns, states in self.partitions.items():
            racks = {node: by_ns.get(ns, 0) for node, by_ns in event.racks.items()}  # each namespace its own
            table = partition_table(event.succession, racks)[:self.n_partitions]
            rf = effective_replication_factor(self.replication_factor[ns], len(event.succession))
            versions = {node: versions_by_pid(v.get(ns, {})) for node, v in event.versions_by_node.items()}
            for plan in balance_namespace(table, rf, versions, event.cluster_key, self.node_id):
                self._install(ns, plan, states[plan.pid])
        self.migrations.allow()
        self.replication.retarget(self.replica_targets, now_ms)
        self.map_version += 1

    def _install(self, ns: str, plan: PartitionPlan, state: PartitionState) -> None:
        state.replicas, state.working_master = plan.replicas, plan.working_master
        state.immigrating = set(plan.immigrate_from)
        state.contingent = plan.contingent_to
        state.contingent_pending = set(plan.contingent_to)
        state.witnesses, state.signals_pending = plan.witnesses, {}
        state.version, state.final_version = plan.version, plan.final_version
        state.duplicates = plan.duplicates
        if plan.drop:
            self._drop(ns, plan.pid, state)
        for dst, kind in plan.emigrate_to:
            self.migrations.emigrate(ns, plan.pid, dst, kind)

    def _drop(self, ns: str, pid: int, state: PartitionState) -> None:
        self.stores[ns].drop_partition(pid)
        state.version = Version()
        self.stats.partitions_dropped += 1
        self.map_version += 1

    # -- routing ---------------------------------------------------------------------------

    def route(self, ns: str, pid: int, write: bool) -> tuple[str, int]:
        """Where a client transaction on this partition executes: (LOCAL | PROXY | UNAVAILABLE, node)."""
        if self.cluster_key == 0:
            return UNAVAILABLE, 0
        state = self.partitions[ns][pid]
        if state.working_master == self.node_id:
            return LOCAL, self.node_id
        if not write and self.node_id in state.replicas and not state.immigrating:
            return LOCAL, self.node_id
        return PROXY, state.working_master

    def dup_sources(self, ns: str, pid: int) -> tuple[int, ...]:
        """Duplicates a write here must consult first (core/dup_res.py): the ones not merged in yet.

        The final master knows when a duplicate's migration is in; an acting master does not
        (the duplicates migrate to the final master), so it consults them until it hands off.
        """
        state = self.partitions[ns][pid]
        if not state.duplicates or state.working_master != self.node_id:  # the common case: none
            return ()
        if state.replicas[0] != self.node_id:
            return tuple(n for n in state.duplicates if n != self.node_id)
        return tuple(n for n in state.duplicates if n in state.immigrating)

    def replica_targets(self, ns: str, pid: int) -> tuple[int, ...]:
        replicas = self.partitions[ns][pid].replicas
        if replicas == (self.node_id,):  # replication-factor 1, asked on every write
            return ()
        return tuple(n for n in replicas if n != self.node_id)

    def is_master(self, ns: str, pid: int) -> bool:
        return self.partitions[ns][pid].working_master == self.node_id

    # -- messages and time -----------------------------------------------------------------

    def step(self, msg, now_ms: int, now_s: int) -> None:
        kind = type(msg)
        if kind is ReplWrite:
            self._on_replica_write(msg, now_s)
        elif kind is ReplWriteAck:
            self.replication.on_ack(msg)
        elif kind is ProxyRequest:
            self.proxies.on_request(msg, now_ms)
        elif kind is ProxyResponse:
            self.proxies.on_response(msg)
        elif kind is DupRequest:
            self.dup_res.on_request(msg, now_s)
        elif kind is DupResponse:
            self.dup_res.on_response(msg, now_s)
        elif kind is MigrateAllDone:
            self._on_all_done(msg)
        elif kind is MigrateAllDoneAck:
            if msg.cluster_key == self.cluster_key and msg.namespace in self.partitions:
                self.partitions[msg.namespace][msg.pid].signals_pending.pop(msg.src, None)
        elif kind in MIGRATION_MESSAGES:
            self.migrations.step(msg, now_ms, now_s)

    def pump(self, now_ms: int, now_s: int) -> int | None:
        """Send what is due; returns when to call again at the latest (None: nothing pending)."""
        wakes = [self.migrations.pump(now_ms, now_s), self.replication.tick(now_ms), self._resend_signals(now_ms),
                 self.proxies.tick(now_ms), self.dup_res.tick(now_ms)]
        wakes = [w for w in wakes if w is not None]
        return min(wakes) if wakes else None

    def _on_replica_write(self, msg: ReplWrite, now_s: int) -> None:
        states = self.partitions.get(msg.namespace)
        if states is None:
            result = ResultCode.NAMESPACE_NOT_FOUND
        elif self.node_id not in states[partition_id(msg.image.digest)].replicas:
            result = ResultCode.CLUSTER_KEY_MISMATCH  # not (or no longer) a replica: the master retries
            self.stats.replica_writes_rejected += 1
        else:
            try:  # replica writes ignore stop-writes and always resolve by last-update-time
                apply_if_better(self.stores[msg.namespace], msg.image, LAST_UPDATE_TIME, now_s)
                result = ResultCode.OK
                self.stats.replica_writes_applied += 1
            except StorageError:
                result = ResultCode.OUT_OF_SPACE
        self.out.fabric(msg.src, ReplWriteAck(self.node_id, msg.tid, result))

    # -- migration progress --------------------------------------------------------------

    def _expects(self, ns: str, pid: int, src: int) -> bool:
        return src in self.partitions[ns][pid].immigrating

    def _immigrated(self, ns: str, pid: int, src: int) -> None:
        state = self.partitions[ns][pid]
        state.immigrating.discard(src)
        final_master = state.replicas[0] == self.node_id
        if final_master and src == state.working_master:
            # The acting master's copy is in: serve from now on (it hands off on our DONE_ACK),
            # and say so in our version, so that a new exchange before the duplicates are in
            # still finds the copy that took the latest writes.
            state.working_master = self.node_id
            state.version = state.final_version
            self.map_version += 1
        if state.immigrating:
            return
        state.version = state.final_version
        self.map_version += 1
        if final_master:
            state.working_master = self.node_id
            for dst in state.contingent:
                self.migrations.emigrate(ns, pid, dst, CONTINGENT)
            self._maybe_all_done(ns, pid, state)

    def _emigrated(self, em: Emigration) -> None:
        state = self.partitions[em.namespace][em.pid]
        self.map_version += 1
        if em.kind == CONTINGENT:
            state.contingent_pending.discard(em.dst)
            self._maybe_all_done(em.namespace, em.pid, state)
            return
        if em.kind == ACTING_MASTER:  # hand-off: the final master serves from now on
            state.working_master = state.replicas[0]
        # Our copy is in the final master: join the merge's lineage (family 0), as a subset
        # while the merge has yet to reach us or if we are no replica (Aerospike's
        # emigrate_done_advance_non_master_version). Not before: a cluster change must
        # still find a duplicate's records where the working master lacks them.
        v = state.version
        subset = v.subset or bool(state.immigrating) or self.node_id not in state.replicas
        state.version = Version(version_ckey(self.cluster_key), 0, subset=subset, evade=v.evade)

    def _maybe_all_done(self, ns: str, pid: int, state: PartitionState) -> None:
        if not state.immigrating and not state.contingent_pending:
            state.signals_pending = dict.fromkeys(state.witnesses, -CONTROL_RETRANSMIT_MS)
            if state.signals_pending:
                self._signalling[(ns, pid)] = None

    def _resend_signals(self, now_ms: int) -> int | None:
        wake = None
        for ns, pid in list(self._signalling):
            pending = self.partitions[ns][pid].signals_pending
            if not pending:
                del self._signalling[(ns, pid)]
                continue
            for node, sent in pending.items():
                if now_ms - sent >= CONTROL_RETRANSMIT_MS:
                    pending[node] = sent = now_ms
                    self.out.fabric(node, MigrateAllDone(self.node_id, self.cluster_key, ns, pid))
                wake = sent + CONTROL_RETRANSMIT_MS if wake is None else min(wake, sent + CONTROL_RETRANSMIT_MS)
        return wake

    def _on_all_done(self, msg: MigrateAllDone) -> None:
        if msg.cluster_key != self.cluster_key or self._frozen or msg.namespace not in self.partitions:
            return
        state = self.partitions[msg.namespace][msg.pid]
        if self.node_id not in state.replicas:
            if state.working_master == self.node_id:  # ALL_DONE overtook our DONE_ACK
                state.working_master = state.replicas[0]
            if state.version.has_data:
                self._drop(msg.namespace, msg.pid, state)
        self.out.fabric(msg.src, MigrateAllDoneAck(self.node_id, self.cluster_key, msg.namespace, msg.pid))

    # -- metrics ---------------------------------------------------------------------------

    def remaining(self, ns: str) -> tuple[int, int, int]:
        """(tx, rx, signals) partitions still to migrate in one namespace."""
        tx = self.migrations.tx_remaining_in(ns)
        rx = signals = 0
        for state in self.partitions[ns]:
            if state.immigrating:
                rx += len(state.immigrating)
                tx += len(state.contingent)
            signals += len(state.signals_pending)
        return tx, rx, signals
