"""Cluster discovery and tend against scripted fake nodes."""

import pytest

from cluster.client import Client, errors
from cluster.client.cluster import MAX_FAILURES
from tests.conftest import wait_until
from tests.unit.client_fakes import ALL_PARTITIONS, FakeNode, replicas_value

VALIDATE = ["node", "partition-generation", "build"]
REFRESH = ["node", "peers-generation", "partition-generation"]


@pytest.fixture
def fakes():
    started: list[FakeNode] = []

    def make(name, columns=None):
        node = FakeNode(name, columns)
        started.append(node)
        return node

    yield make
    for node in started:
        node.stop()


def pair(fakes, columns_a, columns_b):
    a, b = fakes("BB9000000000001", columns_a), fakes("BB9000000000002", columns_b)
    a.peers, b.peers = [(b.name, b.port)], [(a.name, a.port)]
    return a, b


def client_for(seed, **config) -> Client:
    return Client({"hosts": [seed.address], "tend_interval": 60_000, **config}).connect()


def test_connect_follows_the_official_sequence(fakes):
    seed = fakes("BB9000000000001")
    client = Client({"hosts": [seed.address], "tend_interval": 50}).connect()
    assert seed.info_requests[:3] == [VALIDATE, ["peers-clear-std"], ["partition-generation", "replicas"]]
    wait_until(lambda: len(seed.info_requests) >= 5, 5, "two background tends")
    assert seed.info_requests[3:5] == [REFRESH, REFRESH]  # nothing changed: refresh only
    assert client.is_connected() and client.get_nodes() == [seed.address]
    tend_thread = client._cluster._thread
    assert tend_thread.is_alive()
    client.close()
    assert not client.is_connected() and client.get_nodes() == []
    assert not tend_thread.is_alive()  # close() stopped the tend thread: no tend can follow


def test_cluster_name_is_validated(fakes):
    seed = fakes("BB9000000000001")
    client = client_for(seed, cluster_name="fake")
    assert seed.info_requests[0] == VALIDATE + ["cluster-name"]
    client.close()
    with pytest.raises(errors.ConnectionFailed):
        client_for(seed, cluster_name="other")


def test_no_seed_answers(fakes):
    seed = fakes("BB9000000000001")
    seed.stop()
    with pytest.raises(errors.ConnectionFailed) as info:
        client_for(seed)
    assert info.value.code == -10


def test_peers_are_discovered_once(fakes):
    a, b = pair(fakes, [range(0, 4096, 2)], [range(1, 4096, 2)])
    client = Client({"hosts": [a.address, b.address], "tend_interval": 60_000}).connect()
    assert sorted(client.get_nodes()) == sorted([a.address, b.address])
    assert b.info_requests[0] == VALIDATE
    cluster = client._cluster
    assert cluster.node_for("test", 0).name == a.name and cluster.node_for("test", 1).name == b.name
    assert client.info_all("build") == {a.name: "7.2.0.0", b.name: "7.2.0.0"}
    assert client.info("node", node=b.address) == b.name
    client.close()


def test_unreachable_peer_fails_connect(fakes):
    seed = fakes("BB9000000000001")
    seed.peers = [("BB9000000000009", 1)]
    with pytest.raises(errors.ClientError, match="Peers not reachable: 127.0.0.1:1"):
        client_for(seed)


def test_generation_changes_refetch_peers_and_replicas(fakes):
    a, b = pair(fakes, [ALL_PARTITIONS], [[]])
    client = client_for(a)
    cluster = client._cluster
    assert cluster.node_for("test", 5).name == a.name
    b.replicas, b.partition_generation = replicas_value([ALL_PARTITIONS]), 2
    a.replicas = replicas_value([[]])  # a gave its partitions up without bumping its generation
    cluster.tend()
    assert cluster.node_for("test", 5).name == b.name
    cluster.tend()
    assert a.info_requests[-1] == ["partition-generation", "replicas"]  # a lost slots: its map was refetched
    assert cluster.node_for("test", 5).name == b.name
    c = fakes("BB9000000000003", [[]])
    a.peers.append((c.name, c.port))
    a.peers_generation += 1
    cluster.tend()
    assert len(client.get_nodes()) == 3
    client.close()


def test_a_node_nobody_lists_and_owning_nothing_is_removed(fakes):
    a, b = pair(fakes, [range(2048)], [range(2048, 4096)])
    client = client_for(a)
    assert len(client.get_nodes()) == 2
    b.stop()
    a.peers, a.peers_generation = [], 2
    a.replicas, a.partition_generation = replicas_value([ALL_PARTITIONS]), 2
    client._cluster.tend()
    assert client.get_nodes() == [a.address]
    client.close()


def test_a_node_failing_repeatedly_is_removed(fakes):
    a, b = pair(fakes, [range(2048)], [range(2048, 4096)])
    client = client_for(a)
    b.stop()
    for _ in range(MAX_FAILURES - 1):
        client._cluster.tend()
    assert len(client.get_nodes()) == 2  # still listed by a and owning partitions
    client._cluster.tend()
    assert client.get_nodes() == [a.address]
    with pytest.raises(errors.InvalidNode):
        client.get(("test", "demo", None, bytes([0, 8]) + bytes(18)), policy={"max_retries": 0})  # pid 2048 was b's
    client.close()
