"""Issue #10 acceptance: a partition through the fault proxies splits a 5-node cluster in two,
both sides take writes, and the heal makes one cluster again within 2 quanta.

Real node processes, every link through its own proxy on refproxy, the official client
through the client proxies (use_services_alternate), faults through the fault API only.
"""

import time

import aerospike
import pytest

from cluster.core.clustering import Timing
from cluster.deploy.faults import FaultWindow
from cluster.deploy.local_cluster import LocalCluster
from tests.conftest import cluster_views, wait_until

QUANTUM_S = Timing.of(150, 10, 5).quantum / 1000  # defaults: heartbeat 150 ms x 10, latency-max 5 ms
SIDE_A, SIDE_B = ["n1", "n2"], ["n3", "n4", "n5"]


def each_side_agrees(lc: LocalCluster, sides) -> dict | None:
    seen = cluster_views(lc.nodes)
    for side in sides:
        side_views = {seen[n] for n in side}
        if len(side_views) != 1 or side_views.pop()[1] != str(len(side)):
            return None
    return seen


def one_cluster(lc: LocalCluster) -> dict | None:
    seen = cluster_views(lc.nodes)
    return seen if len(set(seen.values())) == 1 and next(iter(seen.values()))[1] == str(len(seen)) else None


def side_client(lc: LocalCluster, node: str):
    """An official client seeded with one node's client proxy: it learns its side's peers."""
    index = int(node[1:]) - 1
    config = {"hosts": [lc.seeds()[index]], "use_services_alternate": True,
              "policies": {"write": {"total_timeout": 2000}, "read": {"total_timeout": 2000}}}
    return aerospike.client(config).connect()


@pytest.fixture
def windows():
    return []


def test_partition_drop_two_clusters_then_one_within_two_quanta(tmp_path, windows):
    with LocalCluster(nodes=5, rf=2, run_dir=tmp_path, links="proxied") as lc:
        faults = lc.faults
        faults.on_window = lambda w: windows.append((w.kind, w.end is None))
        client = aerospike.client(lc.client_config(seeds=1)).connect()
        for i in range(300):
            client.put(("test", "before", i), {"i": i})
        client.close()

        window = faults.partition([SIDE_A, SIDE_B])  # drop mode: the default
        assert window.detail["mode"] == "drop"
        # the toxics are where they should be: both streams of both directions across the cut only
        proxies = lc.proxy_api().proxies()
        assert {t.type for t in proxies["n1-n3-fabric"].toxics} == {"timeout"}
        assert len(proxies["n4-n2-heartbeat"].toxics) == 2
        assert proxies["n1-n2-fabric"].toxics == [] and proxies["client-n3"].toxics == []

        split = wait_until(lambda: each_side_agrees(lc, [SIDE_A, SIDE_B]), 20, "each side to agree on its own cluster")
        key_a, key_b = split["n1"][0], split["n3"][0]
        assert key_a != key_b, split

        # writes go on on both sides
        for side, node in (("a", "n1"), ("b", "n3")):
            client = side_client(lc, node)
            try:
                assert len(client.get_nodes()) == (2 if side == "a" else 3)
                for i in range(200):
                    client.put(("test", f"side-{side}", i), {"i": i})
                assert client.get(("test", f"side-{side}", 7))[2] == {"i": 7}
            finally:
                client.close()

        healed_at = time.monotonic()
        assert faults.heal() == [window]
        wait_until(lambda: one_cluster(lc), 4 * QUANTUM_S, "one cluster of 5 after the heal", poll=0.02)
        heal_s = time.monotonic() - healed_at
        print(f"heal -> one cluster of 5 in {heal_s:.2f}s (quantum {QUANTUM_S:.2f}s)")
        assert heal_s <= 2 * QUANTUM_S, f"one cluster {heal_s:.2f}s after the heal, bound 2 quanta = {2 * QUANTUM_S}s"

        merged_at = time.monotonic()
        lc.wait_for(lambda: all(not n.info("cluster-stable:size=5").startswith("ERROR") for n in lc.running()),
                    90, "migrations to finish")
        print(f"migrations finished {time.monotonic() - merged_at:.1f}s after the merge")

        client = aerospike.client(lc.client_config(seeds=1)).connect()
        try:
            for side in ("a", "b"):
                assert all(client.get(("test", f"side-{side}", i))[2] == {"i": i} for i in range(200))
        finally:
            client.close()

        assert all(not p.toxics for p in lc.proxy_api().proxies().values()), "heal left a toxic"
        assert window.end is not None and window.end >= window.start
        assert windows == [("partition", True), ("partition", False)]
        assert isinstance(faults.windows[0], FaultWindow) and faults.active() == []


def test_isolate_refuse_closes_the_ports_and_heal_reopens_them(tmp_path):
    with LocalCluster(nodes=3, rf=2, run_dir=tmp_path, links="proxied") as lc:
        window = lc.faults.isolate("n3", mode="refuse")
        proxies = lc.proxy_api().proxies()
        assert not proxies["n1-n3-fabric"].enabled and not proxies["n3-n2-heartbeat"].enabled
        assert proxies["n1-n2-fabric"].enabled and proxies["client-n3"].enabled
        wait_until(lambda: each_side_agrees(lc, [["n1", "n2"], ["n3"]]), 20, "n3 alone, n1+n2 together")
        lc.faults.heal()
        assert all(p.enabled for p in lc.proxy_api().proxies().values())
        wait_until(lambda: one_cluster(lc), 4 * QUANTUM_S, "one cluster of 3 after the heal")
        assert window.end is not None


def test_direct_links_partition_with_iptables_as_root(tmp_path):
    from cluster.deploy import iptables
    from cluster.deploy.faults import FaultError
    why = iptables.unavailable()
    if why:
        pytest.skip(why)
    with LocalCluster(nodes=3, rf=2, run_dir=tmp_path, address_per_node=True) as lc:
        window = lc.faults.partition([["n1"], ["n2", "n3"]])
        chain = lc.faults._undo[window.id][0][1]
        assert iptables.chain_exists(chain)
        wait_until(lambda: each_side_agrees(lc, [["n1"], ["n2", "n3"]]), 20, "n1 alone, n2+n3 together")
        with pytest.raises(FaultError, match="one-way cut needs links='proxied'"):
            lc.faults.cut("n1", "n2")
        lc.faults.heal()
        assert not iptables.chain_exists(chain)
        wait_until(lambda: one_cluster(lc), 4 * QUANTUM_S, "one cluster of 3 after the heal")
