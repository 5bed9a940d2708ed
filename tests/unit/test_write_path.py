"""One write path: the node's transaction layer and the data simulator store the same record.

The same requests, at the same clock, go through `Transactions.record` (the node: a real
namespace, its memory storage engine) and through the simulator's `apply_write`; after
each, both stores hold the same metadata (generation, void time, LUT, set) and payload,
or the same tombstone. Both call core/write.py, and this keeps it so.
"""

import pytest

from cluster.core.records import image_of
from cluster.node.config import NodeConfig
from cluster.node.namespace import Namespace
from cluster.node.transactions import Transactions
from cluster.sim.data import apply_write, key_digest, request
from cluster.storage.memory import MemoryStore
from cluster.wire.message import Info2
from cluster.wire.result_codes import AerospikeError, ResultCode

NOW_MS = 500_000_000_123  # citrusleaf ms


class FixedClock:
    def __init__(self):
        self.ms = NOW_MS

    def now_ms(self) -> int:
        return self.ms

    def now_s(self) -> int:
        return self.ms // 1000


def test_node_and_simulator_store_the_same_record():
    cfg = NodeConfig.from_dict({"namespaces": {"test": {"storage-engine": {"type": "memory"}}}})
    ns = Namespace("test", cfg)
    clock = FixedClock()
    node = Transactions({"test": ns}, cluster=None, clock=clock)
    sim_store = MemoryStore(1 << 20)
    digest = key_digest(1)
    steps = [(b"a", 0), (b"b", 0), (None, 0), (b"c", 5), (b"d", 1000), (None, 1), (None, 1)]
    for value, advance_ms in steps:  # advance 0: the same millisecond, the LUT must still move on
        clock.ms += advance_ms
        msg = request(digest, value, True)
        node_outcome = node.record(ns, msg.fields, msg.info1, msg.info2, msg.info3, msg.generation,
                                   msg.record_ttl, msg.ops)
        sim_outcome = apply_write(sim_store, msg, clock.ms)
        assert (node_outcome.result, node_outcome.generation) == (sim_outcome.result, sim_outcome.generation)
        assert ns.storage.lookup(digest) == sim_store.lookup(digest)
        assert image_of(ns.storage, digest, clock.now_s()) == image_of(sim_store, digest, clock.now_s())
    final = image_of(sim_store, digest, clock.now_s())
    assert final.tombstone and final.generation == 6 and final.lut == NOW_MS + 1006


def test_a_generation_check_refuses_alike():
    cfg = NodeConfig.from_dict({"namespaces": {"test": {"storage-engine": {"type": "memory"}}}})
    ns = Namespace("test", cfg)
    node = Transactions({"test": ns}, cluster=None, clock=FixedClock())
    sim_store = MemoryStore(1 << 20)
    digest = key_digest(2)
    for store_write in (lambda m: node.record(ns, m.fields, m.info1, m.info2, m.info3, m.generation, m.record_ttl, m.ops),
                        lambda m: apply_write(sim_store, m, NOW_MS)):
        store_write(request(digest, b"x", True))
        stale = request(digest, b"y", True)
        stale.info2 |= Info2.GENERATION
        stale.generation = 7
        with pytest.raises(AerospikeError) as refused:
            store_write(stale)
        assert refused.value.code == ResultCode.GENERATION
    assert ns.storage.lookup(digest) == sim_store.lookup(digest)
