"""bench/real_server.py writes the conf asd 8.1 needs; checked for content (no server here)."""

from pathlib import Path

from bench.real_server import RealCluster, aerospike_conf, cluster_kinds


def test_conf_has_what_asd_81_requires_on_loopback(tmp_path: Path):
    conf = aerospike_conf(["network.service.port=3100", "network.heartbeat.interval=150",
                           "network.heartbeat.timeout=10", "namespaces.test.storage-engine.type=memory",
                           "namespaces.test.storage-engine.data-size=64M", "namespaces.test.replication-factor=2"],
                          tmp_path)
    for line in ("cluster-name refcluster", f"work-directory {tmp_path}", "access-address 127.0.0.1",
                 "port 3100", "interval 150", "timeout 10", "replication-factor 2", "nsup-period 120",
                 "data-size 512M", "storage-engine memory {"):
        assert line in conf, line
    assert conf.count("{") == conf.count("}")


def test_cluster_nodes_share_ports_layout_and_seeds(tmp_path: Path):
    rc = RealCluster("/bin/true", nodes=3, rf=2, run_dir=tmp_path, base_port=20000,
                     settings=["namespaces.test.storage-engine.type=device"])
    node = rc._node(rc.specs[1])
    assert node.command() == [str(Path("/bin/true").resolve()), "--foreground", "--config-file",
                              str(node.conf_path)]
    conf = aerospike_conf(node.settings, node.work_dir)
    assert "port 20010" in conf and "port 20011" in conf and "port 20012" in conf
    assert all(f"mesh-seed-address-port 127.0.0.1 {p}" in conf for p in (20002, 20012, 20022))
    assert f"file {node.work_dir / 'test.dat'}" in conf


def test_without_asd_only_ours():
    assert list(cluster_kinds(None)) == ["ours"]
    assert list(cluster_kinds("/bin/true")) == ["ours", "real"]
