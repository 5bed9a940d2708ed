"""Data in a cluster, on real node processes with the official client: synchronous
replication, failover without loss, migrations back to full redundancy, durable deletes,
acting-master hand-off when a node joins, and the migration throttles."""

import threading
import time

import aerospike
import pytest
from aerospike import exception as ex

from cluster.deploy.local import info_request
from cluster.deploy.local_cluster import LocalCluster, parse_info_kv

N_RECORDS = 10_000
FAST = ["network.heartbeat.interval=100", "service.quantum-interval-ms=200"]


def client_for(cluster: LocalCluster) -> aerospike.Client:
    # As a production client would: retry (with a pause) through the moment a cluster
    # re-forms, when nodes answer PARTITION_UNAVAILABLE (11) as the real server does. A
    # retried write is safe: 11 means it was not applied.
    retry = {"total_timeout": 5000, "max_retries": 10, "sleep_between_retries": 200}
    hosts = [cluster[name].address for name in running_names(cluster)]
    return aerospike.client({"hosts": hosts, "policies": {"write": retry, "read": retry}}).connect()


def ns_stats(cluster: LocalCluster, name: str) -> dict[str, str]:
    return parse_info_kv(info_request(*cluster[name].address, ["namespace/test"])["namespace/test"])


def copies_per_partition(cluster: LocalCluster, names: list[str]) -> dict[int, int]:
    """Replicas holding a finished (not immigrating) copy, per partition, from `partition-info`."""
    copies: dict[int, int] = {}
    for name in names:
        text = info_request(*cluster[name].address, ["partition-info"])["partition-info"]
        for line in filter(None, text.split(";")):
            _ns, pid, replica, _wm, version, immigrating, _records = line.split(":")
            if int(replica) >= 0 and immigrating == "0" and version != "0" and "s" not in version.split(".")[-1]:
                copies[int(pid)] = copies.get(int(pid), 0) + 1
    return copies


def wait_migrations_done(cluster: LocalCluster, names: list[str], timeout: float = 90) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        remaining = [int(ns_stats(cluster, n)["migrate_tx_partitions_remaining"])
                     + int(ns_stats(cluster, n)["migrate_rx_partitions_remaining"]) for n in names]
        if not any(remaining):
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"migrations still running after {timeout}s: {remaining}")


def wait_client_sees(client: aerospike.Client, nodes: int, timeout: float = 10) -> None:
    """The client's tend (every second) has caught up with the cluster's membership."""
    deadline = time.monotonic() + timeout
    while len(client.get_nodes()) != nodes and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.2)  # and with the partition map that came with it


def running_names(cluster: LocalCluster) -> list[str]:
    return [name for name, node in cluster.nodes.items() if node.is_running()]


def key(i: int) -> tuple:
    return ("test", "repl", i)


def test_kill_restart_loses_nothing_and_restores_two_copies(tmp_path):
    with LocalCluster(nodes=4, rf=2, run_dir=tmp_path / "c", settings=FAST) as cluster:
        client = client_for(cluster)
        for i in range(N_RECORDS):
            client.put(key(i), {"i": i, "v": "x" * 100})
        deleted = set(range(0, N_RECORDS, 10))
        for i in range(0, N_RECORDS, 10):
            client.remove(key(i))
        # every partition has its two copies before anything fails
        assert set(copies_per_partition(cluster, ["n1", "n2", "n3", "n4"]).values()) == {2}

        cluster.kill("n2")
        cluster.wait_converged()
        for i in range(N_RECORDS):
            if i in deleted:
                with pytest.raises(ex.RecordNotFound):
                    client.get(key(i))
            else:
                assert client.get(key(i))[2]["i"] == i
        wait_migrations_done(cluster, ["n1", "n3", "n4"])
        copies = copies_per_partition(cluster, ["n1", "n3", "n4"])
        assert len(copies) == 4096 and set(copies.values()) == {2}

        # while n2 is away: update some, delete some more; its stale copies must not win
        for i in range(1, N_RECORDS, 10):
            client.put(key(i), {"i": i, "v": "new"})
        for i in range(5, N_RECORDS, 10):
            client.remove(key(i))
            deleted.add(i)
        cluster.restart("n2")
        cluster.wait_converged()
        wait_migrations_done(cluster, ["n1", "n2", "n3", "n4"])
        copies = copies_per_partition(cluster, ["n1", "n2", "n3", "n4"])
        assert len(copies) == 4096 and set(copies.values()) == {2}
        for i in range(N_RECORDS):
            if i in deleted:
                with pytest.raises(ex.RecordNotFound):
                    client.get(key(i))
            else:
                bins = client.get(key(i))[2]
                assert bins["i"] == i and bins["v"] == ("new" if i % 10 == 1 else "x" * 100)
        scanned = sum(1 for _ in client.scan("test", "repl").results())
        assert scanned == N_RECORDS - len(deleted)
        client.close()


