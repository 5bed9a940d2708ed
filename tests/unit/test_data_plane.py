"""DataPlanes over MemoryStores on a seeded in-memory network, driven by synthetic exchanges.

Every fabric message goes through the codec (encode/decode). Client writes execute where
`route()` says (following proxies), are applied to the master's store by core/write.py (as
the node and the simulator do) and replicated to `replica_targets`; a write counts as
acknowledged only when the plane emits `Replicated(tid, OK)`. Deletes are durable (tombstones).
"""

import heapq
import itertools
import random

import pytest

from cluster.core.data_plane import LOCAL, PROXY, DataPlane
from cluster.core.effects import ExchangeComplete, Outbox
from cluster.core.messages import ExchangeData, decode, encode
from cluster.core.migration import MigrationConfig
from cluster.core.records import GENERATION, LAST_UPDATE_TIME, image_of
from cluster.core.replication import Replicated
from cluster.sim.data import apply_write, key_digest, payload_of, read_local, request, value_of
from cluster.storage.engine import partition_id
from cluster.storage.memory import MemoryStore

NS = "test"
PARTITIONS = 256  # the planes handle pids 0..255; every key is hashed into those


class Node:
    def __init__(self, node_id: int, store: MemoryStore, config: MigrationConfig, rf: int, partitions: int):
        self.node_id = node_id
        self.store = store
        self.outbox = Outbox(node_id)
        self.plane = DataPlane(node_id, self.outbox, {NS: store}, {NS: rf}, config, partitions=partitions)


