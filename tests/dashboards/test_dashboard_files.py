"""The files under dashboards/ hang together: Prometheus accepts its config and looks where
LocalCluster writes targets, and the Grafana dashboard uses only the provisioned datasource.
(That Prometheus scrapes a cluster and answers the dashboard's queries: tests/integration/test_metrics.py.)"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cluster.deploy.cli import DEFAULT_DIR
from cluster.deploy.local_cluster import PROMETHEUS_TARGETS

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"
GRAFANA = DASHBOARDS / "grafana"


def walk(node):
    """Every dict in a JSON document."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="no promtool: Debian's `prometheus` package "
                                                              "is installed as root by tools/system-deps.sh")
def test_prometheus_accepts_the_config():
    out = subprocess.run(["promtool", "check", "config", str(DASHBOARDS / "prometheus.yml")],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_local_job_reads_the_targets_refcluster_up_writes():
    config = yaml.safe_load((DASHBOARDS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    files = [f for sd in jobs["refcluster-local"]["file_sd_configs"] for f in sd["files"]]
    # relative to the config's directory; `refcluster up` runs from the repository root
    expected = (DASHBOARDS.parent / DEFAULT_DIR / PROMETHEUS_TARGETS).parent
    assert [(DASHBOARDS / f).resolve().parent for f in files] == [expected.resolve()]


def test_every_panel_and_annotation_queries_the_provisioned_datasource():
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "refcluster.yml").read_text())
    (source,) = provisioned["datasources"]
    dashboard = json.loads((GRAFANA / "dashboards" / "refcluster.json").read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    queries = [d for d in walk(dashboard) if "expr" in d]
    assert all(panel["targets"] and all(t.get("expr") for t in panel["targets"]) for panel in dashboard["panels"])
    users = [d for d in walk(dashboard) if d.get("datasource", {}).get("type") == "prometheus"]
    assert {d["datasource"]["uid"] for d in users} == {source["uid"]}
    assert all(q["datasource"]["uid"] == source["uid"] for q in queries)
    faults = [a for a in dashboard["annotations"]["list"] if a.get("expr")]
    assert [a["expr"] for a in faults] == ["max by (kind, targets) (refcluster_fault_active)"]

