"""Data in a cluster, on real node processes with the official client: synchronous
replication, failover without loss, migrations back to full redundancy, durable deletes,
acting-master hand-off when a node joins, and the migration throttles."""

import threading
import time
from collections import Counter
from itertools import pairwise

import aerospike
import pytest
from aerospike import exception as ex

from cluster.deploy.local import info_request
from cluster.deploy.local_cluster import LocalCluster, parse_info_kv
from tests.conftest import wait_until

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


def wait_client_sees(client: aerospike.Client, nodes: int, keys: list, timeout: float = 15) -> None:
    """The client's tend has caught up with the cluster: it lists `nodes` nodes, and its
    partition map routes every one of `keys` to a node that answers, without a retry."""
    def caught_up() -> bool:
        if len(client.get_nodes()) != nodes:
            return False
        try:
            for k in keys:
                client.exists(k, policy={"max_retries": 0, "total_timeout": 1000})
        except ex.AerospikeError:
            return False
        return True

    wait_until(caught_up, timeout, f"the client to route to {nodes} node(s)", poll=0.1)


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
            client.remove(key(i), policy={"durable_delete": True})
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
            client.remove(key(i), policy={"durable_delete": True})
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


TRANSIENT = {9: "TIMEOUT", 11: "PARTITION_UNAVAILABLE"}  # what a cluster change may answer, briefly
RETRY_FOR = 10.0  # seconds an operation may keep getting transient errors (the old client policy: ~5 s)


def migration_sample(cluster: LocalCluster) -> tuple[int, int]:
    """(partitions still to migrate, records transmitted so far), summed over the nodes answering."""
    pending = transmitted = 0
    for node in list(cluster.nodes.values()):
        try:
            reply = info_request(*node.address, ["statistics", "namespace/test"], timeout=1.0)
        except OSError:
            continue  # the joining node before it listens
        pending += int(parse_info_kv(reply["statistics"]).get("migrate_partitions_remaining", 0))
        transmitted += int(parse_info_kv(reply["namespace/test"]).get("migrate_records_transmitted", 0))
    return pending, transmitted


def test_node_joins_under_writes_without_losing_or_failing(tmp_path, record_property):
    """A 4th node joins 3 while a writer updates and reads records. The writer's client does
    not retry: every transient error is seen, counted by result code and reported, and only
    TIMEOUT (9) and PARTITION_UNAVAILABLE (11) are allowed; the writer retries those itself,
    and every operation succeeds within RETRY_FOR seconds. Node statistics sampled during the run
    prove the writes were acknowledged while partitions were still migrating."""
    with LocalCluster(nodes=3, rf=2, run_dir=tmp_path / "c", settings=FAST) as cluster:
        client = client_for(cluster)
        for i in range(3000):
            client.put(key(i), {"i": i})
        wait_migrations_done(cluster, ["n1", "n2", "n3"])  # the pending migrations counted below are the join's
        once = {"total_timeout": 2000, "max_retries": 0}
        writer_client = aerospike.client({"hosts": [cluster[n].address for n in running_names(cluster)],
                                          "policies": {"write": once, "read": once}}).connect()
        acked: dict[int, int] = {}
        writes = [0]  # acknowledged writes so far
        transient: Counter = Counter()  # (op, result code) -> errors seen
        failures: list[str] = []  # non-transient codes, or retries exhausted
        samples: list[tuple[int, int, int, bool]] = []  # (partitions pending, records sent, writes, joining)
        stop, joining = threading.Event(), threading.Event()

        def persist(op: str, call, *args) -> bool:
            give_up = time.monotonic() + RETRY_FOR
            attempts = 0
            while True:
                attempts += 1
                try:
                    call(*args)
                    return True
                except ex.AerospikeError as exc:
                    transient[(op, exc.code)] += 1
                    if exc.code not in TRANSIENT or time.monotonic() > give_up:
                        names = {f"{h}:{p}": name for name, (h, p) in
                                 ((name, node.address) for name, node in list(cluster.nodes.items()))}
                        where = next((name for addr, name in names.items() if addr in str(exc.msg)), "?")
                        failures.append(f"{op} {args[0]} on {where} (attempt {attempts}): {exc.code} {exc.msg}; "
                                        f"migrations pending {samples[-1][0] if samples else '?'}")
                        return False
                stop.wait(0.05)  # back off a little, as the client's sleep_between_retries would

        def writer():
            n = 0
            while not stop.is_set() and not failures:
                i = n % 3000
                if persist("write", writer_client.put, key(i), {"i": i, "n": n}):
                    acked[i] = n
                    writes[0] += 1
                persist("read", writer_client.get, key((n * 7) % 3000))
                n += 1

        def sampler():
            while not stop.is_set():
                joined = joining.is_set()
                samples.append((*migration_sample(cluster), writes[0], joined))
                stop.wait(0.05)

        threads = [threading.Thread(target=writer), threading.Thread(target=sampler)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: writes[0] >= 200 or failures, 30, "writes flowing before the join")
            joining.set()
            cluster.add()
            wait_migrations_done(cluster, ["n1", "n2", "n3", "n4"])
            after = writes[0]
            wait_until(lambda: writes[0] >= after + 200 or failures, 30, "writes flowing after the migrations")
        finally:
            stop.set()
            for t in threads:
                t.join()
        report = (f"{writes[0]} writes acknowledged ({len(acked)} keys); transient errors by (op, code): "
                  f"{dict(sorted(transient.items())) or 'none'}")
        print(report)
        record_property("transient_errors", report)
        assert not failures, (failures[:10], report)
        assert {code for _op, code in transient} <= set(TRANSIENT), report

        # writes were acknowledged while the join's migrations were pending, and data moved meanwhile
        during = [(b[2] - a[2], b[1] - a[1]) for a, b in pairwise(samples) if a[3] and a[0] > 0 and b[0] > 0]
        writes_during, moved_during = sum(w for w, _ in during), sum(m for _, m in during)
        print(f"{len(during)} sample intervals with migrations pending: {writes_during} writes acked, "
              f"{moved_during} records migrated")
        assert writes_during >= 20 and moved_during > 0, (writes_during, moved_during, samples[:: max(1, len(samples) // 40)])
        assert samples[-1][0] == 0  # and the migrations finished while the writer still ran

        for i, n in acked.items():
            assert client.get(key(i))[2]["n"] == n
        writer_client.close()
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
        # stop-writes is re-evaluated every housekeeping tick
        wait_until(lambda: ns_stats(cluster, "n2")["stop_writes"] == "true", 10, "n2 in stop-writes")
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
        wait_client_sees(client, 1, keys)
        for k in keys:  # n2 alone goes on: c = 8, generation 9
            for _ in range(3):
                client.increment(k, "c", 1)
        cluster.kill("n2")
        cluster.restart("n1")  # n1 alone, with its stale copies: c = 5
        client.close()  # it knew only n2, now dead: a client re-seeds rather than wait for that
        client = client_for(cluster)
        assert client.get(keys[0])[2]["c"] == 5
        cluster.restart("n2")  # both again; n2's copies are duplicates, not merged (no migration)
        wait_client_sees(client, 2, keys)
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