def test_node_joins_under_writes_without_losing_or_failing(tmp_path):
    with LocalCluster(nodes=3, rf=2, run_dir=tmp_path / "c", settings=FAST) as cluster:
        client = client_for(cluster)
        for i in range(3000):
            client.put(key(i), {"i": i})
        acked: dict[int, int] = {}
        failures: list[str] = []
        stop = threading.Event()

        def writer():
            n = 0
            while not stop.is_set():
                i = n % 3000
                try:
                    client.put(key(i), {"i": i, "n": n})
                    acked[i] = n
                except ex.AerospikeError as exc:
                    failures.append(f"write {i}: {exc.code}")
                try:
                    client.get(key((n * 7) % 3000))
                except ex.AerospikeError as exc:
                    failures.append(f"read: {exc.code}")
                n += 1

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            time.sleep(1)
            cluster.add()
            wait_migrations_done(cluster, ["n1", "n2", "n3", "n4"])
            time.sleep(1)
        finally:
            stop.set()
            thread.join()
        assert not failures, failures[:10]
        for i, n in acked.items():
            assert client.get(key(i))[2]["n"] == n
        client.close()


def test_migration_throttles(tmp_path):
    """migrate-sleep slows a rebalance measurably; migrate-threads 0 stops it, 1 resumes it.

    Each rebalance adds an empty node, so the data flows from the nodes whose throttles are
    set. Rates are compared, not times: small partitions make a rebalance's time mostly
    per-partition handshakes, which migrate-sleep (per record) does not touch.
    """
    with LocalCluster(nodes=2, rf=2, run_dir=tmp_path / "c", settings=FAST) as cluster:
        client = client_for(cluster)
        for i in range(4000):
            client.put(key(i), {"v": "y" * 200})

        def set_all(context: str, item: str) -> None:
            for name in running_names(cluster):
                extra = ";id=test" if context == "namespace" else ""
                assert cluster[name].info(f"set-config:context={context}{extra};{item}") == "ok"

        def transmitted() -> int:
            return sum(int(ns_stats(cluster, n)["migrate_records_transmitted"]) for n in running_names(cluster))

        set_all("namespace", "migrate-sleep=0")
        before = transmitted()
        cluster.add()
        seconds = wait_migrations_done(cluster, running_names(cluster))
        fast_rate = (transmitted() - before) / seconds

        set_all("namespace", "migrate-sleep=200000")  # 200 ms after each record sent
        cluster.add()
        before = transmitted()
        time.sleep(3)
        slow_rate = (transmitted() - before) / 3
        assert slow_rate * 5 < fast_rate, (fast_rate, slow_rate)

        # paused: nothing moves while migrate-threads is 0 ...
        set_all("service", "migrate-threads=0")
        time.sleep(1)
        before = transmitted()
        time.sleep(2)
        assert transmitted() == before
        names = running_names(cluster)
        assert sum(int(ns_stats(cluster, n)["migrate_tx_partitions_remaining"]) for n in names) > 0
        assert cluster["n1"].info("cluster-stable:size=4").startswith("ERROR")
        # ... and it resumes when raised
        set_all("namespace", "migrate-sleep=0")
        set_all("service", "migrate-threads=1")
        wait_migrations_done(cluster, names)
        assert not cluster["n1"].info("cluster-stable:size=4").startswith("ERROR")
        client.close()


