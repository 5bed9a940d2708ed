"""Shared fixtures: real node processes on loopback, the official client against them."""

import time

import pytest

from cluster.deploy.local import LocalNode, free_port_block
from cluster.deploy.local_cluster import parse_info_kv

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


def wait_until(condition, timeout: float, what: str = "the condition", poll: float = 0.05, check: bool = True):
    """Poll `condition()` until it returns something truthy, and return that value.

    At the deadline: an AssertionError naming `what` (with the last value seen), or with
    check=False that last value, for callers that assert on it themselves.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            break
        time.sleep(poll)
    if check and not value:
        raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {value!r})")
    return value


def cluster_views(nodes: dict) -> dict[str, tuple[str, str]]:
    """name -> (cluster key, cluster size) as each node reports it; ("?", "?") for a node
    that does not answer (killed, paused or cut off), so waits on views keep polling."""
    out = {}
    for name, node in nodes.items():
        try:
            stats = parse_info_kv(node.info("statistics"))
        except OSError:
            stats = {}
        out[name] = (stats.get("cluster_key", "?"), stats.get("cluster_size", "?"))
    return out
