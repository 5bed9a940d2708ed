"""Issue #10 acceptance: a one-way cut and a slow fabric link do what a user would predict.

- cut(src, dst): what src sends to dst (heartbeat and fabric) is lost, dst -> src still
  flows. dst stops hearing src and reports it gone; the principal re-forms the cluster
  without the node that not everyone can hear, which stays out (orphaned) while the cut
  lasts, and the rest keep serving. The heal brings it back.
- latency(n1, n2, 100) on the n1 -> n2 fabric link: a write whose master and replica sit
  on either side of it waits for the replica (the replica write, or its ack, crosses the
  slow link), so it takes >= 100 ms more; a read is answered by the master alone and does
  not slow down; writes whose copies do not span that link do not either.
"""

import base64
import statistics
import time

import aerospike

from cluster.core.clustering import Timing
from cluster.deploy.local_cluster import LocalCluster
from cluster.wire.digest import N_PARTITIONS, compute_digest, partition_id
from tests.conftest import cluster_views, wait_until

QUANTUM_S = Timing.of(150, 10, 5).quantum / 1000


def evicted_one(lc: LocalCluster, pair: tuple[str, str]):
    """The node of `pair` that the others re-formed without, once they agree on it."""
    seen = cluster_views(lc.nodes)
    for out in pair:
        rest = [n for n in seen if n != out]
        keys = {seen[n] for n in rest}
        if len(keys) == 1 and keys.pop()[1] == str(len(rest)) and seen[out][0] != seen[rest[0]][0]:
            return out
    return None


def test_one_way_cut_evicts_the_node_not_heard_and_heal_brings_it_back(tmp_path):
    with LocalCluster(nodes=3, rf=2, run_dir=tmp_path, links="proxied") as lc:
        faults = lc.faults
        window = faults.cut("n1", "n2")
        proxies = lc.proxy_api().proxies()
        assert len(proxies["n1-n2-heartbeat"].toxics) == 2 and len(proxies["n1-n2-fabric"].toxics) == 2
        assert proxies["n2-n1-heartbeat"].toxics == [] and proxies["n2-n1-fabric"].toxics == []

        out = wait_until(lambda: evicted_one(lc, ("n1", "n2")), 15, "the cluster to drop n1 or n2")
        print(f"one-way cut n1->n2: {out} evicted; views {cluster_views(lc.nodes)}")
        assert out == "n1", "n2 cannot hear n1: n1 is the one the cluster cannot keep"
        stay = [n for n in lc.nodes if n != out]
        key = cluster_views(lc.nodes)[stay[0]][0]
        time.sleep(3)  # it stays out while the cut lasts, no flapping
        seen = cluster_views(lc.nodes)
        assert all(seen[n][0] == key for n in stay) and seen[out][0] != key, seen

        client = aerospike.client({"hosts": [lc.seeds()[1]], "use_services_alternate": True}).connect()
        try:
            for i in range(100):
                client.put(("test", "cut", i), {"i": i})
        finally:
            client.close()

        healed = time.monotonic()
        faults.heal()
        wait_until(lambda: len(set(cluster_views(lc.nodes).values())) == 1 and cluster_views(lc.nodes)["n1"][1] == "3", 4 * QUANTUM_S,
                   "one cluster of 3 after the heal", poll=0.02)
        print(f"heal -> one cluster in {time.monotonic() - healed:.2f}s")
        assert window.end is not None


def copies(lc: LocalCluster) -> dict[int, tuple[str, str]]:
    """partition id -> (master node name, replica node name) from every node's `replicas`."""
    by_id = {node.info("node"): name for name, node in lc.nodes.items()}
    cols: dict[int, dict[int, str]] = {0: {}, 1: {}}
    for node in lc.running():
        value = node.info("replicas").split(";")[0].split(",")  # test:regime,n-columns,col0,col1
        for index in (0, 1):
            col = base64.b64decode(value[2 + index])
            for pid in range(N_PARTITIONS):
                if col[pid >> 3] & (0x80 >> (pid & 7)):
                    cols[index][pid] = by_id[node.info("node")]
    return {pid: (cols[0][pid], cols[1][pid]) for pid in range(N_PARTITIONS)}


def keys_on(placement: dict[int, tuple[str, str]], master: str, replica: str, count: int) -> list[int]:
    keys, i = [], 0
    while len(keys) < count:
        if placement[partition_id(compute_digest("lat", i))] == (master, replica):
            keys.append(i)
        i += 1
    return keys


def timed_ms(action, keys) -> float:
    samples = []
    for k in keys:
        t = time.perf_counter()
        action(k)
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def test_slow_fabric_link_slows_writes_across_it_by_the_latency_not_reads(tmp_path):
    with LocalCluster(nodes=3, rf=2, run_dir=tmp_path, links="proxied") as lc:
        client = aerospike.client(lc.client_config() | {
            "policies": {"write": {"total_timeout": 3000}, "read": {"total_timeout": 3000}}}).connect()
        try:
            placement = copies(lc)
            across = keys_on(placement, "n1", "n2", 25)  # replica writes cross n1 -> n2
            beside = keys_on(placement, "n1", "n3", 25)  # copies on n1 and n3: not across the slow link

            def write(k):
                client.put(("test", "lat", k), {"v": time.time()})

            def read(k):
                client.get(("test", "lat", k))

            for k in across + beside:
                write(k)  # warm up connections and create the records
            before = {"write across": timed_ms(write, across), "write beside": timed_ms(write, beside),
                      "read across": timed_ms(read, across)}
            window = lc.faults.latency("n1", "n2", 100, channels=("fabric",), one_way=True)
            assert [t.type for t in lc.proxy_api().proxy("n1-n2-fabric").toxics] == ["latency"]
            assert lc.proxy_api().proxy("n2-n1-fabric").toxics == []
            assert lc.proxy_api().proxy("n1-n2-heartbeat").toxics == []
            during = {"write across": timed_ms(write, across), "write beside": timed_ms(write, beside),
                      "read across": timed_ms(read, across)}
            lc.faults.end(window)
            after = timed_ms(write, across)
        finally:
            client.close()
        rise = {k: during[k] - before[k] for k in before}
        print("median ms before", {k: round(v, 2) for k, v in before.items()},
              "with n1->n2 fabric +100 ms", {k: round(v, 2) for k, v in during.items()},
              f"write across after the fault ended {after:.2f}")
        assert rise["write across"] >= 100, rise
        assert rise["read across"] < 20, rise
        assert rise["write beside"] < 20, rise
        assert after < before["write across"] + 20
