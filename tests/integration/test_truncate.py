"""`truncate` / `truncate-namespace` / `truncate-undo` with the official client against node
processes: the last-update-time cutoff, on every node, across a restart, and not undone by
a node that comes back with truncated copies."""

import time

import aerospike
import pytest
from aerospike import exception as ex

from cluster.deploy.local_cluster import LocalCluster
from tests.conftest import SMALL_DEVICE, wait_until

NS = "test"
FAST = ["network.heartbeat.interval=100", "service.quantum-interval-ms=200"]


def set_info(node, set_name: str) -> dict[str, str]:
    text = node.info(f"sets/{NS}/{set_name}")
    return dict(kv.split("=", 1) for kv in text.split(":")) if text else {}


def present(client, keys) -> list:
    return [k for k in keys if client.exists(k)[1] is not None]


def test_truncate_a_set_up_to_a_cutoff_then_undo(aero, node):
    old = [(NS, "t", i) for i in range(20)]
    for k in old:
        aero.put(k, {"v": 1})
    time.sleep(0.01)
    cutoff = time.time_ns()
    time.sleep(0.01)
    newer = [(NS, "t", i) for i in range(20, 30)]
    for k in newer + old[:5]:  # old[:5] updated after the cutoff: kept
        aero.put(k, {"v": 2})
    other = (NS, "kept", 1)
    aero.put(other, {"v": 1})

    aero.truncate(NS, "t", cutoff)
    assert present(aero, old + newer) == old[:5] + newer
    assert aero.exists(other)[1] is not None
    info = set_info(node, "t")
    assert info["objects"] == "15" and int(info["truncate_lut"]) > 0
    assert len(aero.scan(NS, "t").results()) == 15

    with pytest.raises(ex.AerospikeError):
        aero.truncate(NS, "t", time.time_ns() + 60 * 10**9)  # a cutoff in the future
    assert node.info(f"truncate-undo:namespace={NS};set=t") == "ok"
    assert set_info(node, "t")["truncate_lut"] == "0"
    assert present(aero, old) == old[:5]  # what was dropped stays dropped


def test_truncate_namespace_now_and_write_after(aero):
    keys = [(NS, s, i) for s in ("a", "b") for i in range(10)]
    for k in keys:
        aero.put(k, {"v": 1})
    time.sleep(0.01)  # "now" truncates what was updated before this millisecond (the server's `<`)
    aero.truncate(NS, None, 0)
    assert present(aero, keys) == []
    aero.put(keys[0], {"v": 2})  # written after the cutoff
    assert aero.get(keys[0])[1]["gen"] == 1


def test_truncate_names_a_namespace_as_the_server_checks_it(aero, node):
    """The server stores a truncate without looking its namespace up: an unknown one is
    answered ok (nothing here to drop); none at all is NAMESPACE_NOT_FOUND."""
    assert aero.truncate("no_such_ns", "demo", 0) == 0
    assert node.info("truncate-namespace:namespace=no_such_ns") == "ok"
    with pytest.raises(ex.NamespaceNotFound):
        aero.truncate("", "demo", 0)
    assert node.info("truncate-undo:namespace=no_such_ns") == "ok"


def test_truncation_survives_a_restart(start_node):
    node = start_node(SMALL_DEVICE)
    client = aerospike.client({"hosts": [node.address]}).connect()
    keys = [(NS, "r", i) for i in range(50)]
    for k in keys:
        client.put(k, {"v": 1})
    time.sleep(0.01)
    client.truncate(NS, "r", 0)
    client.close()
    node.restart()  # the device still holds the records: the persisted cutoff keeps them gone
    client = aerospike.client({"hosts": [node.address]}).connect()
    try:
        assert present(client, keys) == []
        client.put(keys[0], {"v": 2})  # after the cutoff: kept, under the persisted cutoff
        info = set_info(node, "r")
        assert info["objects"] == "1" and int(info["truncate_lut"]) > 0
    finally:
        client.close()


def test_truncate_reaches_every_node_and_a_returning_node_brings_nothing_back(tmp_path):
    retry = {"total_timeout": 5000, "max_retries": 10, "sleep_between_retries": 200}
    with LocalCluster(nodes=3, rf=2, run_dir=tmp_path / "c", settings=FAST) as cluster:
        client = aerospike.client({"hosts": [cluster["n1"].address],
                                   "policies": {"write": retry, "read": retry}}).connect()
        try:
            keys = [(NS, "gone", i) for i in range(200)]
            for k in keys:
                client.put(k, {"v": 1})
            cluster.kill("n3")  # keeps its copies on its device, and misses the truncate
            cluster.wait_converged()
            wait_until(lambda: len(client.get_nodes()) == 2, 15, "the client to drop n3")
            client.truncate(NS, "gone", 0)
            for name in ("n1", "n2"):
                wait_until(lambda name=name: set_info(cluster[name], "gone").get("objects", "0") == "0", 10,
                           f"{name} to truncate")
            cluster.restart("n3")
            cluster.wait_converged()
            wait_until(lambda: all(cluster[n].info("cluster-stable:size=3") != "ERROR::unstable-cluster"
                                   for n in ("n1", "n2", "n3")), 60, "migrations to finish", poll=0.5)
            wait_until(lambda: all(set_info(cluster[n], "gone").get("objects", "0") == "0"
                                   for n in ("n1", "n2", "n3")), 15, "n3 to take the truncate")
            assert present(client, keys) == []
            for i in range(1000, 1100):  # new records, so that every node lists the set and its cutoff
                client.put((NS, "gone", i), {"v": 2})
            luts = {set_info(cluster[n], "gone")["truncate_lut"] for n in ("n1", "n2", "n3")}
            assert len(luts) == 1 and int(luts.pop()) > 0  # n3 took the cutoff it missed
        finally:
            client.close()
