"""The links of a local cluster, and how network faults reach them.

Proxied links (`LocalCluster(links="proxied")`, `refcluster up --proxied`): every link has
its own named proxy on a Toxiproxy-compatible server (our `refproxy`, or a real Toxiproxy
at `toxiproxy_url`), created through the Toxiproxy HTTP API only:

    n1-n3-heartbeat   what n1 sends to n3's heartbeat listener (n1 dials through it)
    n1-n3-fabric      what n1 sends to n3's fabric listener (Paxos, exchange, replica
                      writes, migrations, proxied requests, and the answers n1 sends back)
    client-n2         clients to n2's service port

A node-to-node connection carries one direction only: each node sends over the
connections it dialled and only reads from those it accepted, so n1 -> n3 and n3 -> n1 are
two proxies and a fault can hit one direction. The nodes are configured for it, not
patched: `network.<heartbeat|fabric>.dial-via` maps each peer's endpoint to the proxy to
dial, and `network.service.alternate-access-address/-port` advertise the client proxy to
clients that ask for alternate addresses (the official client's `use_services_alternate`,
which sends `peers-clear-alt`), as Aerospike is set up behind a NAT.

Direct links: network faults use iptables (root, and one loopback address per node), or
are refused.
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING

import psutil

from chaos.proxy.api import ToxiproxyClient, ToxiproxyError
from chaos.proxy.process import ProxyServer
from cluster.deploy import iptables

if TYPE_CHECKING:
    from cluster.deploy.faults import Faults, FaultWindow
    from cluster.deploy.local_cluster import LocalCluster, NodeSpec

NEED = "network faults need links='proxied' or root"
CHANNELS = {"heartbeat": 2, "fabric": 1}  # channel -> port offset from the node's service port
PROXY_HOST = "127.0.0.1"


def link_name(src: str, dst: str, channel: str) -> str:
    return f"{src}-{dst}-{channel}"


def client_link_name(node: str) -> str:
    return f"client-{node}"


# -- the proxies of a cluster -------------------------------------------------------------------


class Topology:
    """Creates, lists and removes the proxies of one proxied cluster."""

    def __init__(self, api: ToxiproxyClient):
        self.api = api

    @staticmethod
    def wanted(cluster: LocalCluster, specs: list[NodeSpec]) -> dict[str, str]:
        """name -> upstream for every link touching `specs` among the cluster's nodes."""
        names = {s.name for s in specs}
        links = {}
        for spec in cluster.specs:
            host = cluster.host(spec.port)
            if spec.name in names:
                links[client_link_name(spec.name)] = f"{host}:{spec.port}"
            for src in cluster.specs:
                if src.name == spec.name or (spec.name not in names and src.name not in names):
                    continue
                for channel, offset in CHANNELS.items():
                    links[link_name(src.name, spec.name, channel)] = f"{host}:{spec.port + offset}"
        return links

    def create(self, cluster: LocalCluster, specs: list[NodeSpec]) -> dict[str, int]:
        """Create the missing proxies (an existing one with the same upstream is kept, as
        /populate does); returns name -> listen port of every link of `specs`."""
        wanted = self.wanted(cluster, specs)
        existing = self.api.proxies()
        body = [{"name": name, "upstream": upstream, "listen": f"{PROXY_HOST}:0", "enabled": True}
                for name, upstream in wanted.items()
                if name not in existing or existing[name].upstream != upstream]
        made = {p.name: p for p in self.api.populate(body)} if body else {}
        return {name: (made.get(name) or existing[name]).port for name in wanted}

    def remove(self, names) -> None:
        for name in names:
            try:
                self.api.delete_proxy(name)
            except ToxiproxyError as exc:
                if exc.status != 404:
                    raise

    @staticmethod
    def node_settings(cluster: LocalCluster, spec: NodeSpec) -> list[str]:
        """The config that sends `spec`'s node-to-node dials and its clients through the proxies."""
        return [f"network.service.alternate-access-address={PROXY_HOST}",
                f"network.service.alternate-access-port={cluster.proxy_ports[client_link_name(spec.name)]}",
                *(f"network.{channel}.dial-via={dial_via(cluster, spec, channel)}" for channel in CHANNELS)]


