"""Proxied links on the Docker backend: refproxy in its own container on the cluster
network, every node link and client link through it, so latency faults work as on the
local backend."""

import time

import aerospike
import pytest

pytestmark = pytest.mark.timeout(240)


def timed(op, n=20) -> float:
    """The median of n calls, in ms."""
    took = []
    for i in range(n):
        start = time.perf_counter()
        op(i)
        took.append((time.perf_counter() - start) * 1000)
    return sorted(took)[n // 2]


def test_fabric_latency_slows_writes_across_the_link_not_reads(docker_cluster):
    # 2 nodes, RF 2: every write crosses n1 -> n2 (n1's replica writes, or its acks of n2's)
    dc = docker_cluster(nodes=2, rf=2, links="proxied")
    assert dc.nodes["n1"].info("peers-clear-alt").count(dc.proxy_ip) == 1  # n2 advertised behind the proxy
    client = aerospike.client(dc.client_config(seeds=1) | {"policies": {"total_timeout": 3000}}).connect()
    try:
        assert sorted(client.get_nodes()) == sorted(dc.seeds())  # the client proxies, found from one seed
        keys = [("test", "links", i) for i in range(20)]

        def write(i):
            client.put(keys[i], {"i": i})

        def read(i):
            assert client.get(keys[i])[2] == {"i": i}
        write_before, read_before = timed(write), timed(read)
        window = dc.faults.latency("n1", "n2", 100, channels=("fabric",), one_way=True)
        write_during, read_during = timed(write), timed(read)
        dc.faults.end(window)
        assert not dc.proxy_api().proxy("n1-n2-fabric").toxics  # the heal took the toxic away
        write_after = timed(write)
        # the client's answer delayed once per request
        dc.faults.client_latency("n1", 100)
        client_slowest = max(timed(lambda _, key=key: client.get(key), n=1) for key in keys[:10])
        dc.faults.heal()
    finally:
        client.close()
    print(f"write median {write_before:.1f} -> {write_during:.1f} -> {write_after:.1f} ms, "
          f"read {read_before:.1f} -> {read_during:.1f} ms, slowest read via a 100 ms client link {client_slowest:.1f} ms")
    assert write_during - write_before >= 100
    assert read_during - read_before < 20 and write_after - write_before < 20
    assert client_slowest >= 100  # the reads of keys whose master is n1
