"""Issue #10 acceptance: process faults through the fault API, on a proxied cluster.

- SIGSTOP of one node for longer than the heartbeat timeout: the others evict it; SIGCONT:
  it rejoins.
- kill_rack with rack-aware RF 2: no acknowledged write is lost (every write the client was
  told succeeded is read back, with its value, from the surviving rack and after the rack
  is back).
- restore() undoes a mix of faults; restart(wipe=True) brings a node back with no data.
"""

import threading
import time

import aerospike
import pytest

from cluster.deploy.local_cluster import LocalCluster, parse_info_kv
from tests.conftest import wait_until

HB_TIMEOUT_S = 0.150 * 10  # heartbeat interval x timeout at defaults


def view(node) -> tuple[str, str]:
    stats = parse_info_kv(node.info("statistics"))
    return stats["cluster_key"], stats["cluster_size"]


def test_sigstop_longer_than_heartbeat_timeout_evicts_and_sigcont_rejoins(tmp_path):
    with LocalCluster(nodes=3, rf=2, run_dir=tmp_path, links="proxied") as lc:
        faults = lc.faults
        before = view(lc["n1"])
        paused_at = time.monotonic()
        window = faults.pause("n3")
        wait_until(lambda: view(lc["n1"]) == view(lc["n2"]) and view(lc["n1"])[1] == "2", 15,
                   "n1 and n2 to evict n3", poll=0.02)
        evicted_s = time.monotonic() - paused_at
        assert evicted_s >= HB_TIMEOUT_S * 0.9, f"evicted after {evicted_s:.2f}s: before its heartbeat timed out?"
        assert view(lc["n1"])[0] != before[0]
        time.sleep(max(0.0, 2 * HB_TIMEOUT_S - evicted_s))  # paused well beyond the timeout
        resumed_at = time.monotonic()
        faults.resume("n3")
        wait_until(lambda: len({view(n) for n in lc.nodes.values()}) == 1 and view(lc["n3"])[1] == "3", 20,
                   "n3 to rejoin", poll=0.02)
        print(f"SIGSTOP n3: evicted after {evicted_s:.2f}s (heartbeat timeout {HB_TIMEOUT_S}s); "
              f"rejoined {time.monotonic() - resumed_at:.2f}s after SIGCONT")
        assert window.end is not None and window.end - window.start >= 2 * HB_TIMEOUT_S * 0.9


class Writer:
    """Writes key i = value i in a loop and remembers every write acknowledged to it."""

    def __init__(self, config: dict):
        self.client = aerospike.client(config | {"policies": {"write": {"total_timeout": 1500}}}).connect()
        self.acked: dict[int, int] = {}
        self.failed = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            try:
                self.client.put(("test", "rack", i % 3000), {"v": i})
                self.acked[i % 3000] = i
            except aerospike.exception.AerospikeError:
                self.failed += 1
            i += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)
        self.client.close()


def lost(client, acked: dict[int, int]) -> list[int]:
    missing = []
    for key, value in acked.items():
        try:
            if client.get(("test", "rack", key))[2]["v"] < value:
                missing.append(key)
        except aerospike.exception.RecordNotFound:
            missing.append(key)
    return missing


def test_kill_rack_with_rack_aware_rf2_loses_no_acknowledged_write(tmp_path):
    with LocalCluster(nodes=4, rf=2, racks=2, run_dir=tmp_path, links="proxied") as lc:
        faults = lc.faults
        assert [s.rack for s in lc.specs] == [0, 1, 0, 1]
        with Writer(lc.client_config(seeds=1)) as writer:
            wait_until(lambda: len(writer.acked) >= 1000, 30, "1000 acknowledged writes")
            window = faults.kill_rack(1)
            assert window.targets == ("n2", "n4")
            acked_at_kill = len(writer.acked)
            lc.wait_converged(15)
            wait_until(lambda: len(writer.acked) >= acked_at_kill + 500, 30, "writes to go on after the rack died")
        reader = aerospike.client({"hosts": [lc.seeds()[0]], "use_services_alternate": True}).connect()
        try:
            missing = lost(reader, writer.acked)
            print(f"kill_rack(1): {len(writer.acked)} keys acknowledged, {writer.failed} writes failed "
                  f"(not acknowledged), {len(missing)} acknowledged lost")
            assert not missing, f"acknowledged writes lost: {missing[:10]}"
            faults.restart_rack(1)
            assert window.end is not None
            lc.wait_for(lambda: all(not n.info("cluster-stable:size=4").startswith("ERROR") for n in lc.running()),
                        60, "migrations after the rack came back")
            assert not lost(reader, writer.acked)
        finally:
            reader.close()


def test_restore_undoes_every_fault_and_wipe_loses_the_disk(tmp_path):
    with LocalCluster(nodes=4, rf=2, run_dir=tmp_path, links="proxied") as lc:
        faults = lc.faults
        client = aerospike.client(lc.client_config(seeds=1)).connect()
        for i in range(200):
            client.put(("test", "r", i), {"i": i})
        client.close()
        faults.kill("n4")
        faults.pause("n3")
        faults.latency("n1", "n2", 50)
        faults.partition([["n1"], ["n2"]])
        assert {w.kind for w in faults.active()} == {"kill", "pause", "latency", "partition"}
        ended = faults.restore()
        assert {w.kind for w in ended} == {"kill", "pause", "latency", "partition"} and faults.active() == []
        assert all(n.is_running() for n in lc.nodes.values())
        assert all(not p.toxics and p.enabled for p in lc.proxy_api().proxies().values())
        lc.wait_converged(20)

        assert parse_info_kv(lc["n2"].info("namespace/test"))["objects"] != "0"
        others = [lc[n] for n in ("n1", "n3", "n4")]
        for node in others:  # no migration into n2, so what it holds after the restart is its disk
            assert node.info("set-config:context=service;migrate-threads=0") == "ok"
        faults.restart("n2", wipe=True)
        assert parse_info_kv(lc["n2"].info("namespace/test"))["objects"] == "0", "the disk was not wiped"
        for node in others:
            node.info("set-config:context=service;migrate-threads=1")
        lc.wait_for(lambda: all(not n.info("cluster-stable:size=4").startswith("ERROR") for n in lc.running()),
                    60, "migrations after the wipe")
        assert [w.kind for w in faults.windows][-1] == "restart" and faults.windows[-1].detail == {"wipe": True}


def test_bad_input_is_refused_clearly(tmp_path):
    from cluster.deploy.faults import FaultError
    with LocalCluster(nodes=2, rf=2, run_dir=tmp_path, links="proxied") as lc:
        faults = lc.faults
        with pytest.raises(FaultError, match="no node 'n9'"):
            faults.kill("n9")
        with pytest.raises(FaultError, match="more than one group"):
            faults.partition([["n1", "n2"], ["n2"]])
        with pytest.raises(FaultError, match="at least two groups"):
            faults.partition([["n1", "n2"]])
        with pytest.raises(FaultError, match="two different nodes"):
            faults.cut("n1", "n1")
        with pytest.raises(FaultError, match="mode must be"):
            faults.isolate("n1", mode="blackhole")
        with pytest.raises(FaultError, match="no node in rack 3"):
            faults.kill_rack(3)
        assert faults.windows == []
    with pytest.raises(FaultError, match="cluster is down"):
        faults.partition([["n1"], ["n2"]])
    with LocalCluster(nodes=1, rf=1, run_dir=tmp_path / "direct") as direct:
        with pytest.raises(FaultError, match="network faults need links='proxied' or root"):
            direct.faults.client_latency("n1", 5)