def dial_via(cluster: LocalCluster, spec: NodeSpec, channel: str) -> str:
    entries = []
    for peer in cluster.specs:
        name = link_name(spec.name, peer.name, channel)
        if peer.name != spec.name and name in cluster.proxy_ports:
            real = f"{cluster.host(peer.port)}:{peer.port + CHANNELS[channel]}"
            entries.append(f"{real}>{PROXY_HOST}:{cluster.proxy_ports[name]}")
    return ",".join(entries)


class DetachedProxyServer(ProxyServer):
    """refproxy for `refcluster up`: outlives the command (its own session), like the nodes."""

    def _lifetime(self) -> dict:
        return {"start_new_session": True}


def stop_pid(pid: int | None, timeout: float = 5.0) -> None:
    """Stop a refproxy started by another process (SIGTERM, then SIGKILL)."""
    if not pid:
        return
    try:
        proc = psutil.Process(pid)
        if "chaos.proxy" not in " ".join(proc.cmdline()):
            return  # the pid was reused by something else: not ours to kill
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        proc.kill()


# -- network faults ------------------------------------------------------------------------------


class ProxiedLinks:
    """Network faults as toxics on the cluster's proxies (Toxiproxy HTTP API only)."""

    def __init__(self, faults: Faults):
        self.faults = faults
        self.cluster = faults.cluster
        if not faults.toxiproxy_url:
            raise RuntimeError("the cluster's links are proxied but it has no proxy server (not started?)")
        self.api = ToxiproxyClient(faults.toxiproxy_url)

    def _proxies(self, pairs, channels=tuple(CHANNELS)) -> list[str]:
        names = [link_name(a, b, c) for a, b in pairs for c in channels]
        missing = [n for n in names if n not in self.cluster.proxy_ports]
        if missing:
            raise RuntimeError(f"no proxy for {', '.join(missing)}")
        return names

    def block(self, faults: Faults, kind: str, targets, pairs, mode: str, both_ways: bool) -> FaultWindow:
        pairs = pairs + ([(b, a) for a, b in pairs] if both_ways else [])
        names = self._proxies(pairs)
        wid = faults._next_id
        if mode == "drop":
            # timeout 0: every byte is dropped and the connection stays open until healed
            steps = [["toxic", name, f"{faults.toxic_prefix}{wid}-{kind}-{stream}"]
                     for name in names for stream in ("upstream", "downstream")]
        else:
            steps = [["enable", name] for name in names]
        window = faults._open(kind, targets, steps, mode=mode)
        self._apply(faults, window, steps, lambda step: (
            self.api.add_toxic(step[1], "timeout", {"timeout": 0}, name=step[2],
                               stream=step[2].rsplit("-", 1)[1]) if step[0] == "toxic"
            else self.api.update_proxy(step[1], enabled=False)))
        return window

    def toxic(self, faults: Faults, kind: str, targets, pairs, channels, type: str, attributes: dict) -> FaultWindow:
        names = self._proxies(pairs, channels)
        wid = faults._next_id
        # node links carry their data upstream (dialler -> listener) only
        steps = [["toxic", name, f"{faults.toxic_prefix}{wid}-{kind}"] for name in names]
        window = faults._open(kind, targets, steps, **attributes, channels=list(channels))
        self._apply(faults, window, steps, lambda step: self.api.add_toxic(step[1], type, attributes, name=step[2],
                                                                          stream="upstream"))
        return window

    def client_toxic(self, faults: Faults, kind: str, node: str, type: str, attributes: dict) -> FaultWindow:
        name = client_link_name(node)
        wid = faults._next_id
        steps = [["toxic", name, f"{faults.toxic_prefix}{wid}-{kind}"]]
        window = faults._open(kind, [node], steps, **attributes)
        # the node's answers are delayed: one delay per request
        self._apply(faults, window, steps, lambda step: self.api.add_toxic(step[1], type, attributes, name=step[2],
                                                                          stream="downstream"))
        return window

    def _apply(self, faults: Faults, window: FaultWindow, steps, act) -> None:
        try:
            for step in steps:
                act(step)
        except BaseException:
            faults._close(window)  # undo what was done; the window shows how long it (barely) lasted
            raise

    def undo(self, step: list) -> None:
        try:
            if step[0] == "toxic":
                self.api.remove_toxic(step[1], step[2])
            elif step[0] == "enable":
                # two refuse faults may hold the same proxy: enable it when the last one ends
                still = any(s == step for w in self.faults.active() for s in self.faults._undo.get(w.id, [])
                            if s is not step)
                if not still:
                    self.api.update_proxy(step[1], enabled=True)
        except ToxiproxyError as exc:
            if exc.status != 404:  # already gone (a /reset, a restarted proxy server): nothing to undo
                raise

    def sweep(self) -> list[str]:
        """Remove every toxic of ours (named with the prefix) left on the cluster's proxies,
        e.g. after the fault state was lost; returns what was removed."""
        removed = []
        for name, proxy in self.api.proxies().items():
            if name not in self.cluster.proxy_ports:
                continue
            for toxic in proxy.toxics:
                if toxic.name.startswith(self.faults.toxic_prefix):
                    self.undo(["toxic", name, toxic.name])
                    removed.append(f"{name}/{toxic.name}")
        return removed


