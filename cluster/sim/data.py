"""The deterministic simulator with data: DataPlanes on every node, client writes and reads.

`DataSimulation` extends the membership `Simulation`: every node also runs a `DataPlane`
over a `MemoryStore` that survives crashes (a device with commit-to-device: what the
master wrote before it acked is on disk) and is isolated at restart (`load_versions`).
Membership events feed the plane (ClusterChanged / Orphaned / ExchangeComplete), the
plane's versions feed the next exchange, and its fabric messages travel the same
simulated network (delay, loss, partitions; lost when the node is down).

A seeded client issues writes, deletes and reads on a small key space, one operation per
key at a time. An operation enters at a random node and follows `route()` (PROXY up to 3
hops; a hop needs the link between the two nodes). A write executes at the working
master: stored with generation + 1 and LUT = max(old, now), replicated synchronously
(`replication.start` to `replica_targets`), acknowledged when every replica acked
(`on_write_replicated`), in doubt when the master crashes or 1 s (transaction-max-ms)
passes first. Deletes are durable (`bury`).

After the fault phase the network heals and the simulator waits until the membership
invariants hold and every plane reports `remaining() == (0, 0, 0)`; then every key is read
through the cluster. A key whose value is not its last acknowledged one (or a newer one in
doubt) lost acknowledged writes: the number of acknowledged operations newer than what is
visible is counted.

Seed kinds (`kind_of_seed`): "crash" seeds crash and restart nodes (at most one down at a
time, RF 2) and add delay spikes and light message loss — losing an acknowledged write there is a violation, and
both copies of every key must agree. "split" seeds partition the network (two-way,
one-way, isolation) and also crash nodes; each runs once per conflict-resolution policy
and reports what the heal discarded, without failing: AP mode can lose writes, and we
show it rather than hide it.

Simplification: the planes handle the first `DATA_PARTITIONS` pids only and client keys
are hashed into those (the logic is per partition, so 64 of them exercise it while keeping
a seed cheap); digests are otherwise real 20-byte digests.
"""

import hashlib
import random
from dataclasses import dataclass, field

from cluster.core.data_plane import LOCAL, PROXY, DataPlane
from cluster.core.effects import ClusterChanged, ExchangeComplete, Orphaned, Outbox
from cluster.core.messages import decode, encode
from cluster.core.migration import MigrationConfig
from cluster.core.node_id import format_node_id
from cluster.core.records import GENERATION, LAST_UPDATE_TIME, image_of
from cluster.storage.engine import partition_id
from cluster.storage.memory import MemoryStore
from cluster.storage.record import MAX_GENERATION, RecordMeta

from .faults import Fault, Schedule
from .simulation import _CHECK, _FAULT, CHECK_EVERY_MS, MIN_DELAY_US, SimConfig, SimResult, Simulation

NS = "test"
DATA_PARTITIONS = 64
MAX_PROXY_HOPS = 3
TRANSACTION_MAX_MS = 1000
STORE_BYTES = 64 << 20


# --- client operations shared with the unit tests ---------------------------------------


def key_digest(key: int, partitions: int = DATA_PARTITIONS) -> bytes:
    """A 20-byte digest for a client key whose partition id is below `partitions`."""
    h = hashlib.blake2b(key.to_bytes(8, "little"), digest_size=20).digest()
    pid = int.from_bytes(h[:2], "little") % partitions
    digest = bytes([pid & 0xFF, (h[1] & 0xF0) | pid >> 8]) + h[2:]
    assert partition_id(digest) == pid
    return digest


