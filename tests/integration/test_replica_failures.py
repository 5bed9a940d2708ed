"""A replica that cannot store a write is not an ack: on real node processes, with the
official client, a write whose replica is out of space is not answered OK."""

import aerospike
from aerospike import exception as ex

from cluster.deploy.local_cluster import LocalCluster

FAST = ["network.heartbeat.interval=100", "service.quantum-interval-ms=200"]
# Neither node ever enters stop-writes: a write fails only where the device has no room left.
NO_STOP_WRITES = [
    "namespaces.test.storage-engine.write-block-size=128K",
    "namespaces.test.storage-engine.stop-writes-used-pct=100",
    "namespaces.test.storage-engine.stop-writes-avail-pct=0",
    "namespaces.test.storage-engine.filesize=16M",
]


RETRY = {"total_timeout": 5000, "max_retries": 10, "sleep_between_retries": 200}  # through re-clustering


def connect(node) -> aerospike.Client:
    return aerospike.client({"hosts": [node.address], "policies": {"read": RETRY}}).connect()


class SmallSecondDevice(LocalCluster):
    """n2's device is a quarter of n1's: it fills up first, while n1 still has room."""

    def _node(self, spec):
        node = super()._node(spec)
        if spec.name == "n2":
            node.settings.append("namespaces.test.storage-engine.filesize=4M")
        return node


def test_a_write_whose_replica_is_out_of_space_is_not_acknowledged(tmp_path):
    with SmallSecondDevice(nodes=2, rf=2, run_dir=tmp_path / "c", settings=[*FAST, *NO_STOP_WRITES]) as cluster:
        client = connect(cluster["n1"])
        value = "v" * 1000
        acked, refused = [], []
        for i in range(12_000):  # n2 is full after ~3500 of these; n1 could take ~14000
            try:
                client.put(("test", "s", i), {"v": value})
                acked.append(i)
            except ex.ServerFull:
                refused.append(i)
                if len(refused) >= 200:
                    break
        assert len(refused) >= 200 and acked, (len(acked), len(refused))

        # Writes n1 masters were stored on n1, n2 could not take them: the client heard 8
        # (n2's OUT_OF_SPACE), not OK, though the master's copy stays (the write is in doubt).
        kept_by_master = [i for i in refused if client.exists(("test", "s", i))[1] is not None]
        assert kept_by_master, "no refused write was stored by its master: the replica path was not exercised"

        # Every acknowledged write has both copies: n2 alone still has all of them.
        client.close()
        cluster.kill("n1")
        cluster.wait_converged()
        client = connect(cluster["n2"])
        missing = [i for i in acked if client.exists(("test", "s", i))[1] is None]
        assert not missing, f"{len(missing)} acknowledged writes lost with n1, e.g. {missing[:5]}"
        client.close()