class IptablesLinks:
    """Direct links on one loopback address per node, cut with iptables (root)."""

    def __init__(self, faults: Faults):
        self.faults = faults
        self.cluster = faults.cluster

    def block(self, faults: Faults, kind: str, targets, pairs, mode: str, both_ways: bool) -> FaultWindow:
        from cluster.deploy.faults import FaultError
        if not both_ways:
            raise FaultError("a one-way cut needs links='proxied'")
        host = {s.name: self.cluster.host(s.port) for s in self.cluster.specs}
        chain = f"REFCL-{os.getpid()}-{faults._next_id}"
        window = faults._open(kind, targets, [["iptables", chain]], mode=mode)
        part = iptables.Partition([], [], reject=mode == "refuse")
        part.pairs, part.chain = [(host[a], host[b]) for a, b in pairs], chain
        try:
            part.cut()
        except BaseException:
            faults._close(window)
            raise
        return window

    def toxic(self, *args, **kwargs):
        from cluster.deploy.faults import FaultError
        raise FaultError("latency and bandwidth faults need links='proxied'")

    client_toxic = toxic

    def undo(self, step: list) -> None:
        if step[0] == "iptables" and iptables.chain_exists(step[1]):
            part = iptables.Partition([], [])
            part.chain, part.active = step[1], True
            part.heal()

    def sweep(self) -> list[str]:
        return []


class NoLinks:
    """Direct links without a firewall we may use: every network fault is refused."""

    def __init__(self, why: str):
        self.why = why

    def _refuse(self, *args, **kwargs):
        from cluster.deploy.faults import FaultError
        raise FaultError(f"{NEED} ({self.why})")

    block = toxic = client_toxic = _refuse

    def undo(self, step: list) -> None:
        if step[0] == "iptables":
            IptablesLinks.undo(self, step)  # a partition made by a root process earlier
        else:
            raise RuntimeError(f"cannot undo {step}: {self.why}")

    def sweep(self) -> list[str]:
        return []


def links_for(faults: Faults):
    cluster = faults.cluster
    if cluster.links == "proxied":
        return ProxiedLinks(faults)
    why = iptables.unavailable()
    if why is None and not cluster.address_per_node:
        why = "direct links share 127.0.0.1: start the cluster with address_per_node=True"
    return IptablesLinks(faults) if why is None else NoLinks(why)
