"""partition_balance against an independent, deliberately plain reimplementation of Aerospike's node-sequence permutation (partition_balance.c)."""

import base64
import struct
from collections import Counter

import pytest

from cluster.core.partition_balance import (
    BITMAP_BYTES,
    N_PARTITIONS,
    effective_replication_factor,
    node_sequence,
    partition_table,
    replica_bitmaps,
    replicas_base64,
)

M64 = 0xFFFFFFFFFFFFFFFF
SPEC_NODES = [0xBB9040011AC4202, 0xBB9030011AC4202, 0xBB9020011AC4202]


# --- the reference: written from the spec text alone, CE's 3-bit index --------------------


def ref_fnv(data):
    h = 0xCBF29CE484222325
    for byte in data:
        h ^= byte
        h = (h * 0x100000001B3) % (1 << 64)
    return h


def ref_jenkins(data):
    h = 0
    for byte in data:
        h = (h + byte) & M64
        h = (h + ((h << 10) & M64)) & M64
        h = h ^ (h >> 6)
    h = (h + ((h << 3) & M64)) & M64
    h = h ^ (h >> 11)
    h = (h + ((h << 15) & M64)) & M64
    return h


def ref_sequence(nodes, pid, cluster_sz=8):
    succession = sorted(nodes, reverse=True)
    hp = ref_fnv(struct.pack("<I", pid))
    values = []
    for n, node in enumerate(succession):
        hn = ref_fnv(struct.pack("<Q", node))
        v = ref_jenkins(struct.pack("<QQ", hn, hp))
        values.append((v & ~(cluster_sz - 1) & M64) + n)
    values.sort(reverse=True)
    return [succession[v & (cluster_sz - 1)] for v in values]


NODE_LISTS = [
    SPEC_NODES,
    SPEC_NODES[:2],
    [0xBB9040011AC4202],
    [0xBB9000000000001 + i * 0x10000000 for i in range(5)],
    [0x1, 0x2, 0xFFFFFFFFFFFFFFFF, 0xBB9ABCDEF012345],
    [0xA00000000000 + 7 * i * i + 3 for i in range(8)],
]


@pytest.mark.parametrize("nodes", NODE_LISTS, ids=lambda n: f"{len(n)}nodes")
def test_matches_reference_for_every_partition(nodes):
    table = partition_table(nodes)
    for pid in range(N_PARTITIONS):
        assert list(table[pid]) == ref_sequence(nodes, pid), pid


def test_spec_worked_example():
    table = partition_table(SPEC_NODES)
    assert table[0] == (0xBB9030011AC4202, 0xBB9040011AC4202, 0xBB9020011AC4202)
    assert table[2] == (0xBB9040011AC4202, 0xBB9020011AC4202, 0xBB9030011AC4202)
    assert node_sequence(SPEC_NODES, 2) == table[2]


def test_order_of_input_does_not_matter():
    assert partition_table(list(reversed(SPEC_NODES))) == partition_table(SPEC_NODES)


@pytest.mark.parametrize(("count", "tolerance"), [(3, 0.04), (4, 0.04), (5, 0.05), (8, 0.08)])
def test_masters_are_balanced(count, tolerance):
    # a random assignment has a standard deviation of sqrt(fair): 1.6 % for 3 nodes, 4.4 % for 8
    nodes = [0xBB9000011AC4202 + (i << 40) for i in range(count)]
    masters = Counter(seq[0] for seq in partition_table(nodes))
    fair = N_PARTITIONS / count
    assert all(abs(n - fair) / fair < tolerance for n in masters.values()), masters


def test_removing_a_node_moves_only_its_partitions():
    nodes = [0xBB9000011AC4202 + (i << 40) for i in range(5)]
    gone = nodes[2]
    before, after = partition_table(nodes), partition_table([n for n in nodes if n != gone])
    rf = 2
    for old, new in zip(before, after, strict=True):
        assert [n for n in old if n != gone] == list(new)  # relative order kept
        if gone not in old[:rf]:
            assert old[:rf] == new[:rf]  # untouched partitions keep master and replica
        if old[0] == gone:
            assert new[0] == old[1]  # the replica takes over as master


def test_effective_replication_factor():
    assert effective_replication_factor(2, 1) == 1
    assert effective_replication_factor(2, 5) == 2
    assert effective_replication_factor(3, 3) == 3
    with pytest.raises(ValueError):
        effective_replication_factor(0, 3)


def test_replica_bitmaps_msb_first_and_base64():
    table = partition_table(SPEC_NODES)
    columns = {node: replica_bitmaps(table, node, 2) for node in SPEC_NODES}
    for node, cols in columns.items():
        assert len(cols) == 2 and all(len(c) == BITMAP_BYTES for c in cols)
        for pid in range(N_PARTITIONS):
            for column in range(2):
                bit = cols[column][pid // 8] >> (7 - pid % 8) & 1
                assert bit == (table[pid][column] == node)
    # every partition has exactly one master and one replica over all nodes
    for column in range(2):
        total = sum(int.from_bytes(columns[n][column], "big") for n in SPEC_NODES)
        assert total == (1 << N_PARTITIONS) - 1
    encoded = replicas_base64(columns[SPEC_NODES[0]])
    assert all(len(e) == 684 for e in encoded)
    assert base64.b64decode(encoded[0]) == columns[SPEC_NODES[0]][0]
    # pid 0's master is ...903..., so its bit 0x80 of byte 0 is set in that node's column 0
    assert columns[0xBB9030011AC4202][0][0] & 0x80


def test_bad_succession_lists():
    with pytest.raises(ValueError):
        partition_table([])
    with pytest.raises(ValueError):
        partition_table(range(1, 258))


# --- rack awareness -----------------------------------------------------------------------

RACK_NODES = [0xBB9000011AC4202 + (i << 40) for i in range(6)]
TWO_RACKS = {n: i % 2 for i, n in enumerate(RACK_NODES)}
THREE_RACKS = {n: i % 3 for i, n in enumerate(RACK_NODES)}


def test_racks_keep_masters_and_spread_copies():
    plain = partition_table(RACK_NODES)
    for racks, rf in ((TWO_RACKS, 2), (THREE_RACKS, 3)):
        table = partition_table(RACK_NODES, racks)
        for pid in range(N_PARTITIONS):
            assert table[pid][0] == plain[pid][0]
            assert sorted(table[pid]) == sorted(plain[pid])
            assert len({racks[n] for n in table[pid][:rf]}) == rf


def test_more_copies_than_racks_go_round_robin():
    table = partition_table(RACK_NODES, TWO_RACKS)
    for seq in table:
        assert [TWO_RACKS[n] for n in seq[:4]].count(0) == 2


def test_single_rack_is_the_plain_order():
    assert partition_table(RACK_NODES, dict.fromkeys(RACK_NODES, 7)) == partition_table(RACK_NODES)


def test_rack_aware_removal_moves_only_partitions_of_the_removed_node():
    gone = RACK_NODES[1]  # rack 1 keeps two other nodes
    before = partition_table(RACK_NODES, TWO_RACKS)
    after = partition_table([n for n in RACK_NODES if n != gone], TWO_RACKS)
    rf = 2
    moved = 0
    for old, new in zip(before, after, strict=True):
        if gone in old[:rf]:
            moved += 1
        else:
            assert old[:rf] == new[:rf]
    assert moved < N_PARTITIONS * rf / len(RACK_NODES) * 1.1