def test_replica_writes_are_accepted_under_stop_writes(tmp_path):
    """n2 in stop-writes refuses client writes it masters (8) but stores n1's replica writes."""
    with LocalCluster(nodes=2, rf=2, run_dir=tmp_path / "c", settings=FAST) as cluster:
        client = client_for(cluster)
        assert cluster["n2"].info("set-config:context=namespace;id=test;stop-writes-used-pct=0") == "ok"
        time.sleep(0.5)  # stop-writes is re-evaluated every housekeeping tick
        assert ns_stats(cluster, "n2")["stop_writes"] == "true"
        written, refused = [], 0
        for i in range(400):
            try:
                client.put(key(i), {"i": i})
                written.append(i)
            except ex.ServerFull:
                refused += 1
        assert written and refused, (len(written), refused)  # each node masters about half
        # the copies n2 took as a replica are the only ones left once n1 is gone
        cluster.kill("n1")
        cluster.wait_converged()
        for i in written:
            assert client.get(key(i))[2] == {"i": i}
        client.close()


def test_writes_resolve_duplicates_before_they_merge(tmp_path):
    """Both nodes' copies diverge (each alone in turn); with migration paused after they meet
    again, an increment must still start from the best copy — it asks the duplicate first."""
    # commit-to-device: the copies a SIGKILLed node had acknowledged are on disk
    settings = [*FAST, "service.migrate-threads=0", "namespaces.test.storage-engine.commit-to-device=true"]
    keys = [key(i) for i in range(40)]
    with LocalCluster(nodes=2, rf=2, run_dir=tmp_path / "c", settings=settings) as cluster:
        client = client_for(cluster)
        for k in keys:
            client.put(k, {"c": 0})
            for _ in range(5):
                client.increment(k, "c", 1)
        cluster.kill("n1")
        cluster.wait_converged()
        wait_client_sees(client, 1)
        for k in keys:  # n2 alone goes on: c = 8, generation 9
            for _ in range(3):
                client.increment(k, "c", 1)
        cluster.kill("n2")
        cluster.restart("n1")  # n1 alone, with its stale copies: c = 5
        client.close()  # it knew only n2, now dead: a client re-seeds rather than wait for that
        client = client_for(cluster)
        assert client.get(keys[0])[2]["c"] == 5
        cluster.restart("n2")  # both again; n2's copies are duplicates, not merged (no migration)
        wait_client_sees(client, 2)
        assert int(ns_stats(cluster, "n1")["migrate_rx_partitions_remaining"]) + int(
            ns_stats(cluster, "n2")["migrate_rx_partitions_remaining"]) > 0
        for k in keys:
            client.increment(k, "c", 1)
        assert [client.get(k)[2]["c"] for k in keys] == [9] * len(keys)
        for name in ("n1", "n2"):
            assert cluster[name].info("set-config:context=service;migrate-threads=1") == "ok"
        wait_migrations_done(cluster, ["n1", "n2"])
        assert [client.get(k)[2]["c"] for k in keys] == [9] * len(keys)
        client.close()


def test_write_times_out_when_a_replica_does_not_answer_and_stays_on_the_master(tmp_path):
    """A paused replica: the client gets TIMEOUT (9) at its deadline; the write is in doubt,
    not undone — once the replica is back (or gone) the master's copy is what is read."""
    with LocalCluster(nodes=2, rf=2, run_dir=tmp_path / "c", settings=FAST) as cluster:
        client = client_for(cluster)
        n1_id = cluster["n1"].info("node")
        masters = {}
        for line in filter(None, cluster["n1"].info("partition-info").split(";")):
            _ns, pid, replica, wm, *_ = line.split(":")
            masters[int(pid)] = wm == n1_id
        k = next(key(i) for i in range(1000)
                 if masters[int.from_bytes(aerospike.calc_digest(*key(i))[:2], "little") & 4095])
        client.put(k, {"v": 1})
        cluster.pause("n2")
        try:
            with pytest.raises(ex.TimeoutError) as caught:
                client.put(k, {"v": 2}, policy={"total_timeout": 300, "max_retries": 0})
            assert caught.value.code == 9
        finally:
            cluster.resume("n2")
        assert client.get(k)[2] == {"v": 2}
        client.close()
