"""Metrics and dashboards (issue #13).

One node's /metrics: the exporter's names and labels, counters from 0, latency histograms,
fault windows. Then a real Prometheus, Debian's package as installed by tools/system-deps.sh,
runs dashboards/prometheus.yml unchanged against a 3-node local cluster with proxied links,
scrapes every node and refproxy, and answers every PromQL expression of the Grafana
dashboard (panels and the fault annotation) with data while a load runs and after a fault
window. Grafana itself is not installable here."""

import contextlib
import json
import math
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cluster.client import errors
from cluster.client.client import Client
from cluster.deploy.local import _die_with_parent, free_port_block
from cluster.deploy.local_cluster import METRICS_OFFSET, LocalCluster
from tests.conftest import SMALL_DEVICE, wait_until

PROMETHEUS = shutil.which("prometheus")
DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"
DASHBOARD = DASHBOARDS / "grafana" / "dashboards" / "refcluster.json"
# what Grafana puts for $__rate_interval: max(4 x the 1 s scrape interval, step + scrape)
GRAFANA_VARIABLES = {"$__rate_interval": "10s"}

needs_prometheus = pytest.mark.skipif(PROMETHEUS is None, reason="no prometheus binary: Debian's `prometheus` "
                                      "package is installed as root by tools/system-deps.sh")


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    """(sample name, labels) -> value, parsed by prometheus_client's own parser."""
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_node_metrics_are_named_like_the_exporter_and_read_at_scrape_time(start_node, tmp_path):
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps({"windows": [
        {"kind": "pause", "targets": ["n3"], "start": 1.0, "end": None, "id": 1},
        {"kind": "kill", "targets": ["n1", "n2"], "start": 1.0, "end": 2.0, "id": 2}]}))
    port = free_port_block(METRICS_OFFSET + 1)
    node = start_node([*SMALL_DEVICE, f"network.metrics.port={port + METRICS_OFFSET}",
                       f"network.metrics.faults-file={faults}"], port=port)
    url = f"http://127.0.0.1:{port + METRICS_OFFSET}/metrics"
    client = Client({"hosts": [node.address]}).connect()
    try:
        for i in range(20):
            client.put(("test", "m", i), {"i": i})
        for i in range(25):  # 5 of them not found
            try:
                client.get(("test", "m", i))
            except errors.RecordNotFound:
                pass
    finally:
        client.close()
    m = scrape(url)
    node_labels = frozenset({"cluster_name": "refcluster", "service": f"127.0.0.1:{port}"}.items())
    ns = node_labels | {("ns", "test")}
    assert m["aerospike_node_up", node_labels] == 1
    assert m["aerospike_node_stats_cluster_size", node_labels] == 1
    assert m["aerospike_node_stats_cluster_is_member", node_labels] == 1  # a boolean as 1/0
    assert not any(name == "aerospike_node_stats_cluster_key" for name, _ in m)  # hex text is left out
    assert m["aerospike_namespace_client_write_success", ns] == 20
    assert m["aerospike_namespace_client_read_success", ns] == 20
    assert m["aerospike_namespace_client_read_not_found", ns] == 5
    assert m["aerospike_namespace_client_write_error", ns] == 0  # never happened, still reported
    assert m["aerospike_namespace_stop_writes", ns] == 0
    assert m["aerospike_namespace_objects", ns] == 20
    assert m["aerospike_namespace_device_used_bytes", ns] > 0
    for kind, count in (("write", 20), ("read", 25)):
        assert m[f"aerospike_latencies_{kind}_ms_count", ns] == count
        buckets = sorted((float(dict(labels)["le"]), v) for (name, labels), v in m.items()
                         if name == f"aerospike_latencies_{kind}_ms_bucket")
        assert [le for le, _ in buckets][:4] == [0.125, 0.25, 0.5, 1.0] and buckets[-1] == (math.inf, count)
        assert all(a[1] <= b[1] for a, b in pairwise(buckets))  # cumulative
    faults_seen = {dict(labels)["kind"]: (dict(labels)["targets"], v) for (name, labels), v in m.items()
                   if name == "refcluster_fault_active"}
    assert faults_seen == {"pause": ("n3", 1.0), "kill": ("n1,n2", 0.0)}
    # read when scraped: a window ending shows at the next scrape
    faults.write_text(json.dumps({"windows": [{"kind": "pause", "targets": ["n3"], "start": 1.0, "end": 3.0, "id": 1}]}))
    assert [v for (name, _), v in scrape(url).items() if name == "refcluster_fault_active"] == [0.0]


