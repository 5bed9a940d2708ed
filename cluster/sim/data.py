"""The deterministic simulator with data: DataPlanes on every node, client writes and reads.

`DataSimulation` extends the membership `Simulation`: every node also runs a `DataPlane`
over a `MemoryStore` that survives crashes (a device with commit-to-device: what the
master wrote before it acked is on disk) and is isolated at restart (`load_versions`).
Membership events feed the plane (ClusterChanged / Orphaned / ExchangeComplete), the
plane's versions feed the next exchange, and its fabric messages travel the same
simulated network (delay, loss, partitions; lost when the node is down).

A seeded client issues writes, deletes and reads on a small key space, one operation per
key at a time, as AS_MSG requests with a 1 s deadline (transaction-max-ms). Each node runs
them as the node's transaction layer does, with the same core protocols: `route()`, then
a PROXY hop is a real ProxyRequest/ProxyResponse over the simulated network
(core/proxy.py: the client's deadline travels with it, at most 3 hops); a write on a
partition with unmerged duplicates first asks their holders (core/dup_res.py: DupRequest /
DupResponse); the write itself is core/write.py on the stored copy (generation, LUT =
max(now, old + 1), durable tombstones), then replicated synchronously
(core/replication.py). The client is told OK when every replica acked; TIMEOUT or any
other failure after the write may have been applied leaves the operation in doubt, as does
no answer at all by the deadline (the entry node crashed); PARTITION_UNAVAILABLE means
not applied.

After the last fault, once every node is in one cluster with its exchange done ("the
healed cluster agreed"), the client goes on for POST_HEAL_MS (at least to the end of the
fault phase) while the heal's duplicates migrate. From then on nothing may be lost, under
either policy: duplicate resolution makes each write start from the best copy, so it beats
every copy. Checked on the working master before each write (no duplicate's copy beats the
one it starts from; it keeps every write acknowledged after the heal), on every read and at
the end (no write acknowledged after the heal is discarded) — a violation on every kind of
seed. (A cluster change after the agreement means it had not noticed the fault yet: the
agreement is void until the next one.)

Then the simulator waits until the membership invariants hold and every plane reports
`remaining() == (0, 0, 0)`, and every key is read through the cluster. A key whose value is
not its last acknowledged one (or a newer one in doubt) lost acknowledged writes: the number
of acknowledged operations newer than what is visible is counted; for a key written after
the heal, newer than what its first such write started from (later writes hide it from the
final read).

Seed kinds (`kind_of_seed`): "crash" seeds crash and restart nodes (at most one down at a
time, RF 2) and add delay spikes and light message loss — losing an acknowledged write there is a violation, and
both copies of every key must agree. "split" seeds partition the network (two-way,
one-way, isolation) and also crash nodes; each runs once per conflict-resolution policy
and reports what the heal discarded, without failing (except after the heal, above): AP
mode can lose writes, and we show it rather than hide it. Their last fault is a split, so that the writes after the heal
meet its duplicates.

Simplification: the planes handle the first `DATA_PARTITIONS` pids only and client keys
are hashed into those (the logic is per partition, so 64 of them exercise it while keeping
a seed cheap); digests are otherwise real 20-byte digests.
"""

import hashlib
import random
from dataclasses import dataclass, field

from cluster.core import bins, write
from cluster.core.data_plane import LOCAL, PROXY, UNAVAILABLE, DataPlane
from cluster.core.dup_res import DupResolved
from cluster.core.effects import ClusterChanged, ExchangeComplete, Orphaned, Outbox
from cluster.core.messages import decode, encode
from cluster.core.migration import MigrationConfig
from cluster.core.node_id import format_node_id
from cluster.core.proxy import ProxyDone, ServeProxied
from cluster.core.records import GENERATION, LAST_UPDATE_TIME, image_of, remote_wins, store
from cluster.core.replication import Replicated
from cluster.storage.engine import partition_id
from cluster.storage.memory import MemoryStore
from cluster.wire import message as wm
from cluster.wire.message import FieldType, Info1, Info2, Message, Op, OpType
from cluster.wire.particles import ParticleType
from cluster.wire.result_codes import AerospikeError, ResultCode

from .faults import Fault, Schedule
from .simulation import _CHECK, _FAULT, CHECK_EVERY_MS, MIN_DELAY_US, SimConfig, SimResult, Simulation

NS = "test"
DATA_PARTITIONS = 64
TRANSACTION_MAX_MS = 1000
STORE_BYTES = 64 << 20
BIN = "v"
MAX_RECORD_SIZE = 1 << 20
POST_HEAL_MS = 1000  # the client goes on this long once the healed cluster agreed (the heal's merges take ~0.3 s)


# --- client operations shared with the unit tests ---------------------------------------


def key_digest(key: int, partitions: int = DATA_PARTITIONS) -> bytes:
    """A 20-byte digest for a client key whose partition id is below `partitions`."""
    h = hashlib.blake2b(key.to_bytes(8, "little"), digest_size=20).digest()
    pid = int.from_bytes(h[:2], "little") % partitions
    digest = bytes([pid & 0xFF, (h[1] & 0xF0) | pid >> 8]) + h[2:]
    assert partition_id(digest) == pid
    return digest


