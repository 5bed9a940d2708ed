"""A cluster of reference nodes as local processes on loopback (the embedded default).

Node i (1-based, named n1, n2, ...) listens on base+10(i-1) for clients, +1 for fabric and
+2 for heartbeat; every node is seeded with the heartbeat ports of the initial nodes. Each
node has its own directory under the run directory with its data file and log. All nodes
listen on 127.0.0.1, or with `address_per_node` node i on 127.0.0.(i+1), so that a firewall
can tell the nodes' traffic apart (cluster.deploy.iptables).

With `links="proxied"` every node-to-node heartbeat and fabric link, in each direction,
and every client-to-node link goes through its own named proxy (cluster.deploy.links) on
our `refproxy`, started with the cluster, or on the Toxiproxy at `toxiproxy_url`.

    with LocalCluster(nodes=3, rf=2) as cluster:
        client = aerospike.client(cluster.client_config()).connect()
"""

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cluster.deploy.local import LocalNode, free_port_block

LINKS = ("direct", "proxied")

PORT_STRIDE = 10
METRICS_OFFSET = 3  # node i's Prometheus /metrics on base+10(i-1)+3, inside its free port block
PROMETHEUS_TARGETS = "prometheus/targets.json"  # file_sd targets: dashboards/prometheus.yml reads them
STATE_FILE = "cluster.json"  # lets separate `refcluster` invocations find the nodes
MAX_NODES = 32


@dataclass
class NodeSpec:
    name: str
    port: int
    rack: int
    pid: int | None = None


def parse_info_kv(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(";") if "=" in item)


