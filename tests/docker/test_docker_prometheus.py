"""Debian's Prometheus on the host, with dashboards/prometheus.yml unchanged, scrapes a
Docker cluster through its refcluster-docker job: DockerCluster writes the file_sd targets
(the containers' /metrics on :9145 and the refproxy container's) where that job reads them."""

import shutil

import pytest

from tests.conftest import wait_until
from tests.integration.test_metrics import DASHBOARDS, needs_prometheus, prometheus

pytestmark = pytest.mark.timeout(180)


@needs_prometheus
def test_prometheus_scrapes_the_docker_cluster(docker_engine, node_image, tmp_path):
    from cluster.deploy.docker_cluster import DockerCluster
    (tmp_path / "dashboards").mkdir()
    config = shutil.copy(DASHBOARDS / "prometheus.yml", tmp_path / "dashboards")
    with (DockerCluster(nodes=3, rf=2, image=node_image, run_dir=tmp_path / "run" / "docker", links="proxied") as dc,
          prometheus(config, tmp_path) as api):
        up = wait_until(lambda: len([t for t in api.up_targets() if t["labels"]["job"] == "refcluster-docker"]) == 4
                        and api.up_targets(), 60, "3 nodes and refproxy scraped", poll=1)
        assert sorted(t["scrapeUrl"] for t in up) == sorted(
            [f"http://{dc.nodes[n].ip}:9145/metrics" for n in ("n1", "n2", "n3")] + [f"{dc.toxiproxy_url}/metrics"])
        sizes = wait_until(lambda: api.query('aerospike_node_stats_cluster_size{job="refcluster-docker"}'), 30,
                           "cluster sizes", poll=1)
        assert sorted(s["value"][1] for s in sizes) == ["3", "3", "3"]