def request(digest: bytes, value: bytes | None, write: bool) -> Message:
    """The client's AS_MSG: put `value` in bin "v", a durable delete (write, no value), or a read."""
    fields = {FieldType.NAMESPACE: NS.encode(), FieldType.DIGEST: digest}
    if not write:
        return Message(info1=Info1.READ | Info1.GET_ALL, transaction_ttl=TRANSACTION_MAX_MS, fields=fields)
    if value is None:
        return Message(info2=Info2.WRITE | Info2.DELETE | Info2.DURABLE_DELETE, transaction_ttl=TRANSACTION_MAX_MS,
                       fields=fields)
    return Message(info2=Info2.WRITE, transaction_ttl=TRANSACTION_MAX_MS, fields=fields,
                   ops=[Op(OpType.WRITE, ParticleType.BLOB, BIN, value)])


def apply_write(storage, msg: Message, now_ms: int) -> write.Outcome:
    """A client write or delete on this node's copy, as the node's transaction layer does it:
    core/write.py on the stored copy, then the new image stored. AerospikeError on refusal."""
    digest = msg.fields[FieldType.DIGEST]
    current = image_of(storage, digest, now_ms // 1000)
    if msg.info2 & Info2.DELETE and not msg.ops:
        outcome = write.delete(current, msg, now_ms)
    else:
        outcome = write.write(current, digest, msg, "", now_ms, 0, MAX_RECORD_SIZE)
    if outcome.image is not None:
        store(storage, outcome.image)
    return outcome


def value_of(payload: bytes | None) -> bytes | None:
    """The client's value in a stored payload."""
    if payload is None:
        return None
    found = bins.decode_payload(payload)[0].get(BIN)
    return None if found is None else found[1]


def read_local(storage, digest: bytes, now_ms: int) -> bytes | None:
    found = storage.get(digest, now_ms // 1000)
    return None if found is None else value_of(found[1])


def payload_of(key: int, seq: int) -> bytes:
    return f"{key}:{seq}".encode()


def seq_of(payload: bytes | None) -> int | None:
    return None if payload is None else int(payload.split(b":")[1])


@dataclass
class KeyHistory:
    deletes: set[int] = field(default_factory=set)  # seqs of delete operations
    acked: list[int] = field(default_factory=list)  # seqs of acknowledged operations, in order
    doubt: set[int] = field(default_factory=set)  # applied somewhere, outcome unknown
    after_heal: set[int] = field(default_factory=set)  # writes started once the healed cluster agreed
    # the value the first write after the heal started from, the acked ops it discards, and
    # whether they went to an older write in doubt (judged then: the history grows since)
    at_heal: tuple[bytes | None, list[int], bool] | None = None

    @property
    def last_acked(self) -> int:
        return self.acked[-1] if self.acked else 0

    def acceptable(self, visible: bytes | None) -> bool:
        last = self.last_acked
        seq = seq_of(visible)
        if seq is None:  # absent: never written, or deleted
            return (last == 0 or last in self.deletes) or any(s > last for s in self.doubt & self.deletes)
        return seq == last or (seq > last and seq in self.doubt)

    def lost_to_doubt(self, visible: bytes | None) -> bool:
        """What is visible is an operation in doubt *older* than the last acknowledged one: a
        master applied it, timed out on its replicas and crashed; when its copy came back it
        won conflict resolution by generation over the later, acknowledged write made from a
        replica's older copy. Aerospike loses writes this way too (the Jepsen analyses' case of
        a timed-out write whose master dies); last-update-time cannot, the later write wins."""
        seq = seq_of(visible)
        if seq is None:
            return any(s < self.last_acked for s in self.doubt & self.deletes)
        return seq in self.doubt and seq < self.last_acked

    def lost(self, visible: bytes | None) -> list[int]:
        """The acknowledged operations discarded, given what is visible ([] if acceptable)."""
        if self.acceptable(visible):
            return []
        seq = seq_of(visible)
        if seq is None:
            seq = max((s for s in self.deletes if s <= self.last_acked), default=0)
        return [s for s in self.acked if s > seq]


class History:
    """What the client did and was told, per key."""

    def __init__(self) -> None:
        self.keys: dict[int, KeyHistory] = {}
        self.acked = self.doubted = self.failed = self.reads = self.stale_reads = 0

    def of(self, key: int) -> KeyHistory:
        return self.keys.setdefault(key, KeyHistory())

    def ack(self, key: int, seq: int) -> None:
        self.of(key).acked.append(seq)
        self.acked += 1

    def doubt(self, key: int, seq: int) -> None:
        self.of(key).doubt.add(seq)
        self.doubted += 1


# --- the simulation ---------------------------------------------------------------------


@dataclass(frozen=True)
class DataConfig:
    policy: str = GENERATION
    kind: str = "crash"  # "crash" | "split"
    keys: int = 24
    op_every_ms: int = 25  # mean gap between client operations
    migrate_threads: int = 1
    migrate_sleep_us: int = 20_000  # slow enough that client writes overlap migrations
    partitions: int = DATA_PARTITIONS


@dataclass
class ClientOp:
    key: int
    seq: int
    write: bool
    payload: bytes | None  # None: delete (when write) or read
    entry: int  # node index


@dataclass
class DataEvent:
    """A data-plane event on the simulator's queue (it rides the fault slot)."""

    kind: str  # "deliver" | "pump" | "op" | "deadline" | "client_deadline"
    node: int = 0
    generation: int = 0
    payload: object = None

    def __str__(self) -> str:
        return f"data {self.kind} {self.node}"


@dataclass
class DataNode:
    store: MemoryStore
    plane: DataPlane | None = None
    outbox: Outbox | None = None
    pump_at: int | None = None  # µs of the scheduled pump
    # transactions under way, by the core protocol's tid; `reply_to` is ("client", op id)
    # or ("proxy", node id, tid) for a request another node proxied here
    replicating: dict[int, tuple[write.Outcome, tuple]] = field(default_factory=dict)
    proxying: dict[int, tuple] = field(default_factory=dict)
    resolving: dict[int, tuple[Message, int, tuple]] = field(default_factory=dict)  # (request, deadline, reply_to)
    stash: list = field(default_factory=list)  # data messages that arrived while paused

    def reset(self) -> None:
        self.replicating, self.proxying, self.resolving, self.stash, self.pump_at = {}, {}, {}, [], None


@dataclass
class DataResult:
    kind: str
    policy: str
    acked: int
    doubted: int
    failed: int
    reads: int
    stale_reads: int
    lost: int  # acknowledged operations discarded
    keys_lost: int
    sim: SimResult
    lost_to_doubt: int = 0  # of `lost`: discarded in favour of an older write in doubt
    acked_after_heal: int = 0  # acknowledged writes started once the healed cluster agreed


def kind_of_seed(seed: int) -> str:
    return "split" if seed % 2 else "crash"


def data_schedule(rng: random.Random, n_nodes: int, fault_ms: int, kind: str, warmup_ms: int = 2500) -> Schedule:
    """Crash seeds: crashes one node at a time, delay spikes. Split seeds: partitions too, and
    the last fault is one, so that the client's writes after the heal meet its duplicates."""
    faults: list[Fault] = []
    t = warmup_ms + rng.randint(200, 1500)
    length = rng.randint(1000, 4000)
    while t + length <= fault_ms - 200:
        next_t = t + length + rng.randint(200, 1500)  # one fault at a time: at most one node down
        next_length = rng.randint(1000, 4000)
        last = next_t + next_length > fault_ms - 200
        choice = rng.random()
        if kind == "split" and (choice < 0.6 or last):
            what = rng.choice(("partition", "isolate", "one_way"))
            nodes = list(range(n_nodes))
            rng.shuffle(nodes)
            if what == "isolate":
                a, b = (nodes[0],), tuple(sorted(nodes[1:]))
            else:
                cut = rng.randint(1, n_nodes - 1)
                a, b = tuple(sorted(nodes[:cut])), tuple(sorted(nodes[cut:]))
            args = (a, b, what != "one_way")
            faults += [Fault(t, "partition", args), Fault(t + length, "partition_end", args)]
        elif choice < 0.8:
            node = rng.randrange(n_nodes)
            faults += [Fault(t, "crash", (node,)), Fault(t + length, "restart", (node,))]
        elif choice < 0.9:
            faults += [Fault(t, "loss", (round(rng.uniform(0.02, 0.1), 3),)), Fault(t + length, "loss_end")]
        else:
            faults += [Fault(t, "delay", (rng.randint(5, 80),)), Fault(t + length, "delay_end")]
        t, length = next_t, next_length
    return Schedule(tuple(faults), None)


class DataSimulation(Simulation):
    def __init__(self, config: SimConfig, data: DataConfig | None = None):
        super().__init__(config)
        self.data_config = data = data or DataConfig(kind=kind_of_seed(config.seed))
        self.schedule = data_schedule(self.rng, config.nodes, config.fault_ms, data.kind)
        self.data_rng = random.Random(self.rng.getrandbits(64))
        self.history = History()
        self.migration_config = MigrationConfig(threads=data.migrate_threads, policy={NS: data.policy},
                                                sleep_us={NS: data.migrate_sleep_us})
        self.data_nodes = [DataNode(MemoryStore(STORE_BYTES)) for _ in self.nodes]
        self.data_index_of = {n.node_id: n.index for n in self.nodes}
        self.digests = [key_digest(k, data.partitions) for k in range(data.keys)]
        self.key_of = {digest: key for key, digest in enumerate(self.digests)}
        self.busy_keys: set[int] = set()
        self.client_ops: dict[int, ClientOp] = {}  # op id (its seq) -> op awaiting its reply
        self.next_seq = 1
        self.client_running = True
        # after the last fault nothing breaks any more: from the first moment every node is
        # in one cluster with its exchange done, no acknowledged write may be lost
        self.last_fault_ms = max((f.at_ms for f in self.schedule.faults), default=0)
        self.agreed_ms: int | None = None
        self.data_messages = 0

    # --- hooks into the membership simulation -------------------------------------------

    def run(self) -> DataResult:  # type: ignore[override]
        self._push(500_000, _FAULT, DataEvent("op"))
        result = super().run()
        lost = keys_lost = 0
        self.lost_to_doubt = 0
        if result.ok:
            lost, keys_lost = self._data_verify()  # adds to result.violations (the same list)
        acked_after_heal = sum(len(h.after_heal.intersection(h.acked)) for h in self.history.keys.values())
        return DataResult(self.data_config.kind, self.data_config.policy, self.history.acked,
                          self.history.doubted, self.history.failed, self.history.reads,
                          self.history.stale_reads, lost, keys_lost, result, self.lost_to_doubt,
                          acked_after_heal)

    def _start(self, node) -> None:
        super()._start(node)
        dn = self.data_nodes[node.index]
        dn.outbox = Outbox(node.node_id)
        dn.plane = DataPlane(node.node_id, dn.outbox, {NS: dn.store}, {NS: self.config.replication_factor},
                             self.migration_config, partitions=self.data_config.partitions)
        dn.plane.load_versions(self.now_ms // 1000)
        dn.reset()
        node.membership.exchange.versions_source = dn.plane.local_versions  # read at each new cluster

    def _on_event(self, node, event) -> None:
        super()._on_event(node, event)
        if self.agreed_ms is not None and isinstance(event, ClusterChanged | Orphaned):
            # the agreement was a cluster that had not noticed the fault yet (it evicts a node
            # now): writes from then on were not after the heal; wait for the next agreement
            self.agreed_ms = None
            for hist in self.history.keys.values():
                hist.after_heal.clear()
                hist.at_heal = None
        dn = self.data_nodes[node.index]
        if dn.plane is None:
            return
        if isinstance(event, ClusterChanged):
            dn.plane.on_cluster_changed(event.cluster_key)
        elif isinstance(event, Orphaned):
            dn.plane.on_orphaned()
        elif isinstance(event, ExchangeComplete):
            dn.plane.on_exchange_complete(event, self.now_ms)
        else:
            return
        self._plane_after(node.index)

    def _apply(self, fault) -> None:
        if type(fault) is DataEvent:
            self._data_event(fault)
            return
        super()._apply(fault)
        if fault.kind == "crash":
            self._data_crashed(fault.args[0])
        elif fault.kind == "resume":
            self._data_resumed(fault.args[0])
        elif fault.kind == "faults_stop":
            for i in range(len(self.nodes)):
                self._data_resumed(i)

    def _check(self) -> None:
        super()._check()
        if self._done and not self.violations and not self._data_settled():
            self._done = False  # membership is stable: keep going until migrations are done
            self._push(self.now_us + CHECK_EVERY_MS * 1000, _CHECK, None)

    # --- data plane plumbing ----------------------------------------------------------------

    def _data_settled(self) -> bool:
        if self.client_running or self.client_ops:
            return False
        for node, dn in zip(self.nodes, self.data_nodes, strict=True):
            if node.membership is None or dn.plane is None or dn.replicating:
                return False
            if dn.plane.cluster_key != node.membership.cluster_key or dn.plane.remaining(NS) != (0, 0, 0):
                return False
        return True

    def _plane_after(self, index: int) -> None:
        """After anything happened on a node's plane: pump, send, act on its events (which
        may start protocols with new deadlines: then pump again, to learn when to wake)."""
        dn = self.data_nodes[index]
        plane = dn.plane
        while True:
            wake = plane.pump(self.now_ms, self.now_ms // 1000)
            acted = False
            while True:
                while dn.outbox.loopback:
                    plane.step(dn.outbox.loopback.popleft(), self.now_ms, self.now_ms // 1000)
                sends, events = dn.outbox.take()
                if sends:
                    self._send_data(index, sends)
                for event in events:
                    self._on_plane_event(index, event)
                acted = acted or bool(events)
                if not events and not dn.outbox.loopback:
                    break
            if not acted:
                break
        if wake is not None:
            at = max(wake * 1000, self.now_us + 1)
            if dn.pump_at is None or at < dn.pump_at or dn.pump_at <= self.now_us:
                dn.pump_at = at
                self._push(at, _FAULT, DataEvent("pump", index, self.nodes[index].generation))

    def _send_data(self, src: int, sends: list) -> None:
        rnd, spread = self.rng.random, self.max_delay_us - MIN_DELAY_US
        for send in sends:
            dst = self.data_index_of.get(send.node)
            if dst is None or (src, dst) in self.blocked or (self.loss and rnd() < self.loss):
                continue
            msg = encode(send.msg) if self.config.wire else send.msg
            at = self.now_us + MIN_DELAY_US + int(rnd() * spread)
            self._push(at, _FAULT, DataEvent("deliver", dst, self.nodes[dst].generation, (src, msg)))

    def _data_event(self, ev: DataEvent) -> None:
        kind = ev.kind
        if kind == "op":
            self._client_turn()
            return
        if kind == "deadline":
            self._replication_deadline(*ev.payload)
            return
        if kind == "client_deadline":
            self._client_deadline(ev.payload)
            return
        node, dn = self.nodes[ev.node], self.data_nodes[ev.node]
        if node.generation != ev.generation or node.membership is None or dn.plane is None:
            return  # to a previous life, or crashed
        if kind == "deliver":
            self.data_messages += 1
            if node.paused:
                dn.stash.append(ev.payload)
                return
            self._data_deliver(ev.node, *ev.payload)
        elif kind == "pump":
            if dn.pump_at == self.now_us:
                dn.pump_at = None
            if not node.paused:
                self._plane_after(ev.node)

    def _data_deliver(self, index: int, src: int, msg) -> None:
        if self.config.wire:
            msg = decode(msg)
        self.data_nodes[index].plane.step(msg, self.now_ms, self.now_ms // 1000)
        self._plane_after(index)

    def _data_crashed(self, index: int) -> None:
        """What it was doing is lost; its clients learn nothing and doubt at their deadline."""
        dn = self.data_nodes[index]
        dn.plane, dn.outbox = None, None
        dn.reset()

    def _data_resumed(self, index: int) -> None:
        dn = self.data_nodes[index]
        if dn.plane is None or self.nodes[index].paused:
            return
        stash, dn.stash = dn.stash, []
        for src, msg in stash:
            self._data_deliver(index, src, msg)
        self._plane_after(index)

    # --- transactions on a node: the node's flow, on the core protocols -----------------

    def _execute(self, index: int, body: bytes, hops: int, deadline_ms: int, reply_to: tuple) -> None:
        """Run one request on a node (Transactions.single's flow): route, then proxy it, or
        resolve duplicates and write, or read."""
        dn = self.data_nodes[index]
        msg, _end = wm.parse(body)
        digest = msg.fields[FieldType.DIGEST]
        pid, is_write = partition_id(digest), bool(msg.info2 & Info2.WRITE)
        where, target = dn.plane.route(NS, pid, is_write)
        if where == UNAVAILABLE:
            self._reply(index, reply_to, wm.encode_header_only(ResultCode.PARTITION_UNAVAILABLE))
        elif where == PROXY:
            tid = dn.plane.proxies.forward(target, body, hops, deadline_ms, self.now_ms)
            if tid is None:
                self._reply(index, reply_to, wm.encode_header_only(ResultCode.PARTITION_UNAVAILABLE))
            else:
                dn.proxying[tid] = reply_to
        elif not is_write:
            found = dn.store.get(digest, self.now_ms // 1000)
            if found is None:
                reply = wm.encode_header_only(ResultCode.KEY_NOT_FOUND)
            else:
                reply = write.Outcome(ResultCode.OK, found[0].generation, 0,
                                      write.all_bins(bins.decode_payload(found[1])[0])).encode()
            self._reply(index, reply_to, reply)
        elif duplicates := dn.plane.dup_sources(NS, pid):
            tid = dn.plane.dup_res.start(NS, digest, duplicates, deadline_ms, self.now_ms)
            dn.resolving[tid] = (msg, deadline_ms, reply_to)
        else:
            self._write(index, msg, deadline_ms, reply_to)

    def _write(self, index: int, msg: Message, deadline_ms: int, reply_to: tuple) -> None:
        dn = self.data_nodes[index]
        self._check_base(index, msg.fields[FieldType.DIGEST])
        try:
            outcome = apply_write(dn.store, msg, self.now_ms)
        except AerospikeError as exc:
            self._reply(index, reply_to, wm.encode_header_only(exc.code))
            return
        tid = None
        if outcome.image is not None:
            pid = partition_id(outcome.image.digest)
            tid = dn.plane.replication.start(NS, pid, outcome.image, dn.plane.replica_targets(NS, pid), self.now_ms)
        if tid is None:  # nothing changed, or no replica to wait for
            if outcome.image is not None:
                self._check_replicated(index, outcome.image)
            self._reply(index, reply_to, outcome.encode())
            return
        dn.replicating[tid] = (outcome, reply_to)
        self._push(max(deadline_ms * 1000, self.now_us + 1), _FAULT,
                   DataEvent("deadline", payload=(index, self.nodes[index].generation, tid)))

    def _replication_deadline(self, index: int, generation: int, tid: int) -> None:
        dn = self.data_nodes[index]
        if self.nodes[index].generation != generation or dn.plane is None or tid not in dn.replicating:
            return  # crashed meanwhile, or answered
        dn.plane.replication.abandon(tid)
        _outcome, reply_to = dn.replicating.pop(tid)
        self._reply(index, reply_to, wm.encode_header_only(ResultCode.TIMEOUT))
        self._plane_after(index)

    def _on_plane_event(self, index: int, event) -> None:
        dn = self.data_nodes[index]
        kind = type(event)
        if kind is Replicated:
            if event.tid in dn.replicating:
                outcome, reply_to = dn.replicating.pop(event.tid)
                ok = event.result == ResultCode.OK
                if ok:
                    self._check_replicated(index, outcome.image)
                self._reply(index, reply_to, outcome.encode() if ok else wm.encode_header_only(event.result))
        elif kind is ProxyDone:
            self._reply(index, dn.proxying.pop(event.tid), event.reply)
        elif kind is DupResolved:
            msg, deadline_ms, reply_to = dn.resolving.pop(event.tid)
            if event.ok:
                self._write(index, msg, deadline_ms, reply_to)
            else:
                self._reply(index, reply_to, wm.encode_header_only(ResultCode.TIMEOUT))
        elif kind is ServeProxied:
            self._execute(index, event.body, event.hops, event.deadline_ms, ("proxy", event.src, event.tid))

    def _check_base(self, index: int, digest: bytes) -> None:
        """After the heal, the copy a write starts from on the working master, duplicates
        resolved, is the best copy in the cluster: no duplicate's copy beats it by the policy
        (else the write would undo that copy's writes, or be lost when it merges), and it keeps
        every write acknowledged after the heal. The first one shows what the heal discarded
        (counted at the end: later writes hide it from the final read)."""
        dn = self.data_nodes[index]
        pid = partition_id(digest)
        if self.agreed_ms is None or not dn.plane.is_master(NS, pid):
            return
        key = self.key_of[digest]
        mine = dn.store.lookup(digest)
        for node_id in dn.plane.partitions[NS][pid].duplicates:
            other = self.data_nodes[self.data_index_of[node_id]].store.lookup(digest)
            if other and (not mine or remote_wins(self.data_config.policy, mine[0], other[0])):
                self._violation(f"key {key}: a write on {format_node_id(dn.plane.node_id)} starts from {mine} "
                                f"after the healed cluster agreed, duplicate {format_node_id(node_id)} holds {other}")
        hist = self.history.of(key)
        base = read_local(dn.store, digest, self.now_ms)
        discarded = self._lost_after_heal(key, hist, base, "a write starts from")
        if hist.at_heal is None:
            hist.at_heal = base, discarded, self._lost_to_doubt(hist, base)

    def _lost_after_heal(self, key: int, hist: KeyHistory, visible: bytes | None, seen: str) -> list[int]:
        """The acknowledged operations `visible` discards; none of them may have started after
        the healed cluster agreed: duplicate resolution gave such a write the best copy of
        every lineage to start from, so it beats every copy under either policy, and nothing
        broke after it."""
        discarded = hist.lost(visible)
        if after := hist.after_heal.intersection(discarded):
            self._violation(f"key {key}: {seen} {visible!r}, but acknowledged writes {sorted(after)} "
                            f"started after the healed cluster agreed at {self.agreed_ms} ms")
        return discarded

    def _check_replicated(self, index: int, image) -> None:
        """A write is acknowledged only when every replica holds it (or a later copy)."""
        pid = partition_id(image.digest)
        for node_id in self.data_nodes[index].plane.replica_targets(NS, pid):
            got = self.data_nodes[self.data_index_of[node_id]].store.lookup(image.digest)
            if got is None or got[0].lut < image.lut:
                self._violation(f"a write acknowledged by {format_node_id(self.nodes[index].node_id)} is not on "
                                f"replica {format_node_id(node_id)}: it holds {got}")

    def _reply(self, index: int, reply_to: tuple, reply: bytes) -> None:
        if reply_to[0] == "proxy":
            self.data_nodes[index].plane.proxies.respond(reply_to[1], reply_to[2], reply)
        else:
            self._client_reply(reply_to[1], reply)

    # --- the client --------------------------------------------------------------------------

    def _one_cluster(self) -> bool:
        """Every node in the same cluster, its exchange done (the plane balanced for it)."""
        key = self.nodes[0].membership.cluster_key if self.nodes[0].membership else 0
        return key != 0 and all(
            node.membership is not None and node.membership.cluster_key == key and dn.plane.cluster_key == key
            for node, dn in zip(self.nodes, self.data_nodes, strict=True))

    def _client_turn(self) -> None:
        """One operation, then the next one's turn. The client stops at the end of the fault
        phase, but not before POST_HEAL_MS after the healed cluster agreed: writes then still
        meet duplicates that are not merged yet (migrations are slow), which is what
        duplicate resolution is for."""
        if self.agreed_ms is None and self.now_ms >= self.last_fault_ms and self._one_cluster():
            self.agreed_ms = self.now_ms
        if self.now_ms >= self.config.fault_ms and self.agreed_ms is not None \
                and self.now_ms >= self.agreed_ms + POST_HEAL_MS:
            self.client_running = False
            return
        self._client_op()
        self._push(self.now_us + self.data_rng.randint(1, 2 * self.data_config.op_every_ms) * 1000, _FAULT,
                   DataEvent("op"))

    def _client_op(self) -> None:
        rng = self.data_rng
        key = rng.randrange(self.data_config.keys)
        if key in self.busy_keys:
            return
        r = rng.random()
        seq = self.next_seq
        self.next_seq += 1
        write_op = r < 0.7
        payload = None if (not write_op or r < 0.1) else payload_of(key, seq)
        op = ClientOp(key, seq, write_op, payload, rng.randrange(len(self.nodes)))
        if write_op and payload is None:
            self.history.of(key).deletes.add(seq)
        if write_op and self.agreed_ms is not None:
            self.history.of(key).after_heal.add(seq)
        node, dn = self.nodes[op.entry], self.data_nodes[op.entry]
        self._trace(self.now_us, "op", key, seq, int(write_op), op.entry)
        if node.membership is None or node.paused or dn.plane is None:
            self.history.failed += 1  # no connection: nothing sent
            return
        self.client_ops[seq] = op
        self.busy_keys.add(key)
        self._push(self.now_us + (TRANSACTION_MAX_MS + 1) * 1000, _FAULT, DataEvent("client_deadline", payload=seq))
        body = wm.encode(request(self.digests[key], payload, write_op))
        self._execute(op.entry, body, 0, self.now_ms + TRANSACTION_MAX_MS, ("client", seq))
        self._plane_after(op.entry)

    def _client_reply(self, seq: int, reply: bytes) -> None:
        op = self.client_ops.pop(seq, None)
        if op is None:
            return  # the client gave up already
        self.busy_keys.discard(op.key)
        msg, _end = wm.parse(reply)
        code = msg.result_code
        self._trace(self.now_us, "reply", op.key, seq, code)
        if not op.write:
            if code not in (ResultCode.OK, ResultCode.KEY_NOT_FOUND):
                self.history.failed += 1
                return
            self.history.reads += 1
            visible = next((o.value for o in msg.ops if o.name == BIN), None)
            self._lost_after_heal(op.key, self.history.of(op.key), visible, "a read returns")
            if not self.history.of(op.key).acceptable(visible):
                self.history.stale_reads += 1
        elif code == ResultCode.OK:
            self.history.ack(op.key, seq)
        elif code in (ResultCode.PARTITION_UNAVAILABLE, ResultCode.KEY_NOT_FOUND):
            self.history.failed += 1  # refused before any node applied it; a delete that found nothing wrote nothing
        else:
            self.history.doubt(op.key, seq)  # TIMEOUT, a replica's failure: it may be applied

    def _client_deadline(self, seq: int) -> None:
        op = self.client_ops.pop(seq, None)
        if op is None:
            return
        self.busy_keys.discard(op.key)
        self._trace(self.now_us, "no reply", op.key, seq)
        if op.write:
            self.history.doubt(op.key, seq)
        else:
            self.history.failed += 1

    def _serving_node(self, key: int) -> int | None:
        """For the verdict only, once settled: the node that serves the key, following the
        planes' routes from node 0 (no messages: nothing is in flight any more)."""
        index = 0
        pid = partition_id(self.digests[key])
        for _hop in range(len(self.nodes)):
            where, target = self.data_nodes[index].plane.route(NS, pid, False)
            if where == LOCAL:
                return index
            if where != PROXY or target not in self.data_index_of:
                return None
            index = self.data_index_of[target]
        return None

    # --- the verdict -----------------------------------------------------------------------

    def _data_verify(self) -> tuple[int, int]:
        """Read every key through the cluster; -> (acknowledged operations lost, keys affected)."""
        lost = keys_lost = 0
        crash_only = self.data_config.kind == "crash"
        for key, hist in sorted(self.history.keys.items()):
            digest = self.digests[key]
            index = self._serving_node(key)
            if index is None:
                self._violation(f"key {key}: no node serves it after settling")
                continue
            visible = read_local(self.data_nodes[index].store, digest, self.now_ms)
            seen, value, discarded = "reads", visible, self._lost_after_heal(key, hist, visible, "reads")
            explained = self._lost_to_doubt(hist, visible)
            if hist.at_heal is not None:  # written after the heal: what the heal kept; losses since fail above
                seen, (value, discarded, explained) = "the first write after the heal started from", hist.at_heal
            n = len(discarded)
            if n:
                lost += n
                keys_lost += 1
                self.lost_to_doubt += n if explained else 0
                if crash_only and not explained:
                    self._violation(f"key {key}: {seen} {value!r}, losing acknowledged ops {discarded[-5:]} "
                                    f"(in doubt {sorted(hist.doubt)[-5:]})")
            if crash_only:
                self._data_check_copies(key, hist, index, digest)
        return lost, keys_lost

    def _lost_to_doubt(self, hist: KeyHistory, visible: bytes | None) -> bool:
        return self.data_config.policy == GENERATION and hist.lost_to_doubt(visible)

    def _data_check_copies(self, key: int, hist: KeyHistory, master: int, digest: bytes) -> None:
        """Every replica's copy is acceptable too, and equal to the master's unless the key has
        an operation in doubt after its last acknowledged one (a write that timed out may have
        reached some replicas only: nothing retransmits it once the client gave up, as on the real server)."""
        plane = self.data_nodes[master].plane
        pid = partition_id(digest)
        want = image_of(self.data_nodes[master].store, digest, self.now_ms // 1000)
        in_doubt = any(s > hist.last_acked for s in hist.doubt)
        master_visible = None if want is None or want.tombstone else value_of(want.payload)
        lost_to_doubt = self._lost_to_doubt(hist, master_visible)
        for node_id in plane.partitions[NS][pid].replicas:
            got = image_of(self.data_nodes[self.data_index_of[node_id]].store, digest, self.now_ms // 1000)
            visible = None if got is None or got.tombstone else value_of(got.payload)
            same = (got is None) == (want is None) and (not got or (got.payload, got.tombstone) == (want.payload,
                                                                                                    want.tombstone))
            if not (hist.acceptable(visible) or lost_to_doubt) or not (same or in_doubt):
                self._violation(f"key {key}: {format_node_id(node_id)} holds {got}, the master {want}")


def run_seed(seed: int, policy: str = GENERATION, nodes: int = 4, fault_ms: int = 9000, settle_ms: int = 30_000,
             wire: bool = False, kind: str | None = None) -> DataResult:
    config = SimConfig(seed=seed, nodes=nodes, fault_ms=fault_ms, settle_ms=settle_ms, wire=wire)
    return DataSimulation(config, DataConfig(policy=policy, kind=kind or kind_of_seed(seed))).run()


POLICIES = (GENERATION, LAST_UPDATE_TIME)


# --- command line: python -m cluster.sim --data ...------------------------------------------


def _parse(argv):
    import argparse

    p = argparse.ArgumentParser(prog="python -m cluster.sim --data", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", action="store_true", help="(selects this simulator)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--seed", type=int, help="run this one seed and show its fault schedule")
    which.add_argument("--seeds", type=int, default=200, help="run seeds first-seed .. first-seed+N-1")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--nodes", type=int, default=4)
    p.add_argument("--fault-ms", type=int, default=9000)
    p.add_argument("--settle-ms", type=int, default=30_000)
    p.add_argument("--kind", choices=("auto", "crash", "split"), default="auto",
                   help="auto: even seeds crash-only, odd seeds with network splits")
    p.add_argument("--policy", choices=("both", *POLICIES), default="both",
                   help="conflict-resolution-policy (default: each seed under both)")
    p.add_argument("--wire", action="store_true", help="pass every message through encode/decode")
    p.add_argument("--jobs", type=int, default=1, help="worker processes")
    args = p.parse_args(argv)
    if args.nodes < 2 or args.seeds < 1:
        p.error("--nodes must be >= 2 and --seeds >= 1")
    return args


def _runs(args, seed: int) -> list[tuple]:
    kind = kind_of_seed(seed) if args.kind == "auto" else args.kind
    policies = POLICIES if args.policy == "both" else (args.policy,)
    return [(seed, policy, args.nodes, args.fault_ms, args.settle_ms, args.wire, kind) for policy in policies]


def _run(params: tuple) -> DataResult:
    return run_seed(*params)


def _replay(args, r: DataResult) -> str:
    c = r.sim.config
    return (f"python -m cluster.sim --data --seed {c.seed} --nodes {c.nodes} --fault-ms {c.fault_ms} "
            f"--settle-ms {c.settle_ms} --kind {r.kind} --policy {r.policy}" + (" --wire" if c.wire else ""))


def main(argv=None) -> int:
    import time

    args = _parse(argv)
    seeds = [args.seed] if args.seed is not None else range(args.first_seed, args.first_seed + args.seeds)
    params = [p for seed in seeds for p in _runs(args, seed)]
    started = time.perf_counter()
    if args.jobs > 1:
        import multiprocessing

        with multiprocessing.Pool(args.jobs) as pool:
            results = pool.map(_run, params, chunksize=4)
    else:
        results = [_run(p) for p in params]
    wall = time.perf_counter() - started
    failed = [r for r in results if not r.sim.ok]
    for r in results:
        if args.seed is not None:
            for fault in r.sim.schedule.faults:
                print(f"  fault {fault}")
            print(f"seed {r.sim.config.seed} {r.kind} {r.policy}: {'ok' if r.sim.ok else 'FAILED'}, "
                  f"{r.acked} acked ({r.acked_after_heal} after the heal), {r.doubted} in doubt, {r.failed} failed, "
                  f"{r.reads} reads "
                  f"({r.stale_reads} stale), {r.lost} acked lost on {r.keys_lost} keys, "
                  f"{r.sim.sim_ms / 1000:.1f} sim s in {r.sim.wall_s:.2f} s, digest {r.sim.digest}")
        if not r.sim.ok:
            print(f"seed {r.sim.config.seed} ({r.kind}, {r.policy}) FAILED:")
            for violation in r.sim.violations[:10]:
                print(f"  {violation}")
            print(f"  replay: {_replay(args, r)}")
    groups: dict[tuple[str, str], list[DataResult]] = {}
    for r in results:
        groups.setdefault((r.kind, r.policy), []).append(r)
    print(f"{len(results)} runs of {len(seeds)} seeds, {len(failed)} failed, {wall:.1f} s wall")
    for (kind, policy), rs in sorted(groups.items()):
        acked, lost = sum(r.acked for r in rs), sum(r.lost for r in rs)
        print(f"  {kind:5} seeds, policy {policy:16}: {len(rs):3} runs, {acked:6} acked writes "
              f"({sum(r.acked_after_heal for r in rs)} after the heal), "
              f"{sum(r.doubted for r in rs):5} in doubt, {lost:4} acked writes lost "
              f"({100 * lost / max(acked, 1):.2f} %) on {sum(r.keys_lost for r in rs)} keys in "
              f"{sum(1 for r in rs if r.lost)} runs ({sum(r.lost_to_doubt for r in rs)} to an older write in "
              f"doubt); stale reads {sum(r.stale_reads for r in rs)}/{sum(r.reads for r in rs)}")
    return 1 if failed else 0