class LocalCluster:
    def __init__(self, nodes: int = 3, rf: int = 2, racks: int = 1, run_dir: str | Path | None = None,
                 settings: list[str] = (), base_port: int | None = None, detached: bool = False,
                 address_per_node: bool = False, links: str = "direct", toxiproxy_url: str | None = None):
        if links not in LINKS:
            raise ValueError(f"links must be one of {', '.join(LINKS)}, not {links!r}")
        if toxiproxy_url and links != "proxied":
            raise ValueError("toxiproxy_url is for links='proxied'")
        if not 1 <= nodes <= MAX_NODES:
            raise ValueError(f"nodes must be 1..{MAX_NODES}")
        if racks < 1:
            raise ValueError("racks must be >= 1")
        self._tmp = None if run_dir else tempfile.mkdtemp(prefix="refcluster-")
        self.run_dir = Path(run_dir or self._tmp)
        self.rf = rf
        self.racks = racks
        self.settings = list(settings)
        self.detached = detached
        self.address_per_node = address_per_node
        self.base_port = base_port or free_port_block(PORT_STRIDE * MAX_NODES)
        self.specs = [NodeSpec(f"n{i + 1}", self.base_port + PORT_STRIDE * i, i % racks) for i in range(nodes)]
        self.seed_ports = [spec.port + 2 for spec in self.specs]
        self.nodes: dict[str, LocalNode] = {}
        self._faults = None
        self.links = links
        self.toxiproxy_url = toxiproxy_url  # the proxies' API (ours once started, unless given)
        self.own_proxy_server = links == "proxied" and not toxiproxy_url
        self.proxy_server = None  # our refproxy, when this process started it
        self.proxy_server_pid: int | None = None
        self.proxy_ports: dict[str, int] = {}  # proxy name -> its listen port on 127.0.0.1

    @property
    def faults(self):
        """This cluster's fault API (cluster.deploy.faults.Faults), made on first use."""
        if self._faults is None:
            from cluster.deploy.faults import Faults
            self._faults = Faults(self)
        return self._faults

    # -- node construction ------------------------------------------------------------

    def host(self, port: int) -> str:
        """The address of the node whose client port (or fabric, heartbeat port) is `port`."""
        return f"127.0.0.{2 + (port - self.base_port) // PORT_STRIDE}" if self.address_per_node else "127.0.0.1"

    def _node(self, spec: NodeSpec) -> LocalNode:
        seeds = ",".join(f"{self.host(p)}:{p}" for p in self.seed_ports)
        host = self.host(spec.port)
        settings = [
            f"network.fabric.address={host}",
            f"network.heartbeat.address={host}",
            f"network.fabric.port={spec.port + 1}",
            f"network.heartbeat.port={spec.port + 2}",
            f"network.heartbeat.mesh-seed-address-port={seeds}",
            f"namespaces.test.replication-factor={self.rf}",
            f"namespaces.test.rack-id={spec.rack}",
            f"network.metrics.address={host}",
            f"network.metrics.port={spec.port + METRICS_OFFSET}",
            f"network.metrics.faults-file={self.run_dir.resolve() / 'faults.json'}",
        ]
        if self.links == "proxied":
            from cluster.deploy.links import Topology
            settings += Topology.node_settings(self, spec)
        settings += self.settings  # the user's overrides last
        return LocalNode(self.run_dir / spec.name, spec.port, settings, host=host, detached=self.detached,
                         pid=spec.pid)

    def __getitem__(self, name: str) -> LocalNode:
        return self.nodes[name]

    def seeds(self) -> list[tuple[str, int]]:
        """Where clients reach the nodes: the client proxies when links are proxied."""
        if self.links == "proxied":
            from cluster.deploy.links import PROXY_HOST, client_link_name
            return [(PROXY_HOST, self.proxy_ports[client_link_name(spec.name)]) for spec in self.specs]
        return self.direct_seeds()

    def direct_seeds(self) -> list[tuple[str, int]]:
        """The nodes' own service endpoints (bypassing any proxy)."""
        return [(self.host(spec.port), spec.port) for spec in self.specs]

    def client_config(self, seeds: int | None = None) -> dict:
        """An official-client config for this cluster (the first `seeds` seeds, default all):
        with proxied links it asks for the alternate (proxy) addresses of the peers."""
        return {"hosts": self.seeds()[:seeds], "use_services_alternate": self.links == "proxied"}

    # -- proxies ------------------------------------------------------------------------

    def proxy_api(self):
        from chaos.proxy.api import ToxiproxyClient
        if not self.toxiproxy_url:
            raise RuntimeError("no proxy server: the cluster's links are not proxied, or it is not started")
        return ToxiproxyClient(self.toxiproxy_url)

    def _start_links(self, specs: list[NodeSpec]) -> None:
        if self.links != "proxied":
            return
        from chaos.proxy.process import ProxyServer
        from cluster.deploy.links import DetachedProxyServer, Topology
        if self.own_proxy_server and self.toxiproxy_url is None:
            kind = DetachedProxyServer if self.detached else ProxyServer
            self.proxy_server = kind(log_path=self.run_dir / "refproxy.log").start()
            self.proxy_server_pid = self.proxy_server.proc.pid
            self.toxiproxy_url = self.proxy_server.url
        self.proxy_ports.update(Topology(self.proxy_api()).create(self, specs))

    def _stop_links(self) -> None:
        if self.links != "proxied" or not self.toxiproxy_url:
            return
        from cluster.deploy.links import Topology, stop_pid
        if self.own_proxy_server:
            if self.proxy_server is not None:
                self.proxy_server.stop()
            else:
                stop_pid(self.proxy_server_pid)
        else:  # someone else's Toxiproxy: take away only our proxies
            try:
                Topology(self.proxy_api()).remove(list(self.proxy_ports))
            except OSError:
                pass
        self.proxy_ports = {}

    # -- lifecycle --------------------------------------------------------------------

    def start(self, wait: float = 30.0) -> "LocalCluster":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._start_links(self.specs)
        for spec in self.specs:
            self.nodes[spec.name] = self._node(spec).start(wait=0)
        for node in self.nodes.values():
            node.wait_ready(wait)
        self.wait_converged(wait)
        self.save()
        return self

    def add(self, rack: int | None = None, wait: float = 30.0) -> LocalNode:
        index = len(self.specs)
        if index >= MAX_NODES:
            raise ValueError(f"at most {MAX_NODES} nodes")
        spec = NodeSpec(f"n{index + 1}", self.base_port + PORT_STRIDE * index,
                        index % self.racks if rack is None else rack)
        self.specs.append(spec)
        if self.links == "proxied":
            from cluster.deploy.links import CHANNELS, dial_via
            self._start_links([spec])
            for other in self.specs[:-1]:  # the others dial the newcomer through its proxies too
                if other.name in self.nodes and self.nodes[other.name].is_running():
                    for channel in CHANNELS:
                        self.nodes[other.name].info(f"set-config:context=network;{channel}.dial-via="
                                                    f"{dial_via(self, other, channel)}")
        node = self.nodes[spec.name] = self._node(spec).start(wait)
        self.wait_converged(wait)
        self.save()
        return node

    def kill(self, name: str) -> None:
        self.nodes[name].kill()

    def stop_node(self, name: str) -> None:
        self.nodes[name].stop()

    def pause(self, name: str) -> None:
        self.nodes[name].pause()

    def resume(self, name: str) -> None:
        self.nodes[name].resume()

    def restart(self, name: str, wait: float = 30.0) -> LocalNode:
        node = self.nodes[name]
        node.stop()
        node.start(wait)
        self.wait_converged(wait)
        self.save()
        return node

    def stop(self) -> None:
        if self._faults is not None:
            if any(w.kind in ("partition", "isolate", "cut") for w in self._faults.active()):
                try:  # iptables rules outlive the nodes: take ours away (proxies go with the proxy server)
                    self._faults.heal()
                except Exception:
                    pass
            self._faults.close()
        for node in self.nodes.values():
            node.stop(timeout=5)
        self._stop_links()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "LocalCluster":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- observation ------------------------------------------------------------------

    def status(self) -> list[dict]:
        """One row per node: what `refcluster status` prints."""
        rows = []
        for spec in self.specs:
            node = self.nodes.get(spec.name)
            row = {"node": spec.name, "address": f"{self.host(spec.port)}:{spec.port}", "rack": spec.rack, "state": "down"}
            if node is not None and node.is_running():
                try:
                    stats = parse_info_kv(node.info("statistics"))
                    ns = parse_info_kv(node.info("namespace/test"))
                except OSError:
                    row["state"] = "unreachable"
                else:
                    row.update(state="up", id=node.info("node"), cluster_key=stats.get("cluster_key"),
                               size=stats.get("cluster_size"), principal=stats.get("cluster_principal"),
                               migrations=stats.get("migrate_partitions_remaining"),
                               device_used_pct=ns.get("device_used_pct"), stop_writes=ns.get("stop_writes"))
            rows.append(row)
        return rows

    def running(self) -> list[LocalNode]:
        return [node for node in self.nodes.values() if node.is_running()]

    def agreed_cluster_key(self) -> str | None:
        """The cluster key if every running node is in one stable cluster of all of them."""
        nodes = self.running()
        keys = set()
        for node in nodes:
            try:
                keys.add(node.info(f"cluster-stable:size={len(nodes)};ignore-migrations=true"))
            except OSError:
                return None
        key = keys.pop() if len(keys) == 1 else None
        return key if key and not key.startswith("ERROR") else None

    def wait_converged(self, timeout: float = 30.0) -> str:
        return self.wait_for(self.agreed_cluster_key, timeout, f"{len(self.running())} nodes to agree on one cluster")

    def wait_for(self, predicate, timeout: float, what: str, poll: float = 0.1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(poll)
        raise TimeoutError(f"timed out after {timeout}s waiting for {what}")

    # -- state file, so separate `refcluster` invocations can find the nodes -------------

    def save(self) -> None:
        state = {
            "rf": self.rf, "racks": self.racks, "settings": self.settings, "base_port": self.base_port,
            "address_per_node": self.address_per_node,
            "links": self.links, "toxiproxy_url": self.toxiproxy_url, "own_proxy_server": self.own_proxy_server,
            "proxy_server_pid": self.proxy_server_pid, "proxy_ports": self.proxy_ports,
            "seed_ports": self.seed_ports,
            "nodes": [{"name": s.name, "port": s.port, "rack": s.rack,
                       "pid": self.nodes[s.name].pid if s.name in self.nodes else None} for s in self.specs],
        }
        (self.run_dir / STATE_FILE).write_text(json.dumps(state, indent=2))
        self.write_prometheus_targets()

    def write_prometheus_targets(self) -> None:
        """Prometheus file-based service discovery: every node's /metrics, and our refproxy's.
        Replaced atomically, as Prometheus re-reads the file whenever it changes."""
        groups = [{"targets": [self.metrics_target(s)], "labels": {"node": s.name, "role": "node"}} for s in self.specs]
        if self.own_proxy_server and self.toxiproxy_url:  # started with -proxy-metrics
            groups.append({"targets": [self.toxiproxy_url.split("://", 1)[-1]], "labels": {"role": "refproxy"}})
        path = self.run_dir / PROMETHEUS_TARGETS
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(groups, indent=1))
        os.replace(tmp, path)

    def metrics_target(self, spec: NodeSpec) -> str:
        """Where Prometheus scrapes `spec`'s /metrics (a backend's own: DockerCluster)."""
        return f"{self.host(spec.port)}:{spec.port + METRICS_OFFSET}"

    @classmethod
    def load(cls, run_dir: str | Path) -> "LocalCluster":
        path = Path(run_dir) / STATE_FILE
        if not path.exists():
            raise FileNotFoundError(f"no cluster in {run_dir} (run `refcluster up` first)")
        state = json.loads(path.read_text())
        cluster = cls(nodes=1, rf=state["rf"], racks=state["racks"], run_dir=run_dir,
                      settings=state["settings"], base_port=state["base_port"], detached=True,
                      address_per_node=state.get("address_per_node", False), links=state.get("links", "direct"))
        cluster.toxiproxy_url = state.get("toxiproxy_url")
        cluster.own_proxy_server = state.get("own_proxy_server", False)
        cluster.proxy_server_pid = state.get("proxy_server_pid")
        cluster.proxy_ports = state.get("proxy_ports", {})
        cluster.seed_ports = state["seed_ports"]
        cluster.specs = [NodeSpec(n["name"], n["port"], n["rack"], n["pid"]) for n in state["nodes"]]
        cluster.nodes = {spec.name: cluster._node(spec) for spec in cluster.specs}
        return cluster
