"""Partition assignment: which nodes hold each of the 4096 partitions, in which order.

The node sequence of a partition (Aerospike's "Smart Partitions" permutation, fabric/partition_balance.c):

1. ``hp = fnv1a64(pid as 4 bytes little-endian)``.
2. For the node at index ``n`` of the succession list (sorted descending):
   ``hn = fnv1a64(node id as 8 bytes LE)``, ``v = jenkins_oaat64(hn LE ‖ hp LE)``,
   then the low ``INDEX_BITS`` bits of ``v`` are replaced by ``n``.
3. The values are sorted descending (unsigned) and mapped back to nodes through their low
   bits. Position 0 is the final master, positions 1…RF−1 the replicas ("proles").

Index width. Aerospike CE clears 3 bits (``AS_CLUSTER_SZ`` = 8 nodes). We allow clusters of
up to ``MAX_CLUSTER_SIZE`` = 256 nodes and therefore clear 8 bits, everywhere and always (a
cluster must never mix widths). The width only matters when two nodes' hashes agree in all
bits above it, so for clusters of ≤ 8 nodes the sequences equal CE's except with
probability about 2⁻⁵⁶ per node pair and partition; the unit tests compare against a
3-bit reimplementation on fixed node lists, including a worked example computed by hand.

A node's sort key depends only on its own id and the pid, so removing a node keeps the
relative order of the others: its partitions pass to the next node in each sequence, which
usually already holds a replica (minimal movement).

Rack awareness (an extension; Aerospike's EE algorithm is not public). With a rack id per
node, each sequence is re-ordered greedily: walking the hash order, each next position takes
the first remaining node whose rack is not yet used in the current round; when every rack is
used, a new round starts. Consequences:

* position 0 is always the hash master, so masters stay spread exactly as without racks;
* the first ``number of racks`` positions are on distinct racks, so when RF ≤ racks every
  copy of a partition is on a different rack, and when RF > racks copies spread round-robin;
* with every node on one rack (or no racks given) the order is the plain hash order.

Movement cost: removing a node changes the replica set only of partitions where it held a
copy, exactly as without racks (a skipped node never influenced a greedy choice); its
replacement is the next node of a rack not yet holding the partition instead of simply the
next node. Changing the number of racks (the first node of a new rack arrives, or the last
of one leaves) changes the round structure, so then many replica positions move (up to
every partition whose replicas were doubled up on a rack); masters still move only as they
would without racks.
"""

import base64
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

N_PARTITIONS = 4096
MAX_CLUSTER_SIZE = 256
INDEX_BITS = 8  # log2(MAX_CLUSTER_SIZE)
INDEX_MASK = (1 << INDEX_BITS) - 1
MAX_REPLICATION_FACTOR = MAX_CLUSTER_SIZE
BITMAP_BYTES = N_PARTITIONS // 8

_MASK64 = (1 << 64) - 1
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3


def fnv1a64(data: bytes) -> int:
    h = _FNV_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & _MASK64
    return h


def _oaat_absorb(h: int, data: bytes) -> int:
    for b in data:
        h = (h + b) & _MASK64
        h = (h + (h << 10)) & _MASK64
        h ^= h >> 6
    return h


def _oaat_finish(h: int) -> int:
    h = (h + (h << 3)) & _MASK64
    h ^= h >> 11
    return (h + (h << 15)) & _MASK64


def jenkins_oaat64(data: bytes) -> int:
    """Jenkins one-at-a-time, computed in 64-bit arithmetic."""
    return _oaat_finish(_oaat_absorb(0, data))


@lru_cache(maxsize=1)
def _pid_hash_bytes():
    """FNV-1a-64 of every pid, as a (4096, 8) uint64 array of its little-endian bytes."""
    import numpy as np  # here, not at module level: numpy costs a starting node 40 ms of CPU

    hashes = [fnv1a64(pid.to_bytes(4, "little")).to_bytes(8, "little") for pid in range(N_PARTITIONS)]
    return np.frombuffer(b"".join(hashes), dtype=np.uint8).reshape(N_PARTITIONS, 8).astype(np.uint64)


