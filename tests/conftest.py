"""Shared fixtures: real node processes on loopback, the official client against them."""

import pytest

from cluster.deploy.local import LocalNode, free_port_block

SMALL_DEVICE = [
    "namespaces.test.storage-engine.filesize=64M",
    "namespaces.test.storage-engine.write-block-size=1M",
]


@pytest.fixture
def start_node(tmp_path):
    """Factory: start_node(settings=[...], name="n1") -> a running LocalNode, stopped at teardown."""
    started: list[LocalNode] = []

    def factory(settings=(), name="node", port=None) -> LocalNode:
        node = LocalNode(tmp_path / name, port or free_port_block(3), list(settings))
        started.append(node)
        return node.start()

    yield factory
    for node in started:
        node.resume()
        node.kill()


@pytest.fixture
def node(start_node) -> LocalNode:
    return start_node(SMALL_DEVICE)


@pytest.fixture
def aero(node):
    aerospike = pytest.importorskip("aerospike")
    client = aerospike.client({"hosts": [node.address], "policies": {"total_timeout": 5000}}).connect()
    yield client
    client.close()
