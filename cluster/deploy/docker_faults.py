"""Network faults of a DockerCluster: iptables inside the node containers (real dropped
packets), reached by the fault API (cluster.deploy.faults) through
`DockerCluster.network_faults`.

Rules live in a chain per fault window (REFCL-<window id>), jumped to from INPUT of the
receiving node, so a packet is lost on arrival as on a wire and healing removes exactly
that chain. A partition or isolation drops everything between the two addresses; a one-way
cut src -> dst drops only what src sends to dst's fabric and heartbeat listeners, i.e. the
connections src dialled (each node sends over the connections it dialled), so dst still
reaches src, as a one-way cut on the local backend's proxies. A container that is stopped
loses its rules with its network namespace; the undo step then has nothing to remove.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import docker.errors

from cluster.deploy.docker_cluster import FABRIC, HEARTBEAT

if TYPE_CHECKING:
    from cluster.deploy.faults import Faults, FaultWindow


class ContainerIptables:
    def __init__(self, faults: Faults):
        self.faults = faults
        self.cluster = faults.cluster

    def block(self, faults: Faults, kind: str, targets, pairs, mode: str, both_ways: bool) -> FaultWindow:
        chain = f"REFCL-{faults._next_id}"
        # receiver -> the senders whose packets it drops
        drops: dict[str, list[str]] = {}
        for a, b in pairs:
            drops.setdefault(b, []).append(a)
            if both_ways:
                drops.setdefault(a, []).append(b)
        down = [n for n in drops if self.cluster.nodes[n].status() != "running"]
        if down:
            from cluster.deploy.faults import FaultError
            raise FaultError(f"{', '.join(down)} not running: rules in a container go with its network namespace")
        window = faults._open(kind, targets, [["iptables", chain, node] for node in drops], mode=mode)
        if mode == "refuse":
            target = ["-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"]
        else:
            target = ["-j", "DROP"]
        try:
            for receiver, senders in drops.items():
                node = self.cluster.nodes[receiver]
                node.iptables("-N", chain)
                for sender in senders:
                    src = ["-s", self.cluster.nodes[sender].ip]
                    if not both_ways:  # only the sender's own connections to our listeners
                        src += ["-p", "tcp", "-m", "multiport", "--dports", f"{FABRIC},{HEARTBEAT}"]
                    node.iptables("-A", chain, *src, *target)
                node.iptables("-I", "INPUT", "-j", chain)
        except BaseException:
            faults._close(window)
            raise
        return window

    def toxic(self, *args, **kwargs):
        from cluster.deploy.faults import FaultError
        raise FaultError("latency and bandwidth faults need links='proxied' (the refproxy container)")

    client_toxic = toxic

    def undo(self, step: list) -> None:
        _, chain, name = step
        node = self.cluster.nodes[name]
        status = node.status()
        if status not in ("running", "paused"):
            return  # a stopped container lost its rules with its namespace
        if status == "paused":  # no exec into a frozen container: thaw it for the heal
            node.resume()
        try:
            if node.iptables("-n", "-L", chain, check=False):
                while node.iptables("-D", "INPUT", "-j", chain, check=False):
                    pass
                node.iptables("-F", chain)
                node.iptables("-X", chain)
        except docker.errors.NotFound:
            pass
        finally:
            if status == "paused":
                node.pause()

    def sweep(self) -> list[str]:
        return []
