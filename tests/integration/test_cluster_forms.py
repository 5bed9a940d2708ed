"""Real processes: 5 nodes form one cluster, lose one, and take it back (issue: the cluster forms)."""

import base64
import time

import aerospike
import pytest

from cluster.core.partition_balance import partition_table
from cluster.deploy.local_cluster import LocalCluster, parse_info_kv
from cluster.wire.digest import N_PARTITIONS


def _stats(node) -> dict[str, str]:
    return parse_info_kv(node.info("statistics"))


def _masters(lc: LocalCluster) -> dict[int, str]:
    """pid -> id of the node whose `replicas` column 0 claims it."""
    owners: dict[int, str] = {}
    for node in lc.running():
        value = node.info("replicas")  # "test:0,<n>,<b64 col0>,<b64 col1>..."
        col0 = base64.b64decode(value.split(";")[0].split(",")[2])
        for pid in range(N_PARTITIONS):
            if col0[pid >> 3] & (0x80 >> (pid & 7)):
                assert pid not in owners, f"partition {pid} has two masters"
                owners[pid] = node.info("node")
    return owners


@pytest.fixture(scope="module")
def five(tmp_path_factory):
    with LocalCluster(nodes=5, rf=2, run_dir=tmp_path_factory.mktemp("five")) as lc:
        yield lc


def test_five_nodes_form_one_cluster(five):
    key = five.agreed_cluster_key()
    assert key, five.status()
    rows = five.status()
    assert {r["size"] for r in rows} == {"5"} and {r["cluster_key"] for r in rows} == {key}
    assert len({r["principal"] for r in rows}) == 1
    principal = rows[0]["principal"]
    assert principal == max((r["id"] for r in rows), key=lambda i: int(i, 16)), "principal = highest node id"

    # Every partition mastered by exactly one node, the one the balance function names.
    ids = [int(r["id"], 16) for r in rows]
    expected = partition_table(ids)
    owners = _masters(five)
    assert len(owners) == N_PARTITIONS
    assert all(int(owners[pid], 16) == expected[pid][0] for pid in range(N_PARTITIONS))


def test_official_client_sees_all_nodes(five):
    client = aerospike.client({"hosts": five.seeds()[:1]}).connect()
    try:
        assert len(client.get_nodes()) == 5
        for i in range(50):
            client.put(("test", "forms", i), {"i": i})
        assert all(client.get(("test", "forms", i))[2] == {"i": i} for i in range(50))
    finally:
        client.close()


def test_cluster_stable_semantics(five):
    node = five["n1"]
    key = node.info("cluster-stable:size=5;ignore-migrations=true")
    assert key == five.agreed_cluster_key()
    assert node.info("cluster-stable:size=4") == "ERROR::cluster-not-specified-size"
    assert node.info("cluster-stable:size=five") == "ERROR::bad-size"
    assert node.info("cluster-stable:ignore-migrations=maybe") == "ERROR::bad-ignore-migrations"
    assert node.info("cluster-stable:namespace=nope") == "ERROR::unknown-namespace"
    assert node.info("cluster-stable:namespace=test") == key


def test_kill_one_then_restart(five):
    before = five.agreed_cluster_key()
    killed_at = time.monotonic()
    five.kill("n3")
    new_key = five.wait_converged(timeout=20)
    took = time.monotonic() - killed_at
    assert new_key != before
    rows = [r for r in five.status() if r["state"] == "up"]
    assert len(rows) == 4 and {r["size"] for r in rows} == {"4"}
    assert len(_masters(five)) == N_PARTITIONS  # survivors took over every partition
    print(f"4 survivors agreed in {took:.2f}s")

    five.restart("n3")
    assert five.wait_converged(timeout=20) not in (before, new_key)
    assert {r["size"] for r in five.status()} == {"5"}


def _columns(node) -> list[bytes]:
    value = node.info("replicas").split(";")[0]  # "test:<regime>,<n>,<col0>,<col1>..."
    return [base64.b64decode(c) for c in value.split(",")[2:]]


def test_racks_put_the_copies_of_a_partition_on_distinct_racks(tmp_path):
    with LocalCluster(nodes=4, rf=2, racks=2, run_dir=tmp_path,
                      settings=["namespaces.test.storage-engine.type=memory"]) as lc:
        rack_of = {}
        holders: dict[int, list[int]] = {pid: [None, None] for pid in range(N_PARTITIONS)}
        for spec in lc.specs:
            node = lc[spec.name]
            node_id = int(node.info("node"), 16)
            rack_of[node_id] = spec.rack
            for column, bits in enumerate(_columns(node)):
                for pid in range(N_PARTITIONS):
                    if bits[pid >> 3] & (0x80 >> (pid & 7)):
                        assert holders[pid][column] is None, f"partition {pid} column {column} claimed twice"
                        holders[pid][column] = node_id
        assert set(rack_of.values()) == {0, 1}
        for pid, (master, replica) in holders.items():
            assert master is not None and replica is not None, pid
            assert rack_of[master] != rack_of[replica], f"partition {pid}: both copies on rack {rack_of[master]}"
        # masters stay where the plain hash order puts them
        plain = partition_table(rack_of)
        assert all(holders[pid][0] == plain[pid][0] for pid in range(N_PARTITIONS))