@lru_cache(maxsize=1024)
def _node_keys(node_id: int) -> tuple[int, ...]:
    """The node's sort key for every pid, with the index bits cleared: jenkins_oaat64 of the
    node's hash followed by the pid's hash. The node's 8 bytes are absorbed once, the pids'
    8 bytes for all 4096 pids at once (uint64 arrays wrap as the C code does): a node that
    joins computes every member's keys while the cluster waits on its exchange, and byte by
    byte in Python that took over a second, longer than the heartbeat timeout."""
    import numpy as np

    h = np.full(N_PARTITIONS, _oaat_absorb(0, fnv1a64(node_id.to_bytes(8, "little")).to_bytes(8, "little")),
                dtype=np.uint64)
    for column in _pid_hash_bytes().T:
        h += column
        h += h << np.uint64(10)
        h ^= h >> np.uint64(6)
    h += h << np.uint64(3)
    h ^= h >> np.uint64(11)
    h += h << np.uint64(15)
    return tuple((h & np.uint64(~INDEX_MASK & _MASK64)).tolist())


def precompute(node_id: int) -> None:
    """Compute a node's sort keys (importing numpy) ahead of the first rebalance that needs
    them: a starting node does it while it waits for its first quantum, off the path on
    which a forming cluster waits for every member's rebalance."""
    _node_keys(node_id)


def _checked_succession(succession: Iterable[int]) -> tuple[int, ...]:
    nodes = tuple(sorted(set(succession), reverse=True))
    if not 0 < len(nodes) <= MAX_CLUSTER_SIZE:
        raise ValueError(f"a succession list holds 1..{MAX_CLUSTER_SIZE} nodes, got {len(nodes)}")
    return nodes


def node_sequence(succession: Iterable[int], pid: int) -> tuple[int, ...]:
    """The hash order of the nodes for one partition (no rack adjustment)."""
    nodes = _checked_succession(succession)
    keys = sorted((_node_keys(node)[pid] + n for n, node in enumerate(nodes)), reverse=True)
    return tuple(nodes[k & INDEX_MASK] for k in keys)


def _rack_order(sequence: Sequence[int], racks: Mapping[int, int]) -> tuple[int, ...]:
    remaining = list(sequence)
    ordered: list[int] = []
    used: set[int] = set()
    while remaining:
        pick = next((node for node in remaining if racks.get(node, 0) not in used), None)
        if pick is None:  # every rack holds a copy in this round: start the next round
            used.clear()
            pick = remaining[0]
        remaining.remove(pick)
        used.add(racks.get(pick, 0))
        ordered.append(pick)
    return tuple(ordered)


def partition_table(
    succession: Iterable[int], racks: Mapping[int, int] | None = None
) -> tuple[tuple[int, ...], ...]:
    """Node sequences for all 4096 partitions; ``racks`` maps node id → rack id (default 0)."""
    nodes = _checked_succession(succession)
    rack_items = tuple(sorted((n, racks.get(n, 0)) for n in nodes)) if racks else ()
    return _table(nodes, rack_items)


@lru_cache(maxsize=64)
def _table(nodes: tuple[int, ...], rack_items: tuple[tuple[int, int], ...]) -> tuple[tuple[int, ...], ...]:
    keyed = [_node_keys(node) for node in nodes]
    table = []
    for pid in range(N_PARTITIONS):
        keys = sorted((k[pid] + n for n, k in enumerate(keyed)), reverse=True)
        table.append(tuple(nodes[k & INDEX_MASK] for k in keys))
    if len({rack for _, rack in rack_items}) > 1:
        racks = dict(rack_items)
        table = [_rack_order(seq, racks) for seq in table]
    return tuple(table)


def effective_replication_factor(configured: int, cluster_size: int) -> int:
    if configured < 1:
        raise ValueError(f"replication-factor must be >= 1, got {configured}")
    return min(configured, cluster_size)


def replica_bitmaps(table: Sequence[Sequence[int]], node_id: int, replication_factor: int) -> list[bytes]:
    """The client partition map of one node: per replica column, a 4096-bit bitmap.

    Column i marks the partitions where ``node_id`` is at position i (0 = master); bit for
    pid p is ``byte[p >> 3] & (0x80 >> (p & 7))``. ``replication_factor`` must already be
    the effective one.
    """
    columns = [bytearray(BITMAP_BYTES) for _ in range(replication_factor)]
    for pid, sequence in enumerate(table):
        for column, node in enumerate(sequence[:replication_factor]):
            if node == node_id:
                columns[column][pid >> 3] |= 0x80 >> (pid & 7)
    return [bytes(c) for c in columns]


def replicas_base64(bitmaps: Sequence[bytes]) -> list[str]:
    """Base64 of each column as the ``replicas`` info value carries it (684 characters)."""
    return [base64.b64encode(b).decode("ascii") for b in bitmaps]