class Net:
    def __init__(self, n: int, seed: int = 0, rf: int = 2, policy: str = GENERATION, partitions: int = PARTITIONS):
        self.rng = random.Random(seed)
        self.rf, self.partitions = rf, partitions
        self.config = MigrationConfig(threads=2, policy={NS: policy})
        self.now_ms = 1_000_000
        self.nodes: dict[int, Node] = {}
        self.blocked: set[tuple[int, int]] = set()
        self.queue: list = []
        self.order = itertools.count()
        self.pending: dict[tuple[int, int], tuple[int, int]] = {}  # (node, tid) -> (key, seq)
        self.acked: dict[int, int] = {}  # key -> seq of the last acknowledged write
        self.deleted: set[int] = set()  # keys whose last acknowledged op was a delete
        self.seq = itertools.count(1)
        self.messages = 0
        for _ in range(n):
            self.add()

    # -- membership, synthetic -----------------------------------------------------------

    def add(self, store: MemoryStore | None = None) -> int:
        node_id = self.rng.getrandbits(63) | 1
        node = Node(node_id, store or MemoryStore(64 << 20), self.config, self.rf, self.partitions)
        node.plane.load_versions(self.now_ms // 1000)
        self.nodes[node_id] = node
        return node_id

    def kill(self, node_id: int) -> MemoryStore:
        return self.nodes.pop(node_id).store

    def exchange(self, members=None) -> int:
        members = tuple(sorted(members or self.nodes, reverse=True))
        key = self.rng.getrandbits(64) | 1
        for n in members:
            self.nodes[n].plane.on_cluster_changed(key)
        versions = {n: through_codec(self.nodes[n].plane.local_versions()) for n in members}
        event = ExchangeComplete(key, members, versions)
        for n in members:
            self.nodes[n].plane.on_exchange_complete(event, self.now_ms)
            self.flush(n)
        return key

    # -- network ---------------------------------------------------------------------------

    def flush(self, node_id: int) -> None:
        node = self.nodes[node_id]
        node.plane.pump(self.now_ms, self.now_ms // 1000)
        while node.outbox.loopback:
            node.plane.step(node.outbox.loopback.popleft(), self.now_ms, self.now_ms // 1000)
        sends, events = node.outbox.take()
        for send in sends:
            at = self.now_ms + self.rng.randint(1, 3)
            heapq.heappush(self.queue, (at, next(self.order), node_id, send.node, encode(send.msg)))
        for event in events:
            assert type(event) is Replicated and event.result == 0, event
            key, seq = self.pending.pop((node_id, event.tid))
            self.acked[key] = seq

    def run(self, ms: int) -> None:
        end = self.now_ms + ms
        while self.now_ms < end:
            self.now_ms += 1
            while self.queue and self.queue[0][0] <= self.now_ms:
                _, _, src, dst, data = heapq.heappop(self.queue)
                if dst in self.nodes and (src, dst) not in self.blocked:
                    self.messages += 1
                    self.nodes[dst].plane.step(decode(data), self.now_ms, self.now_ms // 1000)
                    self.flush(dst)
            if self.now_ms % 10 == 0:
                for n in list(self.nodes):
                    self.flush(n)

    def remaining(self) -> list[tuple[int, int, int]]:
        return [n.plane.remaining(NS) for n in self.nodes.values()]

    def settle(self, limit_ms: int = 60_000) -> None:
        for _ in range(limit_ms // 100):
            self.run(100)
            if all(r == (0, 0, 0) for r in self.remaining()) and not self.pending:
                return
        raise AssertionError(f"not settled: remaining {self.remaining()}, {len(self.pending)} writes pending")

    # -- client ----------------------------------------------------------------------------

    def route(self, key: int, write: bool, entry: int | None = None) -> int | None:
        pid = partition_id(key_digest(key, self.partitions))
        node_id = entry or self.rng.choice(sorted(self.nodes))
        for _ in range(4):
            where, target = self.nodes[node_id].plane.route(NS, pid, write)
            if where == LOCAL:
                return node_id
            if where != PROXY or target not in self.nodes or (node_id, target) in self.blocked:
                return None
            node_id = target
        return None

    def write(self, key: int, delete: bool = False, entry: int | None = None) -> int | None:
        node_id = self.route(key, True, entry)
        assert node_id is not None, f"key {key}: no route for a write"
        node = self.nodes[node_id]
        seq = next(self.seq)
        digest = key_digest(key, self.partitions)
        image = apply_write(node.store, request(digest, None if delete else payload_of(key, seq), True),
                            self.now_ms).image
        pid = partition_id(digest)
        tid = image and node.plane.replication.start(NS, pid, image, node.plane.replica_targets(NS, pid), self.now_ms)
        if delete:
            self.deleted.add(key)
        else:
            self.deleted.discard(key)
        if tid is None:
            self.acked[key] = seq
        else:
            self.pending[(node_id, tid)] = (key, seq)
        self.flush(node_id)
        return node_id

    def read(self, key: int, entry: int | None = None) -> bytes | None:
        node_id = self.route(key, False, entry)
        assert node_id is not None, f"key {key}: no route for a read"
        return read_local(self.nodes[node_id].store, key_digest(key, self.partitions), self.now_ms)

    def master_of(self, key: int) -> int:
        return self.route(key, True)

    def copies(self, key: int) -> list[int]:
        digest = key_digest(key, self.partitions)
        return [n for n, node in self.nodes.items() if node.store.lookup(digest) is not None]

    def check_acked_readable(self) -> None:
        for key, seq in self.acked.items():
            want = None if key in self.deleted else payload_of(key, seq)
            assert self.read(key, entry=self.master_of(key)) == want, f"key {key}"
            for entry in self.nodes:  # via proxies / replicas too
                assert self.read(key, entry=entry) == want, f"key {key} read via {entry:x}"


def through_codec(versions):
    """Versions as the exchange carries them: encoded and decoded in an ExchangeData."""
    return decode(encode(ExchangeData(1, 1, versions))).versions


def test_fresh_cluster_serves_writes_with_two_copies():
    net = Net(3)
    net.exchange()
    assert net.remaining() == [(0, 0, 0)] * 3
    for key in range(100):
        net.write(key)
    net.settle()
    net.check_acked_readable()
    assert len(net.acked) == 100
    for key in range(100):
        assert len(net.copies(key)) == 2


def test_kill_one_of_three_rf2_keeps_every_acked_write_with_two_copies():
    net = Net(3, seed=1)
    net.exchange()
    for key in range(300):
        net.write(key)
    net.settle()
    victim = sorted(net.nodes)[1]
    net.kill(victim)
    net.pending = {k: v for k, v in net.pending.items() if k[0] != victim}
    net.exchange()
    for i in range(200):  # writes while migrations run
        net.write(i % 300, delete=i % 7 == 0)
        net.run(2)
    net.settle()
    assert net.remaining() == [(0, 0, 0)] * 2
    net.check_acked_readable()
    for key in range(300):
        assert len(net.copies(key)) == 2, f"key {key} has copies on {net.copies(key)}"
    # and the partition versions agree: every partition is full on both replicas
    for node in net.nodes.values():
        for state in node.plane.partitions[NS]:
            assert state.version.has_data and not state.version.subset


def test_full_4096_partitions_node_leaves():
    net = Net(3, seed=2, partitions=4096)
    net.exchange()
    for key in range(200):
        net.write(key)
    net.settle()
    net.kill(sorted(net.nodes)[0])
    net.exchange()
    net.settle()
    net.check_acked_readable()
    assert all(len(net.copies(k)) == 2 for k in range(200))


def test_node_added_under_writes_loses_no_acked_write():
    net = Net(3, seed=3)
    net.exchange()
    for key in range(200):
        net.write(key)
    net.settle()
    new = net.add()
    net.exchange()
    rng = random.Random(5)
    for _ in range(400):
        key = rng.randrange(200)
        if not any(k == key for k, _ in net.pending.values()):
            net.write(key, delete=rng.random() < 0.1)
        net.run(1)
    net.settle()
    net.check_acked_readable()
    for key in range(200):
        master = net.master_of(key)
        replicas = net.nodes[master].plane.partitions[NS][partition_id(key_digest(key, PARTITIONS))].replicas
        assert set(net.copies(key)) == set(replicas)  # witnesses dropped their copies
    assert any(net.nodes[new].store.lookup(key_digest(k, PARTITIONS)) for k in range(200))


def test_restarted_node_with_stale_data_brings_nothing_deleted_back():
    net = Net(3, seed=4)
    net.exchange()
    for key in range(200):
        net.write(key)
    net.settle()
    victim = sorted(net.nodes)[2]
    store = net.kill(victim)
    net.exchange()
    for key in range(0, 200, 2):
        net.write(key, delete=True)  # deleted while the victim is down
    for key in range(1, 200, 4):
        net.write(key)  # updated while the victim is down
    net.settle()
    restarted = Node(victim, store, net.config, net.rf, PARTITIONS)
    restarted.plane.load_versions(net.now_ms // 1000)
    assert any(v for v in restarted.plane.local_versions()[NS])
    net.nodes[victim] = restarted
    net.exchange()
    net.settle()
    net.check_acked_readable()
    for key in range(0, 200, 2):
        for entry in net.nodes:
            assert net.read(key, entry=entry) is None, f"deleted key {key} came back via {entry:x}"
        for node in net.nodes.values():
            assert node.store.get(key_digest(key, PARTITIONS), net.now_ms // 1000) is None


def test_whole_cluster_restart_merges_isolated_copies():
    net = Net(3, seed=5)
    net.exchange()
    for key in range(100):
        net.write(key, delete=key % 5 == 0)
    net.settle()
    stores = {n: net.kill(n) for n in list(net.nodes)}
    for node_id, store in stores.items():
        node = Node(node_id, store, net.config, net.rf, PARTITIONS)
        node.plane.load_versions(net.now_ms // 1000)
        net.nodes[node_id] = node
    net.exchange()
    net.settle()
    net.check_acked_readable()


def test_migrate_threads_zero_stops_progress_and_raising_it_resumes():
    net = Net(3, seed=6)
    net.exchange()
    for key in range(100):
        net.write(key)
    net.settle()
    net.kill(sorted(net.nodes)[0])
    net.config.threads = 0
    net.exchange()
    before = net.remaining()
    assert any(tx for tx, _, _ in before)
    net.run(5000)
    assert net.remaining() == before
    net.config.threads = 1
    for n in net.nodes:
        net.flush(n)
    net.settle()
    net.check_acked_readable()


def test_replica_writes_reach_an_immigrating_replica():
    net = Net(2, seed=7)
    net.exchange()
    net.add()
    net.config.threads = 0  # nothing migrates: only replica writes can fill the newcomer
    net.exchange()
    for key in range(50):
        net.write(key)
    net.run(200)
    assert not net.pending
    net.check_acked_readable()


@pytest.mark.parametrize("policy", [GENERATION, LAST_UPDATE_TIME])
def test_conflict_resolution_after_split_heal(policy):
    net = Net(2, seed=8, policy=policy)
    a, b = sorted(net.nodes)
    net.exchange()
    net.write(1)
    net.settle()
    net.blocked = {(a, b), (b, a)}
    net.exchange([a])
    net.exchange([b])
    for _ in range(3):  # side a: more writes (higher generation), earlier
        net.write(1, entry=a)
        net.run(5)
    a_value = net.read(1, entry=a)
    net.run(50)
    net.write(1, entry=b)  # side b: one write, later (higher LUT)
    b_value = net.read(1, entry=b)
    net.settle()
    net.blocked = set()
    net.exchange()
    net.settle()
    expected = a_value if policy == GENERATION else b_value
    assert net.read(1, entry=a) == expected and net.read(1, entry=b) == expected
    for node in net.nodes.values():
        image = image_of(node.store, key_digest(1, PARTITIONS), net.now_ms // 1000)
        assert value_of(image.payload) == expected


def test_orphaned_node_is_unavailable_until_the_next_exchange():
    net = Net(2, seed=9)
    net.exchange()
    node = next(iter(net.nodes.values()))
    node.plane.on_orphaned()
    assert node.plane.route(NS, 0, True)[0] == "unavailable"
    net.exchange()
    assert node.plane.route(NS, 0, True)[0] in (LOCAL, PROXY)


def test_final_master_serves_once_the_acting_master_copy_is_in_even_with_duplicates_pending():
    from cluster.core.data_messages import MigrateDone, MigrateStart
    from cluster.core.partition_balance import node_sequence
    from cluster.core.partition_version import ISOLATED, Version
    from cluster.core.rebalance import ACTING_MASTER

    ids = [0xB1, 0xC1, 0xD1, 0xE1, 0xF1]
    d, b, c = next((x, y, z) for x, y, z in itertools.permutations(ids, 3)
                   if node_sequence((x, y, z), 0) == (x, y, z))  # d final master, b replica, c not
    old = Version(0x1234, 0, master=True).pack()
    versions = {d: {}, b: {NS: {old: (0,)}}, c: {NS: {ISOLATED.pack(): (0,)}}}
    out = Outbox(d)
    plane = DataPlane(d, out, {NS: MemoryStore(1 << 20)}, {NS: 2}, MigrationConfig(), partitions=1)
    key = 0x5555
    plane.on_cluster_changed(key)
    plane.on_exchange_complete(ExchangeComplete(key, tuple(sorted((b, c, d), reverse=True)), versions), 0)
    assert plane.route(NS, 0, True) == (PROXY, b)  # b is the acting master
    assert plane.partitions[NS][0].immigrating == {b, c}
    plane.step(MigrateStart(b, key, 1, NS, 0, ACTING_MASTER), 1, 0)
    plane.step(MigrateDone(b, key, 1), 2, 0)
    assert plane.route(NS, 0, True) == (LOCAL, d)  # no proxy loop while c's duplicate is pending
    assert plane.partitions[NS][0].version.master
    assert plane.remaining(NS)[1] == 1


def test_split_heal_interrupted_before_the_duplicate_migrated_still_merges_it():
    # Seed 937 of the data simulator, on two nodes: the replica that is a duplicate took the
    # newer write during the split; the heal's cluster changes before its duplicate
    # migration is in. The final master must still receive that write.
    net = Net(2, seed=11, policy=LAST_UPDATE_TIME)
    net.exchange()
    key = 1
    pid = partition_id(key_digest(key, PARTITIONS))
    fm, dup = next(iter(net.nodes.values())).plane.partitions[NS][pid].replicas
    net.blocked = {(fm, dup), (dup, fm)}
    net.exchange([fm])
    net.exchange([dup])
    net.write(key, delete=True, entry=fm)  # an older durable delete on the final master's side
    net.run(50)
    net.write(key, entry=dup)  # acked later (higher LUT) on the duplicate's side
    net.settle()
    net.exchange()  # the heal, broken up at once: nothing migrates
    net.blocked = set()
    net.exchange()
    net.settle()
    net.check_acked_readable()
