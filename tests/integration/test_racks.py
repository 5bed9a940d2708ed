"""Each namespace is balanced with its own rack ids: two namespaces, two rack layouts over the
same four real nodes, every partition's two copies on distinct racks of its namespace."""

import base64

from cluster.deploy.local_cluster import LocalCluster
from cluster.wire.digest import N_PARTITIONS

RACKS = {"test": [0, 1, 0, 1], "other": [0, 0, 1, 1]}  # per node n1..n4


class TwoNamespaces(LocalCluster):
    """`test` as LocalCluster configures it (racks i % 2), `other` on racks i // 2."""

    def _node(self, spec):
        node = super()._node(spec)
        index = self.specs.index(spec)
        node.settings += ["namespaces.test.storage-engine.type=memory",
                          "namespaces.other.storage-engine.type=memory",
                          "namespaces.other.replication-factor=2",
                          f"namespaces.other.rack-id={RACKS['other'][index]}"]
        return node


def holders(lc: LocalCluster, ns: str) -> dict[int, list[int]]:
    """pid -> [master, replica] node indexes, from every node's `replicas` bitmaps."""
    found: dict[int, list[int]] = {pid: [-1, -1] for pid in range(N_PARTITIONS)}
    for index, spec in enumerate(lc.specs):
        entries = dict(e.split(":", 1) for e in lc[spec.name].info("replicas").split(";") if e)
        columns = [base64.b64decode(c) for c in entries[ns].split(",")[2:]]  # "<regime>,<n>,<col0>,..."
        for column, bits in enumerate(columns):
            for pid in range(N_PARTITIONS):
                if bits[pid >> 3] & (0x80 >> (pid & 7)):
                    found[pid][column] = index
    return found


def test_each_namespace_places_copies_by_its_own_racks(tmp_path):
    with TwoNamespaces(nodes=4, rf=2, racks=2, run_dir=tmp_path) as lc:
        for spec in lc.specs:
            index = lc.specs.index(spec)
            assert lc[spec.name].info("rack-ids") == f"test:{RACKS['test'][index]};other:{RACKS['other'][index]}"
        for ns, racks in RACKS.items():
            for pid, (master, replica) in holders(lc, ns).items():
                assert master >= 0 and replica >= 0, (ns, pid)
                assert racks[master] != racks[replica], f"{ns} partition {pid}: both copies on rack {racks[master]}"
