"""The aerospike.conf generated for the real server from a DockerCluster's settings: its
content only (no registry serves aerospike/aerospike-server here, so it is never run)."""

from cluster.deploy.docker_aerospike import aerospike_confs


def parse(text: str) -> dict:
    """Aerospike's config syntax -> {stanza: {...}, key: [values, ...]} (repeated keys listed)."""
    root: dict = {}
    stack = [root]
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if words[-1] == "{":
            stack[-1][" ".join(words[:-1])] = child = {}
            stack.append(child)
        elif words == ["}"]:
            stack.pop()
        else:
            stack[-1].setdefault(words[0], []).append(" ".join(words[1:]))
    assert stack == [root], "unbalanced braces"
    return root


def test_generated_conf_carries_the_cluster_settings(docker_engine, tmp_path):
    from cluster.deploy.docker_cluster import DockerCluster
    dc = DockerCluster(nodes=3, rf=2, racks=3, subnet="10.213.200.0/24", run_dir=tmp_path, settings=[
        "network.heartbeat.interval=250", "network.heartbeat.timeout=8", "service.migrate-threads=2",
        "namespaces.test.migrate-sleep=5", "namespaces.test.storage-engine.filesize=67108864"])
    confs = {name: parse(text) for name, text in aerospike_confs(dc).items()}
    assert sorted(confs) == ["n1", "n2", "n3"]
    n2 = confs["n2"]
    assert n2["service"]["migrate-threads"] == ["2"]
    hb = n2["network"]["heartbeat"]
    assert hb["mode"] == ["mesh"] and hb["address"] == ["10.213.200.12"] and hb["port"] == ["3002"]
    assert hb["mesh-seed-address-port"] == [f"10.213.200.{i} 3002" for i in (11, 12, 13)]
    assert hb["interval"] == ["250"] and hb["timeout"] == ["8"]
    assert n2["network"]["fabric"] == {"address": ["10.213.200.12"], "port": ["3001"]}
    service = n2["network"]["service"]
    assert service["access-address"] == ["10.213.200.12"] and service["port"] == ["3000"]
    assert service["alternate-access-address"] == ["127.0.0.1"]
    assert service["alternate-access-port"] == [str(dc.specs[1].port)]
    ns = n2["namespace test"]
    assert ns["replication-factor"] == ["2"] and ns["migrate-sleep"] == ["5"]
    assert [conf["namespace test"]["rack-id"] for conf in confs.values()] == [["0"], ["1"], ["2"]]
    device = ns["storage-engine device"]
    assert device["file"] == ["/opt/aerospike/data/test.dat"] and device["filesize"] == ["64M"]
    assert device["write-block-size"] == ["1M"] and device["stop-writes-used-pct"] == ["70"]
    assert device["post-write-cache"] == ["256M"]


def test_memory_storage(docker_engine, tmp_path):
    from cluster.deploy.docker_cluster import DockerCluster
    dc = DockerCluster(nodes=1, rf=1, subnet="10.213.201.0/24", run_dir=tmp_path,
                       settings=["namespaces.test.storage-engine.type=memory", "namespaces.test.storage-engine.data-size=536870912"])
    engine = parse(aerospike_confs(dc)["n1"])["namespace test"]["storage-engine memory"]
    assert engine["data-size"] == ["512M"]
