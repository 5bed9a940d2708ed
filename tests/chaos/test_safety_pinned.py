"""The safety workload's rules for pinned mode (every node's writers append to every key: a
set per key, Jepsen's set checker) on hand-made histories, and the pinned workload on a real
cluster: each request goes to its writer's node only, and every key ends with every
acknowledged append."""

import socket
import time
from collections import Counter

from chaos.safety import FAILED, INDETERMINATE, OK, Op, SafetyWorkload, classify, wait_settled
from cluster.deploy.local_cluster import LocalCluster


def write(key, value, start, end, outcome=OK, node=None):
    return Op("write", key, value, start, end, outcome, node=node)


def read(key, value, start, end):
    return Op("read", key, value, start, end, OK)


def test_every_acknowledged_append_missing_from_the_final_set_is_discarded():
    # the split: side a appends 11 and 13, side b appends 12 (overlapping 11); the heal keeps side a
    history = [write(1, 10, 0, 1), write(1, 11, 2, 3, node="a"), write(1, 12, 2.5, 4, node="b"),
               write(1, 13, 5, 6, node="a"), write(2, 20, 0, 1)]
    verdict = classify(history, {1: (10, 11, 13), 2: (20,)}, sets=True)
    assert not verdict["valid"]
    [lost] = verdict["lost"]
    assert lost["key"] == 1 and lost["discarded"] == 1 and lost["last_acked"]["value"] == 12
    assert verdict["counts"]["discarded"] == 1 and verdict["counts"]["lost"] == 1
    assert [op["value"] for op in lost["history"]] == [10, 11, 12, 13]
    # all there, in any order: nothing lost
    assert classify(history, {1: (12, 10, 13, 11), 2: (20,)}, sets=True)["valid"]


def test_every_acknowledged_append_of_a_key_whose_record_is_missing_is_discarded():
    history = [write(1, 10, 0, 1), write(1, 11, 0.5, 2), write(1, 12, 0.2, 3, INDETERMINATE)]
    verdict = classify(history, {1: ()}, sets=True)
    assert verdict["counts"]["lost"] == 1 and verdict["counts"]["discarded"] == 2


def test_an_append_in_doubt_may_or_may_not_be_there():
    history = [write(1, 10, 0, 1), write(1, 11, 2, 3, INDETERMINATE)]
    assert classify(history, {1: (10, 11)}, sets=True)["valid"]
    assert classify(history, {1: (10,)}, sets=True)["valid"]


def test_a_failed_append_seen_in_a_read_or_the_final_set_is_reported():
    history = [write(1, 10, 0, 1), write(1, 11, 2, 3, FAILED), read(1, (10, 11), 4, 5)]
    verdict = classify(history, {1: (10,)}, sets=True)
    [seen] = verdict["failed_visible"]
    assert seen["write"]["value"] == 11 and seen["seen_by"]["kind"] == "read"
    assert classify(history[:2], {1: (10, 11)}, sets=True)["failed_visible"][0]["seen_by"] == "final read"
    assert verdict["counts"]["lost"] == 0 and not verdict["valid"]


def test_a_read_is_stale_if_it_lacks_an_append_acknowledged_before_it_began():
    history = [write(1, 10, 0, 1), write(1, 11, 2, 3), write(1, 12, 2.5, 4),
               read(1, (10, 11), 3.5, 6),  # 12 was not acknowledged yet: fine
               read(1, (10, 12), 3.5, 6),  # 11 was: stale
               read(1, (), 1.5, 1.6)]  # 10 was: stale
    verdict = classify(history, {1: (10, 11, 12)}, sets=True)
    assert sorted((s["read"]["value"], s["expected_at_least"]["value"]) for s in verdict["stale_reads"]) == \
        [((), 10), ((10, 12), 11)]
    assert verdict["valid"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_pinned_writers_send_to_their_own_node_only_and_stop_writing_on_request():
    with LocalCluster(nodes=3, rf=2) as cluster:
        dead = ("127.0.0.1", free_port())  # a host nobody listens on: its threads' requests must fail
        safety = SafetyWorkload(cluster.seeds() + [dead], set_name="stopped", keys=20, rate=160, seed=3,
                                mode="pinned").start()
        try:
            assert (safety.writers, safety.readers) == (4, 4)  # one of each per host
            time.sleep(2)
            acknowledged = safety.stop_writes()
            writes = [op for op in safety.history if op.kind == "write"]
            time.sleep(1)
            assert len([op for op in safety.history if op.kind == "write"]) == len(writes)  # stopped
            reads = len([op for op in safety.history if op.kind == "read"])
            time.sleep(0.5)
            assert len([op for op in safety.history if op.kind == "read"]) > reads  # readers go on
        finally:
            safety.close()
        by_node = {node: {op.outcome for op in writes if op.node == node} for node in {op.node for op in writes}}
        assert by_node.pop(f"{dead[0]}:{dead[1]}") == {FAILED}  # never rerouted to a live node
        assert len(by_node) == 3 and all(outcomes == {OK} for outcomes in by_node.values())
        assert acknowledged == sum(op.outcome == OK for op in writes) > 0

        safety = SafetyWorkload(cluster.seeds(), keys=20, rate=120, seed=3, mode="pinned").start()
        try:
            time.sleep(4)
            safety.stop()
            wait_settled(cluster.seeds(), timeout=30)
            verdict = safety.check()
        finally:
            safety.close()
    writes = [op for op in safety.history if op.kind == "write"]
    nodes_per_key = Counter(len({op.node for op in writes if op.key == key}) for key in {op.key for op in writes})
    assert nodes_per_key[3] > 0  # keys written through every node
    assert verdict["valid"] and verdict["counts"]["writes"]["ok"] == len(writes) > 100
    assert verdict["policy"]["mode"] == "pinned" and verdict["policy"]["read"]["replica"] == "pinned"
