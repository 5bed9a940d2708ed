"""Partition-map parsing and routing from synthetic `replicas` values (no server)."""

import pytest

from cluster.client.cluster import Cluster
from cluster.client.errors import ClientError, InvalidNode, NamespaceNotFound
from cluster.client.partitions import PartitionMap, bitmap_partitions, parse_replicas
from tests.unit.client_fakes import bitmap_b64, replicas_value


class N:
    """Stands in for a Node: the map only needs identity and `closed`."""

    closed = False

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


def test_bitmap_is_msb_first_and_684_base64_chars():
    b64 = bitmap_b64([0, 9, 4095])
    assert len(b64) == 684
    bitmaps = parse_replicas(f"test:0,1,{b64}")["test"].bitmaps
    assert bitmaps[0][0] == 0x80 and bitmaps[0][1] == 0x40 and bitmaps[0][511] == 0x01
    assert bitmap_partitions(bitmaps[0]) == [0, 9, 4095]


def test_parse_several_namespaces_and_columns():
    value = replicas_value([range(0, 10), range(10, 20)], "test") + ";" + replicas_value([[5]], "bar") + ";"
    parsed = parse_replicas(value)
    assert set(parsed) == {"test", "bar"}
    assert parsed["test"].n_replicas == 2 and parsed["test"].regime == 0
    assert bitmap_partitions(parsed["test"].bitmaps[1]) == list(range(10, 20))
    assert bitmap_partitions(parsed["bar"].bitmaps[0]) == [5]


def test_only_three_columns_are_kept():
    parsed = parse_replicas(replicas_value([[1], [2], [3], [4]]))
    assert parsed["test"].n_replicas == 4 and len(parsed["test"].bitmaps) == 3


@pytest.mark.parametrize("value", ["test:0,1,AAAA", "test:x,1," + bitmap_b64([1]), "test:0", ":0,1," + bitmap_b64([1]),
                                   "test:0,2," + bitmap_b64([1])])
def test_malformed_replicas_raise_client_error(value):
    with pytest.raises(ClientError) as info:
        parse_replicas(value)
    assert info.value.code == -1


def test_claims_build_the_map_and_report_losers():
    a, b = N("a"), N("b")
    pmap, losers = PartitionMap().with_claims(a, parse_replicas(replicas_value([range(4096), []])))
    assert losers == set()
    pmap, losers = pmap.with_claims(b, parse_replicas(replicas_value([range(1, 4096, 2), range(0, 4096, 2)])))
    assert losers == {a}  # b took over the odd masters a had reported: a's view is stale
    assert pmap.node("test", 2, 0) is a and pmap.node("test", 2, 1) is b
    assert pmap.node("test", 3, 0) is b and pmap.node("test", 3, 1) is None
    assert pmap.n_replicas("test") == 2
    emptied = pmap.without({a})
    assert emptied.node("test", 2, 0) is None and emptied.node("test", 3, 0) is b
    assert pmap.node("test", 2, 0) is a  # the original map is untouched (copy on write)
    assert not emptied.owns_any(a) and pmap.owns_any(a)


def _cluster_with(pmap: PartitionMap) -> Cluster:
    cluster = Cluster([("127.0.0.1", 1)])
    cluster.partitions = pmap
    return cluster


def test_routing_master_and_sequence():
    a, b = N("a"), N("b")
    pmap, _ = PartitionMap().with_claims(a, parse_replicas(replicas_value([range(4096), []])))
    pmap, _ = pmap.with_claims(b, parse_replicas(replicas_value([[], range(4096)])))
    cluster = _cluster_with(pmap)
    assert cluster.node_for("test", 7, attempt=0, sequence=True) is a
    assert cluster.node_for("test", 7, attempt=1, sequence=True) is b
    assert cluster.node_for("test", 7, attempt=2, sequence=True) is a
    assert cluster.node_for("test", 7, attempt=1, sequence=False) is a  # master policy never moves
    b.closed = True
    assert cluster.node_for("test", 7, attempt=1, sequence=True) is a  # skips a closed node


def test_routing_errors():
    a = N("a")
    pmap, _ = PartitionMap().with_claims(a, parse_replicas(replicas_value([range(100)])))
    cluster = _cluster_with(pmap)
    with pytest.raises(NamespaceNotFound):
        cluster.node_for("nope", 1)
    with pytest.raises(InvalidNode) as info:
        cluster.node_for("test", 200)
    assert info.value.code == -8
