"""Which statistics the node's /metrics exposes (cluster/node/metrics.py), without a node."""

from cluster.node.metrics import NodeCollector


def exposed(stats: dict) -> dict[str, float]:
    families = NodeCollector._families("aerospike_node_stats_", stats, {"service": "127.0.0.1:3000"})
    return {family.name: family.samples[0].value for family in families}


def test_numbers_and_booleans_are_exposed_text_is_not():
    assert exposed({"objects": 12, "uptime": "7", "ratio": "0.5", "cluster_is_member": "true",
                    "storage-engine": "device"}) == {
        "aerospike_node_stats_objects": 12.0, "aerospike_node_stats_uptime": 7.0,
        "aerospike_node_stats_ratio": 0.5, "aerospike_node_stats_cluster_is_member": 1.0}


def test_hex_ids_stay_out_even_when_they_read_as_numbers():
    # a cluster key of digits only, or of digits and one E (float() reads 12E4 as 120000.0)
    assert exposed({"cluster_key": "1234567890123456", "cluster_principal": "12E4", "cluster_size": "3"}) == {
        "aerospike_node_stats_cluster_size": 3.0}
