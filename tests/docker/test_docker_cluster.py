"""Issue #12 acceptance: 3 node containers form a cluster, the official client on the host
works through the published ports, and process and network faults (docker kill, docker
pause, iptables inside the containers) do what they do on the local backend, losing no
acknowledged write at RF 2."""

import json
import threading
import time
import urllib.request

import aerospike
import pytest
from aerospike import exception as ex

from cluster.deploy.local_cluster import parse_info_kv
from tests.conftest import cluster_views, wait_until
from tests.integration.test_faults_links import evicted_one

pytestmark = pytest.mark.timeout(300)


def client_for(cluster, timeout_ms=1000):
    config = cluster.client_config(seeds=1) | {
        "policies": {"write": {"total_timeout": timeout_ms}, "read": {"total_timeout": timeout_ms}}}
    return aerospike.client(config).connect()


def sizes(cluster) -> dict[str, str]:
    return {name: size for name, (_key, size) in cluster_views(cluster.nodes).items()}


def test_three_containers_form_a_cluster_and_serve_the_official_client(docker_cluster):
    dc = docker_cluster(nodes=3, rf=2)
    assert {row["size"] for row in dc.status()} == {"3"}
    client = client_for(dc)
    try:
        # seeded with one node, it found the others at their published 127.0.0.1 ports
        assert sorted(client.get_nodes()) == sorted(dc.seeds())
        keys = [("test", "docker", i) for i in range(200)]
        for i, key in enumerate(keys):
            client.put(key, {"i": i, "s": f"v{i}"})
        assert client.get(keys[7])[2] == {"i": 7, "s": "v7"}
        client.put(keys[7], {"i": 70})
        assert client.get(keys[7])[2]["i"] == 70
        client.remove(keys[8])
        with pytest.raises(ex.RecordNotFound):
            client.get(keys[8])
        rows = client.batch_read(keys).batch_records
        assert sum(1 for r in rows if r.result == 0) == 199 and rows[8].result == 2  # 2: not found
        assert rows[9].record[2] == {"i": 9, "s": "v9"}
        scanned = {rec[2]["s"]: rec[2]["i"] for rec in client.scan("test", "docker").results()}
        assert len(scanned) == 199 and "v8" not in scanned and scanned["v7"] == 70
    finally:
        client.close()
    # the nodes really are containers on the cluster's own subnet, running as non-root
    container = dc.docker.containers.get(dc.nodes["n1"].name)
    assert container.attrs["Config"]["User"] == "refnode"
    assert dc.nodes["n1"].ip in dc.nodes["n2"].info("peers-clear-std")
    # Prometheus file_sd targets (dashboards/prometheus.yml, job refcluster-docker): the
    # containers' /metrics, which this host reaches at their addresses
    targets = json.loads((dc.run_dir / "prometheus" / "targets.json").read_text())
    assert [t["targets"] for t in targets] == [[f"{dc.nodes[n].ip}:9145"] for n in ("n1", "n2", "n3")]
    with urllib.request.urlopen(f"http://{targets[0]['targets'][0]}/metrics", timeout=5) as response:
        assert b"aerospike_node_up" in response.read()


class Writer(threading.Thread):
    """Writes distinct keys one after another; remembers which ones were acknowledged."""

    def __init__(self, cluster):
        super().__init__(daemon=True)
        self.client = client_for(cluster, timeout_ms=500)
        self.acked: list[int] = []
        self.failed = 0
        self.halt = threading.Event()

    def run(self):
        i = 0
        while not self.halt.is_set():
            try:
                self.client.put(("test", "acked", i), {"i": i})
                self.acked.append(i)
            except ex.AerospikeError:
                self.failed += 1
            i += 1
            time.sleep(0.005)

    def stop(self):
        self.halt.set()
        self.join(10)
        self.client.close()


def test_kill_pause_partition_cut_and_no_acknowledged_write_lost(docker_cluster):
    dc = docker_cluster(nodes=3, rf=2)
    faults = dc.faults
    writer = Writer(dc)
    writer.start()
    try:
        # docker kill: the survivors re-form
        faults.kill("n3")
        assert dc.nodes["n3"].status() == "exited"
        dc.wait_converged(20)
        assert set(sizes_running(dc).values()) == {"2"}
        faults.restart("n3")
        assert set(sizes(dc).values()) == {"3"}

        # docker pause longer than the heartbeat timeout (1.5 s): evicted; unpause: back
        faults.pause("n2")
        assert dc.nodes["n2"].status() == "paused"
        wait_until(lambda: {sizes_of(dc, "n1"), sizes_of(dc, "n3")} == {"2"}, 20, "n2 evicted while frozen")
        faults.resume("n2")
        dc.wait_converged(20)
        assert set(sizes(dc).values()) == {"3"}

        # iptables partition 2|1: two clusters; heal: one
        faults.partition([["n1", "n2"], ["n3"]])
        wait_until(lambda: sizes(dc) == {"n1": "2", "n2": "2", "n3": "1"}, 20, "two clusters, 2 and 1")
        faults.heal()
        dc.wait_converged(20)
        assert set(sizes(dc).values()) == {"3"}

        # one-way cut n1 -> n2: n2 stops hearing n1, so n1 is the one evicted; heal: back
        faults.cut("n1", "n2")
        assert wait_until(lambda: evicted_one(dc, ("n1", "n2")), 20, "n1 or n2 evicted") == "n1"
        faults.heal()
        dc.wait_converged(20)
        assert not faults.active()
        time.sleep(1)  # writes into the re-formed cluster too
    finally:
        writer.stop()
    assert len(writer.acked) > 200, (len(writer.acked), writer.failed)
    dc.wait_for(lambda: all(parse_info_kv(n.info("statistics"))["migrate_partitions_remaining"] == "0"
                            for n in dc.running()), 60, "migrations to finish")
    reader = client_for(dc, timeout_ms=2000)
    try:
        lost = [i for i in writer.acked if not _exists(reader, ("test", "acked", i))]
    finally:
        reader.close()
    print(f"acknowledged {len(writer.acked)}, failed or in doubt {writer.failed}, lost {len(lost)}")
    assert lost == []


def _exists(client, key) -> bool:
    return client.exists(key)[1] is not None


def sizes_of(cluster, name: str) -> str:
    return parse_info_kv(cluster.nodes[name].info("statistics"))["cluster_size"]


def sizes_running(cluster) -> dict[str, str]:
    return {node.spec.name: sizes_of(cluster, node.spec.name) for node in cluster.running()}


def test_restart_wipe_empties_the_volume(docker_cluster):
    dc = docker_cluster(nodes=2, rf=1)  # one copy: what n2 held is gone with its volume
    client = client_for(dc)
    try:
        for i in range(100):
            client.put(("test", "wipe", i), {"i": i})
        on_n1 = int(parse_info_kv(dc.nodes["n1"].info("namespace/test"))["objects"])
        assert 0 < on_n1 < 100
        dc.faults.restart("n2", wipe=True)

        def scanned():  # until the client's partition map has n2 back (tend interval: 1 s)
            try:
                return [sum(1 for _ in client.scan("test", "wipe").results())]
            except ex.ClusterError:
                return None
        left = wait_until(scanned, 10, "a scan over both nodes", poll=0.5)[0]
    finally:
        client.close()
    assert left == on_n1
