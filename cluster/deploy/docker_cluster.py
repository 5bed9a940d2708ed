"""A cluster of reference nodes in Docker containers (the `docker` SDK), with LocalCluster's
interface and the same fault API.

    with DockerCluster(nodes=3, rf=2) as dc:            # builds the image on first use
        client = aerospike.client(dc.client_config()).connect()
        dc.faults.partition([["n1", "n2"], ["n3"]])     # iptables inside the containers

Every cluster gets a user-defined bridge network with an explicit /24 subnet; node i has the
fixed address .(10+i) and listens there on 3000 (service), 3001 (fabric) and 3002
(heartbeat), the nodes heartbeating between container addresses. Only the service port is
published, on 127.0.0.1:base+10(i-1); each node advertises that as its alternate access
address, so a client on the host (the official client with use_services_alternate) finds
every node through the published ports. Data lives on a named volume per node, which
survives kill/stop/start and is emptied by restart(wipe=True).

With `links="proxied"` our refproxy runs in a container of its own on the cluster network
(address .5, API on :8474) and every node-to-node heartbeat and fabric link, in each
direction, and every client link goes through its own named proxy there, as with
LocalCluster(links="proxied") (cluster.deploy.links): the nodes dial through it by
`network.<channel>.dial-via` and advertise their client proxy as alternate access address,
so latency and bandwidth faults work on this backend too. The host reaches the proxy
container's address directly (a bridge of this host), nothing is published for it.

Containers, the network and the volumes carry the label io.refcluster=<cluster id> plus who
owns them (a run directory, or a live process): `stop()` removes them, and `gc()` (`refcluster
gc`) removes whatever a crashed runner left.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import shutil
from pathlib import Path

import docker
import docker.errors
import psutil

from cluster.deploy.docker_entry import METRICS
from cluster.deploy.docker_image import LABEL, ensure_image
from cluster.deploy.links import client_link_name, link_name
from cluster.deploy.local import info_request, wait_in_cluster
from cluster.deploy.local_cluster import PORT_STRIDE, STATE_FILE, LocalCluster, NodeSpec

SERVICE, FABRIC, HEARTBEAT = 3000, 3001, 3002
PORTS = {"heartbeat": HEARTBEAT, "fabric": FABRIC}
PROXY_HOST_NUMBER, PROXY_API = 5, 8474  # the refproxy container: .5 on the cluster's subnet
SUBNETS = ipaddress.ip_network("10.213.0.0/16")  # one /24 per cluster, picked among the free ones
OWNER = f"{LABEL}.owner"  # "pid:<pid>:<start time>" (dies with that process) or "dir:<run dir>"


def _client() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=60)
        client.ping()
        return client
    except docker.errors.DockerException as exc:
        raise RuntimeError(f"no Docker engine ({exc}); tools/docker-setup.sh starts one") from exc


class DockerNode:
    """One node container, with LocalNode's interface (start/stop/kill/pause/info/...)."""

    def __init__(self, cluster: DockerCluster, spec: NodeSpec, ip: str):
        self.cluster, self.spec, self.ip = cluster, spec, ip
        self.host, self.port = "127.0.0.1", spec.port  # the published service port
        self.work_dir = cluster.run_dir / spec.name  # the node's log is copied there at stop
        self.name = f"refcluster-{cluster.cluster_id}-{spec.name}"
        self.volume = f"{self.name}-data"

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def pid(self) -> None:
        return None

    def _container(self):
        try:
            return self.cluster.docker.containers.get(self.name)
        except docker.errors.NotFound:
            return None

    def settings(self) -> list[str]:
        c = self.cluster
        return [f"namespaces.test.replication-factor={c.rf}", f"namespaces.test.rack-id={self.spec.rack}",
                *c.dial_via(self.spec), *c.settings]

    def create(self) -> None:
        api, c = self.cluster.docker.api, self.cluster
        labels = c.labels(node=self.spec.name)
        c.docker.volumes.create(self.volume, labels=labels)
        host_config = api.create_host_config(
            port_bindings={SERVICE: ("127.0.0.1", self.port)},
            binds={self.volume: {"bind": "/data", "mode": "rw"}},
            cap_add=["NET_ADMIN"],  # iptables inside the container, for network faults
        )
        networking = api.create_networking_config({c.network_name: api.create_endpoint_config(ipv4_address=self.ip)})
        api.create_container(
            c.image, name=self.name, hostname=self.spec.name, labels=labels, host_config=host_config,
            networking_config=networking, ports=[SERVICE],
            environment={"REFNODE_ADDRESS": self.ip, "REFNODE_SEEDS": ",".join(c.seed_addresses),
                         "REFNODE_ALTERNATE": c.alternate(self.spec),
                         "REFNODE_SET": " ".join(self.settings())},
        )

    def start(self, wait: float = 30.0) -> DockerNode:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if self._container() is None:
            self.create()
        self._container().start()
        if wait:
            self.wait_ready(wait)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        wait_in_cluster(self, self.name, timeout, poll=0.1)

    def info(self, command: str) -> str:
        return info_request(self.host, self.port, [command])[command]

    def exit_status(self) -> str:
        return f"exited ({self.status()})"

    def status(self) -> str:
        container = self._container()
        if container is None:
            return "absent"
        container.reload()
        return container.status

    def is_running(self) -> bool:
        return self.status() in ("running", "paused")  # a frozen node still exists, as after SIGSTOP

    def log_tail(self, lines: int = 30) -> str:
        container = self._container()
        return container.logs(tail=lines).decode(errors="replace") if container else "(no container)"

    def kill(self) -> None:
        """SIGKILL to the node process (PID 1 of the container): nothing flushed."""
        if self.status() == "paused":
            self._container().unpause()
        if self.is_running():
            self._container().kill()
            self._container().wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout` (docker stop)."""
        if self.status() == "paused":
            self._container().unpause()  # a frozen process cannot act on SIGTERM
        if self.is_running():
            self._container().stop(timeout=int(timeout))

    def pause(self) -> None:
        """docker pause: the cgroup freezer stops every process of the container."""
        if self.status() == "running":
            self._container().pause()

    def resume(self) -> None:
        if self.status() == "paused":
            self._container().unpause()

    def wipe(self) -> None:
        """Empty the data volume of the stopped node (a lost disk)."""
        self.cluster.docker.containers.run(
            self.cluster.image, entrypoint=["find", "/data", "-mindepth", "1", "-delete"], remove=True,
            volumes={self.volume: {"bind": "/data", "mode": "rw"}}, labels=self.cluster.labels(), network_mode="none")

    def iptables(self, *args: str, check: bool = True) -> bool:
        """iptables in the node's network namespace (as root, with the container's NET_ADMIN)."""
        code, out = self._container().exec_run(["iptables", "-w", *args], user="root")
        if check and code != 0:
            raise RuntimeError(f"{self.spec.name}: iptables {' '.join(args)}: {out.decode().strip()}")
        return code == 0


class DockerCluster(LocalCluster):
    def __init__(self, nodes: int = 3, rf: int = 2, racks: int = 1, run_dir: str | Path | None = None,
                 settings: list[str] = (), base_port: int | None = None, detached: bool = False,
                 image: str | None = None, cluster_id: str | None = None, subnet: str | None = None,
                 links: str = "direct", toxiproxy_url: str | None = None):
        if toxiproxy_url:
            raise ValueError("the Docker backend runs its own refproxy container; toxiproxy_url is for LocalCluster")
        super().__init__(nodes, rf, racks, run_dir=run_dir, settings=settings, base_port=base_port,
                         detached=detached, links=links)
        self.docker = _client()
        self.cluster_id = cluster_id or secrets.token_hex(4)
        self.network_name = f"refcluster-{self.cluster_id}"
        self.image = image
        self.subnet = ipaddress.ip_network(subnet) if subnet else None

    # -- what LocalCluster asks of a backend ----------------------------------------------------

    def labels(self, **extra) -> dict[str, str]:
        if self.detached:
            owner = f"dir:{self.run_dir.resolve()}"
        else:
            me = psutil.Process()
            owner = f"pid:{me.pid}:{me.create_time():.0f}"
        return {LABEL: self.cluster_id, OWNER: owner, **{f"{LABEL}.{k}": v for k, v in extra.items()}}

    def ip(self, spec: NodeSpec) -> str:
        return str(self.subnet.network_address + 10 + (spec.port - self.base_port) // PORT_STRIDE + 1)

    @property
    def seed_addresses(self) -> list[str]:
        return [f"{self.ip(s)}:{HEARTBEAT}" for s in self.specs[:len(self.seed_ports)]]

    def _node(self, spec: NodeSpec) -> DockerNode:
        return DockerNode(self, spec, self.ip(spec))

    def metrics_target(self, spec: NodeSpec) -> str:
        return f"{self.ip(spec)}:{METRICS}"  # the container's address: this host reaches it

    def client_config(self, seeds: int | None = None) -> dict:
        return {"hosts": self.seeds()[:seeds], "use_services_alternate": True}

    def network_faults(self, faults):
        """The fault API's network backend for this cluster (cluster.deploy.faults): toxics
        on the proxy container's proxies, or iptables inside the node containers."""
        if self.links == "proxied":
            from cluster.deploy.links import ProxiedLinks
            return ProxiedLinks(faults)
        from cluster.deploy.docker_faults import ContainerIptables
        return ContainerIptables(faults)

    # -- proxied links: the refproxy container ----------------------------------------------

    @property
    def proxy_ip(self) -> str:
        return str(self.subnet.network_address + PROXY_HOST_NUMBER)

    def seeds(self) -> list[tuple[str, int]]:
        if self.links == "proxied":
            return [(self.proxy_ip, self.proxy_ports[client_link_name(s.name)]) for s in self.specs]
        return self.direct_seeds()

    def alternate(self, spec: NodeSpec) -> str:
        """Where the host's clients reach `spec`: its client proxy, or its published port."""
        if self.links == "proxied":
            return f"{self.proxy_ip}:{self.proxy_ports[client_link_name(spec.name)]}"
        return f"127.0.0.1:{spec.port}"

    def dial_via(self, spec: NodeSpec) -> list[str]:
        if self.links != "proxied":
            return []
        return [f"network.{channel}.dial-via=" + ",".join(
                f"{self.ip(peer)}:{port}>{self.proxy_ip}:{self.proxy_ports[link_name(spec.name, peer.name, channel)]}"
                for peer in self.specs if peer.name != spec.name) for channel, port in PORTS.items()]

    def _start_links(self, specs: list[NodeSpec]) -> None:
        if self.links != "proxied":
            return
        api, c = self.docker.api, self
        host_config = api.create_host_config()
        networking = api.create_networking_config({c.network_name: api.create_endpoint_config(ipv4_address=c.proxy_ip)})
        container = api.create_container(
            c.image, name=f"{c.network_name}-refproxy", hostname="refproxy", labels=c.labels(role="refproxy"),
            host_config=host_config, networking_config=networking,
            entrypoint=["python", "-m", "chaos.proxy", "-host", "0.0.0.0", "-port", str(PROXY_API), "-proxy-metrics"])
        api.start(container)
        self.toxiproxy_url = f"http://{c.proxy_ip}:{PROXY_API}"
        api_client = self.proxy_api()
        self.wait_for(lambda: _answers(api_client), 30, "the refproxy container's API")
        wanted = {client_link_name(s.name): f"{self.ip(s)}:{SERVICE}" for s in specs}
        wanted |= {link_name(src.name, dst.name, channel): f"{self.ip(dst)}:{port}"
                   for dst in specs for src in self.specs if src.name != dst.name for channel, port in PORTS.items()}
        made = api_client.populate([{"name": name, "upstream": upstream, "listen": f"{c.proxy_ip}:0", "enabled": True}
                                    for name, upstream in wanted.items()])
        self.proxy_ports.update({p.name: p.port for p in made})

    def _stop_links(self) -> None:
        self.proxy_ports = {}  # the proxy container goes with the cluster's other containers

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, wait: float = 60.0) -> DockerCluster:
        self.image = self.image or ensure_image(self.docker, log=lambda msg: print(f"docker: {msg}", flush=True))
        self._create_network()
        return super().start(wait)

    def _create_network(self) -> None:
        taken = {ipaddress.ip_network(cfg["Subnet"]) for net in self.docker.networks.list()
                 for cfg in (net.attrs.get("IPAM") or {}).get("Config") or [] if "Subnet" in cfg}
        candidates = [self.subnet] if self.subnet else list(SUBNETS.subnets(new_prefix=24))
        start = int(self.cluster_id, 16) % len(candidates)  # parallel clusters try different ones
        for subnet in candidates[start:] + candidates[:start]:
            if any(subnet.overlaps(t) for t in taken):
                continue
            ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=str(subnet))])
            try:
                self.docker.networks.create(self.network_name, driver="bridge", ipam=ipam, labels=self.labels())
            except docker.errors.APIError as exc:
                if "overlap" in str(exc).lower():
                    continue  # taken by a cluster started meanwhile
                raise
            self.subnet = subnet
            return
        raise RuntimeError(f"no free /24 in {SUBNETS} for the cluster network")

    def stop(self) -> None:
        if self._faults is not None:
            self._faults.close()
        for node in self.nodes.values():  # keep each node's log with the run
            try:
                if node._container() is not None:
                    node.work_dir.mkdir(parents=True, exist_ok=True)
                    (node.work_dir / "node.log").write_bytes(node._container().logs())
            except (docker.errors.DockerException, OSError):
                pass
        remove(self.docker, {LABEL: self.cluster_id})
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    # -- state file, so separate `refcluster` invocations find the containers -------------------

    def save(self) -> None:
        state = {"backend": "docker", "cluster_id": self.cluster_id, "image": self.image, "links": self.links,
                 "toxiproxy_url": self.toxiproxy_url, "proxy_ports": self.proxy_ports,
                 "subnet": str(self.subnet), "rf": self.rf, "racks": self.racks, "settings": self.settings,
                 "base_port": self.base_port, "seeds": len(self.seed_ports),
                 "nodes": [{"name": s.name, "port": s.port, "rack": s.rack} for s in self.specs]}
        (self.run_dir / STATE_FILE).write_text(json.dumps(state, indent=2))
        self.write_prometheus_targets()

    @classmethod
    def from_state(cls, run_dir: str | Path, state: dict) -> DockerCluster:
        cluster = cls(nodes=len(state["nodes"]), rf=state["rf"], racks=state["racks"], run_dir=run_dir,
                      settings=state["settings"], base_port=state["base_port"], detached=True,
                      image=state["image"], cluster_id=state["cluster_id"], subnet=state["subnet"],
                      links=state.get("links", "direct"))
        cluster.toxiproxy_url, cluster.proxy_ports = state.get("toxiproxy_url"), state.get("proxy_ports", {})
        cluster.specs = [NodeSpec(n["name"], n["port"], n["rack"]) for n in state["nodes"]]
        cluster.seed_ports = [s.port + 2 for s in cluster.specs[:state["seeds"]]]
        cluster.nodes = {spec.name: cluster._node(spec) for spec in cluster.specs}
        return cluster


def _answers(api) -> bool:
    try:
        api.version()
        return True
    except OSError:
        return False


def load(run_dir: str | Path) -> LocalCluster:
    """The cluster `refcluster up` left in `run_dir`, whichever backend started it."""
    path = Path(run_dir) / STATE_FILE
    if path.exists():
        state = json.loads(path.read_text())
        if state.get("backend") == "docker":
            return DockerCluster.from_state(run_dir, state)
    return LocalCluster.load(run_dir)


# -- removal ---------------------------------------------------------------------------------------


def remove(client: docker.DockerClient, labels: dict[str, str]) -> list[str]:
    """Remove every container, then network and volume, carrying all of `labels`."""
    filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
    removed = []
    for container in client.containers.list(all=True, filters=filters):
        container.remove(force=True, v=True)
        removed.append(f"container {container.name}")
    for network in client.networks.list(filters=filters):
        network.remove()
        removed.append(f"network {network.name}")
    for volume in client.volumes.list(filters=filters):
        volume.remove(force=True)
        removed.append(f"volume {volume.name}")
    return removed


def _orphaned(labels: dict[str, str]) -> bool:
    """True when the owner of a labelled resource is gone: its process died, or its run
    directory no longer holds that cluster."""
    kind, _, rest = labels.get(OWNER, "").partition(":")
    if kind == "pid":
        pid, _, started = rest.partition(":")
        try:
            return f"{psutil.Process(int(pid)).create_time():.0f}" != started
        except (psutil.NoSuchProcess, ValueError):
            return True
    if kind == "dir":
        try:
            return json.loads((Path(rest) / STATE_FILE).read_text()).get("cluster_id") != labels[LABEL]
        except (OSError, ValueError):
            return True
    return True


def gc(everything: bool = False) -> list[str]:
    """Remove the containers, networks and volumes of clusters whose owner is gone (all of
    ours with `everything`); returns what was removed."""
    client = _client()
    found = [c.labels for c in client.containers.list(all=True, filters={"label": LABEL})]
    found += [n.attrs.get("Labels") or {} for n in client.networks.list(filters={"label": LABEL})]
    found += [v.attrs.get("Labels") or {} for v in client.volumes.list(filters={"label": LABEL})]
    ids = {labels[LABEL] for labels in found if labels.get(LABEL) and (everything or _orphaned(labels))}
    removed = []
    # containers run from our images without labels of their own (compose) inherit "node"
    for cluster_id in sorted(ids - {"base", "node"}):
        removed += remove(client, {LABEL: cluster_id})
    return removed
