"""A commit-to-device write storm on a 3-node cluster: the disk work stays off the event loop,
so heartbeats keep flowing (the cluster never changes) while every node group-commits."""

import threading
import time

import aerospike
import pytest

from cluster.deploy.local import info_request
from cluster.deploy.local_cluster import LocalCluster, parse_info_kv
from tests.conftest import SMALL_DEVICE

STORM_S = 30
WRITERS = 4
KEYS = 2000  # per writer, rewritten round after round (defrag runs too)


def _writer(seeds, n: int, stop: threading.Event, acked: list[int], failed: list[int]) -> None:
    client = aerospike.client({"hosts": seeds, "policies": {"write": {"total_timeout": 3000}}}).connect()
    try:
        i = 0
        while not stop.is_set():
            try:
                client.put(("test", "storm", f"{n}-{i % KEYS}"), {"i": i, "pad": "p" * 300})
                acked[n] += 1
            except aerospike.exception.AerospikeError:
                failed[n] += 1
            i += 1
    finally:
        client.close()


def _membership(lc: LocalCluster) -> dict[str, tuple[str, str]]:
    """(cluster_key, cluster_size) as each node reports it."""
    seen = {}
    for name, node in lc.nodes.items():
        stats = parse_info_kv(info_request(*node.address, ["statistics"], timeout=10)["statistics"])
        seen[name] = (stats["cluster_key"], stats["cluster_size"])
    return seen


@pytest.mark.slow
def test_commit_to_device_write_storm_keeps_the_cluster(tmp_path):
    settings = [*SMALL_DEVICE, "namespaces.test.storage-engine.commit-to-device=true"]
    with LocalCluster(nodes=3, rf=2, run_dir=tmp_path, settings=settings) as lc:
        before = _membership(lc)
        assert len(set(before.values())) == 1 and next(iter(before.values()))[1] == "3"
        stop = threading.Event()
        acked, failed = [0] * WRITERS, [0] * WRITERS
        writers = [threading.Thread(target=_writer, args=(lc.seeds(), n, stop, acked, failed), daemon=True)
                   for n in range(WRITERS)]
        for w in writers:
            w.start()
        changes = []
        polls = 0
        end = time.monotonic() + STORM_S
        try:
            while time.monotonic() < end:
                now = _membership(lc)
                polls += 1
                if now != before:
                    changes.append(now)
                time.sleep(0.25)
        finally:
            stop.set()
            for w in writers:
                w.join(10)
        commits = {name: int(parse_info_kv(node.info("statistics"))["group_commits"]) for name, node in lc.nodes.items()}
        print(f"storm {STORM_S}s: {sum(acked)} writes acked, {sum(failed)} failed, {polls} membership polls, "
              f"group commits per node {commits}")
        assert not changes, f"the cluster changed during the storm: {changes[:3]}"
        assert sum(acked) > 1000
        assert all(c > 0 for c in commits.values())  # masters and replicas alike committed