def master_write(plane: DataPlane, store, ns: str, digest: bytes, payload: bytes | None, now_ms: int) -> int | None:
    """Apply a client write (payload) or durable delete (None) at the master and start
    replicating it; the tid to wait for, or None if there is no replica to wait for."""
    found = store.lookup(digest)
    generation = 1 if found is None else found[0].generation % MAX_GENERATION + 1
    lut = now_ms if found is None else max(found[0].lut, now_ms)
    meta = RecordMeta(generation, 0, lut)
    if payload is None:
        store.bury(digest, meta)
    else:
        store.put(digest, meta, payload)
    pid = partition_id(digest)
    image = image_of(store, digest, now_ms // 1000)
    return plane.replication.start(ns, pid, image, plane.replica_targets(ns, pid), now_ms)


def read_local(store, digest: bytes, now_ms: int) -> bytes | None:
    found = store.get(digest, now_ms // 1000)
    return None if found is None else found[1]


def payload_of(key: int, seq: int) -> bytes:
    return f"{key}:{seq}".encode()


def seq_of(payload: bytes | None) -> int | None:
    return None if payload is None else int(payload.split(b":")[1])


@dataclass
class KeyHistory:
    deletes: set[int] = field(default_factory=set)  # seqs of delete operations
    acked: list[int] = field(default_factory=list)  # seqs of acknowledged operations, in order
    doubt: set[int] = field(default_factory=set)  # applied somewhere, outcome unknown

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

    def lost(self, visible: bytes | None) -> int:
        """Acknowledged operations discarded, given what is visible (0 if acceptable)."""
        if self.acceptable(visible):
            return 0
        seq = seq_of(visible)
        if seq is None:
            seq = max((s for s in self.deletes if s <= self.last_acked), default=0)
        return sum(s > seq for s in self.acked)


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

    kind: str  # "deliver" | "pump" | "op" | "deadline" | "client_stop"
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
    waiting: dict[int, ClientOp] = field(default_factory=dict)  # replication tid -> op
    stash: list = field(default_factory=list)  # data messages that arrived while paused


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


def kind_of_seed(seed: int) -> str:
    return "split" if seed % 2 else "crash"


def data_schedule(rng: random.Random, n_nodes: int, fault_ms: int, kind: str, warmup_ms: int = 2500) -> Schedule:
    """Crash seeds: crashes one node at a time, delay spikes. Split seeds: partitions too."""
    faults: list[Fault] = []
    t = warmup_ms
    while True:
        t += rng.randint(200, 1500)
        length = rng.randint(1000, 4000)
        if t + length > fault_ms - 200:
            break
        choice = rng.random()
        if kind == "split" and choice < 0.6:
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
        t += length  # one fault at a time: at most one node down
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
        self.busy_keys: set[int] = set()
        self.next_seq = 1
        self.client_running = True
        self.data_messages = 0

    # --- hooks into the membership simulation -------------------------------------------

    def run(self) -> DataResult:  # type: ignore[override]
        t = 500
        while t < self.config.fault_ms:
            self._push(t * 1000, _FAULT, DataEvent("op"))
            t += self.data_rng.randint(1, 2 * self.data_config.op_every_ms)
        result = super().run()
        lost = keys_lost = 0
        self.lost_to_doubt = 0
        if result.ok:
            lost, keys_lost = self._data_verify()  # adds to result.violations (the same list)
        return DataResult(self.data_config.kind, self.data_config.policy, self.history.acked,
                          self.history.doubted, self.history.failed, self.history.reads,
                          self.history.stale_reads, lost, keys_lost, result, self.lost_to_doubt)

    def _start(self, node) -> None:
        super()._start(node)
        dn = self.data_nodes[node.index]
        dn.outbox = Outbox(node.node_id)
        dn.plane = DataPlane(node.node_id, dn.outbox, {NS: dn.store}, {NS: self.config.replication_factor},
                             self.migration_config, on_write_replicated=lambda tid, i=node.index: self._client_acked(i, tid),
                             partitions=self.data_config.partitions)
        dn.plane.load_versions(self.now_ms // 1000)
        dn.waiting, dn.stash, dn.pump_at = {}, [], None
        node.membership.exchange.versions_source = dn.plane.local_versions  # read at each new cluster

    def _on_event(self, node, event) -> None:
        super()._on_event(node, event)
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
            self.client_running = False
            for i in range(len(self.nodes)):
                self._data_resumed(i)

    def _check(self) -> None:
        super()._check()
        if self._done and not self.violations and not self._data_settled():
            self._done = False  # membership is stable: keep going until migrations are done
            self._push(self.now_us + CHECK_EVERY_MS * 1000, _CHECK, None)

    # --- data plane plumbing ----------------------------------------------------------------

    def _data_settled(self) -> bool:
        for node, dn in zip(self.nodes, self.data_nodes, strict=True):
            if node.membership is None or dn.plane is None or dn.waiting:
                return False
            if dn.plane.cluster_key != node.membership.cluster_key or dn.plane.remaining(NS) != (0, 0, 0):
                return False
        return True

    def _plane_after(self, index: int) -> None:
        """After anything happened on a node's plane: pump and send."""
        dn = self.data_nodes[index]
        plane = dn.plane
        wake = plane.pump(self.now_ms, self.now_ms // 1000)
        while dn.outbox.loopback:
            plane.step(dn.outbox.loopback.popleft(), self.now_ms, self.now_ms // 1000)
        sends, _ = dn.outbox.take()
        if sends:
            self._send_data(index, sends)
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
            if self.client_running:
                self._client_op()
            return
        if kind == "deadline":
            self._client_deadline(*ev.payload)
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
        dn = self.data_nodes[index]
        for op in dn.waiting.values():  # applied on the master, never answered
            self.history.doubt(op.key, op.seq)
            self.busy_keys.discard(op.key)
        dn.plane, dn.outbox, dn.waiting, dn.stash, dn.pump_at = None, None, {}, [], None

    def _data_resumed(self, index: int) -> None:
        dn = self.data_nodes[index]
        if dn.plane is None or self.nodes[index].paused:
            return
        stash, dn.stash = dn.stash, []
        for src, msg in stash:
            self._data_deliver(index, src, msg)
        self._plane_after(index)

    # --- the client --------------------------------------------------------------------------

    def _client_op(self) -> None:
        rng = self.data_rng
        key = rng.randrange(self.data_config.keys)
        if key in self.busy_keys:
            return
        r = rng.random()
        seq = self.next_seq
        self.next_seq += 1
        write = r < 0.7
        payload = None if (not write or r < 0.1) else payload_of(key, seq)
        op = ClientOp(key, seq, write, payload, rng.randrange(len(self.nodes)))
        if write and payload is None:
            self.history.of(key).deletes.add(seq)
        index = self._route_op(op)
        self._trace(self.now_us, "op", key, seq, int(write), op.entry, -1 if index is None else index)
        if index is None:
            self.history.failed += 1
            return
        dn = self.data_nodes[index]
        digest = self.digests[key]
        if not write:
            self.history.reads += 1
            if not self.history.of(key).acceptable(read_local(dn.store, digest, self.now_ms)):
                self.history.stale_reads += 1
            return
        tid = master_write(dn.plane, dn.store, NS, digest, payload, self.now_ms)
        if tid is None:
            self.history.ack(key, seq)
        else:
            dn.waiting[tid] = op
            self.busy_keys.add(key)
            self._push(self.now_us + TRANSACTION_MAX_MS * 1000, _FAULT,
                       DataEvent("deadline", payload=(index, self.nodes[index].generation, tid)))
        self._plane_after(index)

    def _route_op(self, op: ClientOp) -> int | None:
        """The node that executes the operation, following proxies; None: it fails."""
        index = op.entry
        pid = partition_id(self.digests[op.key])
        for hop in range(MAX_PROXY_HOPS + 1):
            node, dn = self.nodes[index], self.data_nodes[index]
            if node.membership is None or node.paused or dn.plane is None:
                return None
            where, target = dn.plane.route(NS, pid, op.write)
            if where == LOCAL:
                return index
            if where != PROXY or hop == MAX_PROXY_HOPS:
                return None
            nxt = self.data_index_of.get(target)
            if nxt is None or (index, nxt) in self.blocked or (nxt, index) in self.blocked:
                return None
            index = nxt
        return None

    def _client_acked(self, index: int, tid: int) -> None:
        op = self.data_nodes[index].waiting.pop(tid, None)
        if op is not None:
            self.history.ack(op.key, op.seq)
            self.busy_keys.discard(op.key)

    def _client_deadline(self, index: int, generation: int, tid: int) -> None:
        dn = self.data_nodes[index]
        if self.nodes[index].generation != generation or dn.plane is None:
            return  # crashed meanwhile: already in doubt
        op = dn.waiting.pop(tid, None)
        if op is not None:
            dn.plane.replication.abandon(tid)
            self.history.doubt(op.key, op.seq)
            self.busy_keys.discard(op.key)

    # --- the verdict -----------------------------------------------------------------------

    def _data_verify(self) -> tuple[int, int]:
        """Read every key through the cluster; -> (acknowledged operations lost, keys affected)."""
        lost = keys_lost = 0
        crash_only = self.data_config.kind == "crash"
        for key, hist in sorted(self.history.keys.items()):
            digest = self.digests[key]
            index = self._route_op(ClientOp(key, 0, False, None, 0))
            if index is None:
                self._violation(f"key {key}: no node serves it after settling")
                continue
            visible = read_local(self.data_nodes[index].store, digest, self.now_ms)
            n = hist.lost(visible)
            explained = n and self.data_config.policy == GENERATION and hist.lost_to_doubt(visible)
            if n:
                lost += n
                keys_lost += 1
                self.lost_to_doubt += n if explained else 0
                if crash_only and not explained:
                    self._violation(f"key {key}: reads {visible!r}, last acknowledged op {hist.last_acked} "
                                    f"(acked {hist.acked[-5:]}, in doubt {sorted(hist.doubt)[-5:]})")
            if crash_only:
                self._data_check_copies(key, hist, index, digest)
        return lost, keys_lost

    def _data_check_copies(self, key: int, hist: KeyHistory, master: int, digest: bytes) -> None:
        """Every replica's copy is acceptable too, and equal to the master's unless the key has
        an operation in doubt after its last acknowledged one (a write that timed out may have
        reached some replicas only: nothing retransmits it once the client gave up, spec §7.3)."""
        plane = self.data_nodes[master].plane
        pid = partition_id(digest)
        want = image_of(self.data_nodes[master].store, digest, self.now_ms // 1000)
        in_doubt = any(s > hist.last_acked for s in hist.doubt)
        master_visible = None if want is None or want.tombstone else want.payload
        lost_to_doubt = self.data_config.policy == GENERATION and hist.lost_to_doubt(master_visible)
        for node_id in plane.partitions[NS][pid].replicas:
            got = image_of(self.data_nodes[self.data_index_of[node_id]].store, digest, self.now_ms // 1000)
            visible = None if got is None or got.tombstone else got.payload
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
                  f"{r.acked} acked, {r.doubted} in doubt, {r.failed} failed, {r.reads} reads "
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
        print(f"  {kind:5} seeds, policy {policy:16}: {len(rs):3} runs, {acked:6} acked writes, "
              f"{sum(r.doubted for r in rs):5} in doubt, {lost:4} acked writes lost "
              f"({100 * lost / max(acked, 1):.2f} %) on {sum(r.keys_lost for r in rs)} keys in "
              f"{sum(1 for r in rs if r.lost)} runs ({sum(r.lost_to_doubt for r in rs)} to an older write in "
              f"doubt); stale reads {sum(r.stale_reads for r in rs)}/{sum(r.reads for r in rs)}")
    return 1 if failed else 0
