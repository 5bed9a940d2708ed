"""A cluster whose every link goes through its own named proxy (issue #10 section 2).

The official client and ours, seeded with one client-proxy address, find every node at its
proxy address (peers-clear-alt) and work; node-to-node traffic flows through the n->m
proxies; the harness speaks only the Toxiproxy HTTP API, so a Toxiproxy of the user's
(here a second refproxy standing in for it) takes refproxy's place with one setting.
"""

import re
import time
import urllib.request

import aerospike
import psutil
import pytest

from chaos.proxy.process import ProxyServer
from cluster.client.client import Client
from cluster.deploy.local_cluster import LocalCluster, parse_info_kv
from tests.conftest import wait_until

NAME = re.compile(r"^(client-n\d+|n\d+-n\d+-(heartbeat|fabric))$")


def upstream_bytes(url: str) -> dict[str, int]:
    """proxy name -> bytes it carried client->server (upstream)."""
    text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    out = {}
    for m in re.finditer(r'toxiproxy_proxy_sent_bytes_total\{direction="upstream",[^}]*proxy="([^"]+)"[^}]*\} (\d+)',
                         text):
        out[m.group(1)] = int(m.group(2))
    return out


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    with LocalCluster(nodes=3, rf=2, run_dir=tmp_path_factory.mktemp("proxied"), links="proxied") as lc:
        yield lc


def test_every_link_has_its_own_named_proxy_and_carries_the_traffic(proxied):
    proxies = proxied.proxy_api().proxies()
    names = set(proxies)
    assert len(names) == 3 * 2 * 2 + 3 and all(NAME.match(n) for n in names), names
    assert proxies["n1-n3-fabric"].upstream.endswith(f":{proxied.specs[2].port + 1}")
    assert proxies["n3-n1-heartbeat"].upstream.endswith(f":{proxied.specs[0].port + 2}")
    assert proxies["client-n2"].upstream.endswith(f":{proxied.specs[1].port}")
    carried = wait_until(lambda: (lambda b: b if all(b.get(n, 0) > 0 for n in names if "client" not in n) else None)(
        upstream_bytes(proxied.toxiproxy_url)), 10, "bytes through every node-to-node proxy")
    print("bytes upstream per node proxy:", {n: v for n, v in sorted(carried.items()) if "client" not in n})


def test_official_client_seeded_with_one_proxy_finds_every_node_through_the_proxies(proxied):
    client = aerospike.client(proxied.client_config(seeds=1)).connect()
    try:
        assert sorted(client.get_nodes()) == sorted(proxied.seeds())
        assert not set(client.get_nodes()) & set(proxied.direct_seeds())
        for i in range(100):
            client.put(("test", "official", i), {"i": i})
        assert [client.get(("test", "official", i))[2]["i"] for i in range(100)] == list(range(100))
    finally:
        client.close()
    # without services-alternate the client is told the nodes' own addresses, as from Aerospike
    std = proxied["n1"].info("peers-clear-std")
    assert all(f":{s.port}]" in std for s in proxied.specs[1:]), std


def test_our_client_with_use_services_alternate_works_through_the_proxies(proxied):
    client = Client(proxied.client_config(seeds=1)).connect()
    try:
        assert sorted((n.host, n.port) for n in client._cluster.nodes.values()) == sorted(proxied.seeds())
        for i in range(100):
            client.put(("test", "ours", i), {"i": i})
        assert client.get(("test", "ours", 42))[2] == {"i": 42}
    finally:
        client.close()


def test_client_latency_and_bandwidth_toxics(proxied):
    node = proxied["n2"]
    host, port = proxied.seeds()[1]
    from cluster.deploy.local import info_request

    def info_ms():
        t = time.perf_counter()
        info_request(host, port, ["node"])
        return (time.perf_counter() - t) * 1000

    base = min(info_ms() for _ in range(5))
    window = proxied.faults.client_latency("n2", 80)
    slow = min(info_ms() for _ in range(5))
    proxied.faults.end(window)
    assert slow >= 80 and slow - base >= 75, (base, slow)  # the answer waits 80 ms in the proxy
    assert node.info("node")  # direct, unaffected
    window = proxied.faults.bandwidth("n1", "n2", 10, channels=("fabric",), one_way=True)
    assert [(t.type, t.attributes["rate"]) for t in proxied.proxy_api().proxy("n1-n2-fabric").toxics] == \
        [("bandwidth", 10)]
    proxied.faults.heal()
    assert window.end is not None and not proxied.proxy_api().proxy("n1-n2-fabric").toxics


def test_stop_writes_entered_and_left_per_node(proxied):
    faults = proxied.faults
    client = aerospike.client(proxied.client_config(seeds=1)).connect()
    try:
        window = faults.stop_writes("test")
        wait_until(lambda: all(parse_info_kv(n.info("namespace/test"))["stop_writes"] == "true"
                               for n in proxied.running()), 10, "every node in stop-writes")
        with pytest.raises(aerospike.exception.AerospikeError):
            client.put(("test", "sw", 1), {"i": 1})
        faults.end(window)
        wait_until(lambda: all(parse_info_kv(n.info("namespace/test"))["stop_writes"] == "false"
                               for n in proxied.running()), 10, "every node out of stop-writes")
        client.put(("test", "sw", 1), {"i": 1})
        report = wait_until(lambda: (lambda r: r if len(r) == 3 and all(s[-1][1] for s in r.values()) else None)(
            faults.stop_writes_report()), 5, "the watcher to see every node leave")
        for spans in report.values():
            entered, left = spans[-1]
            assert window.start <= entered <= left <= window.end + 1
        print("stop-writes spans:", {n: [(round(a - window.start, 2), round(b - window.start, 2)) for a, b in s]
                                     for n, s in report.items()})
    finally:
        client.close()


def test_one_setting_points_everything_at_a_users_toxiproxy(tmp_path):
    with ProxyServer(log_path=tmp_path / "users-toxiproxy.log") as theirs:
        api = theirs.client()
        api.create_proxy("their-own", upstream="127.0.0.1:9")
        def refproxies() -> set[int]:
            return {p.pid for p in psutil.Process().children(recursive=True) if "chaos.proxy" in " ".join(p.cmdline())}

        before = refproxies()
        with LocalCluster(nodes=2, rf=2, run_dir=tmp_path / "c", links="proxied", toxiproxy_url=theirs.url) as lc:
            assert lc.proxy_server is None
            assert refproxies() == before, "a refproxy of ours was started beside the user's"
            assert set(api.proxies()) == {"their-own", "client-n1", "client-n2", "n1-n2-heartbeat", "n1-n2-fabric",
                                          "n2-n1-heartbeat", "n2-n1-fabric"}
            lc.faults.partition([["n1"], ["n2"]])
            assert len(api.proxy("n2-n1-fabric").toxics) == 2
            wait_until(lambda: all(parse_info_kv(n.info("statistics"))["cluster_size"] == "1" for n in lc.running()),
                       15, "two clusters of one")
            lc.faults.heal()
            lc.wait_converged(10)
            client = aerospike.client(lc.client_config(seeds=1)).connect()
            client.put(("test", "theirs", 1), {"i": 1})
            client.close()
        assert set(api.proxies()) == {"their-own"}, "our proxies must go, theirs stay"