def dashboard_queries(node) -> list[str]:
    """Every `expr` anywhere in the dashboard JSON: panel targets and annotations."""
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [q for value in node.values() for q in dashboard_queries(value)]
    if isinstance(node, list):
        return [q for value in node for q in dashboard_queries(value)]
    return []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrometheusApi:
    def __init__(self, url: str):
        self.url = url

    def get(self, path: str, **params) -> dict:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=5) as reply:
            body = json.load(reply)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self.get("/api/v1/query", query=expr)["result"]

    def up_targets(self) -> list[dict]:
        try:
            return [t for t in self.get("/api/v1/targets")["activeTargets"] if t["health"] == "up"]
        except OSError:
            return []  # not listening yet


@contextlib.contextmanager
def prometheus(config: Path, tmp_path: Path) -> Iterator[PrometheusApi]:
    """Prometheus running `config` on a free port, its TSDB and prometheus.log in tmp_path."""
    port = free_port()
    with open(tmp_path / "prometheus.log", "wb") as log:
        proc = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    try:
        yield PrometheusApi(f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def stack(tmp_path):
    """The repo layout Prometheus expects, in tmp_path: dashboards/prometheus.yml reads
    ../run/cluster/prometheus/*.json, where LocalCluster writes its targets."""
    (tmp_path / "dashboards").mkdir()
    config = shutil.copy(DASHBOARDS / "prometheus.yml", tmp_path / "dashboards")
    with (LocalCluster(nodes=3, rf=2, run_dir=tmp_path / "run" / "cluster", links="proxied") as cluster,
          prometheus(config, tmp_path) as api):
        yield cluster, api, tmp_path / "prometheus.log"


def run_load(cluster: LocalCluster, stop: threading.Event) -> None:
    client = Client(cluster.client_config()).connect()
    try:
        i = 0
        while not stop.is_set():
            client.put(("test", "metrics", i % 500), {"i": i})
            client.get(("test", "metrics", i % 500))
            try:
                client.get(("test", "metrics", f"missing-{i}"))
            except errors.RecordNotFound:
                pass
            i += 1
            time.sleep(0.002)  # a light load: the cores are shared
    finally:
        client.close()


@needs_prometheus
@pytest.mark.timeout(150)
def test_prometheus_scrapes_every_node_and_every_dashboard_query_returns_data(stack):
    cluster, prom, log = stack
    wanted = {"n1", "n2", "n3", "refproxy"}
    up = wait_until(lambda: (lambda ts: ts if {t["labels"].get("node", t["labels"]["role"]) for t in ts} == wanted
                             else None)(prom.up_targets()), 30, f"Prometheus to scrape {sorted(wanted)}")
    print("scraped:", sorted(t["scrapeUrl"] for t in up))

    stop = threading.Event()
    load = threading.Thread(target=run_load, args=(cluster, stop), daemon=True)
    load.start()
    try:
        time.sleep(3)
        window = cluster.faults.latency("n1", "n2", 20)  # a fault window for the annotation
        time.sleep(3)  # three scrapes while it is in force
        cluster.faults.heal()
        assert window.end is not None
        time.sleep(3)  # rates over the load need a few scrapes

        # every node reports the cluster it is in
        sizes = {r["metric"]["node"]: float(r["value"][1]) for r in prom.query("aerospike_node_stats_cluster_size")}
        assert sizes == {"n1": 3.0, "n2": 3.0, "n3": 3.0}
        # every node reported the window while in force, and reports 0 now that it ended
        seen = {r["metric"]["node"]: float(r["value"][1])
                for r in prom.query('max_over_time(refcluster_fault_active{kind="latency"}[1m])')}
        assert seen == {"n1": 1.0, "n2": 1.0, "n3": 1.0}
        assert {float(r["value"][1]) for r in prom.query('refcluster_fault_active{kind="latency"}')} == {0.0}

        queries = dashboard_queries(json.loads(DASHBOARD.read_text()))
        assert len(queries) >= 15, queries
        empty = []
        for expr in queries:
            for name, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(name, value)
            assert "$" not in expr, f"a Grafana variable the test does not set: {expr}"
            values = [float(r["value"][1]) for r in prom.query(expr)]
            if not any(math.isfinite(v) for v in values):
                empty.append(f"{expr} -> {values}")
            print(f"{expr} -> {values[:4]}{' ...' if len(values) > 4 else ''}")
        assert not empty, "dashboard queries without data:\n" + "\n".join(empty) + f"\n(Prometheus log: {log})"
        assert max(float(r["value"][1]) for r in prom.query(
            'histogram_quantile(0.99, sum by (le) (rate(aerospike_latencies_write_ms_bucket[10s])))')) > 0
    finally:
        stop.set()
        load.join(10)
