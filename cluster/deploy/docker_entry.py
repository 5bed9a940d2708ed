"""The node image's entry point: config from the environment, then `refnode`.

    REFNODE_SET      KEY=VALUE overrides separated by spaces (as `refnode --set`)
    REFNODE_SEEDS    host:port,... heartbeat seeds; names (compose services, Swarm's
                     tasks.<service>) are resolved to addresses, waiting for them to exist
    REFNODE_ADDRESS  this container's address for heartbeat, fabric and peers; default: its
                     own address on the network where REFNODE_ADDRESS_OF (its compose
                     service name) or its host name resolves
    REFNODE_ALTERNATE host:port the host's clients are told (alternate access address);
                     default: this container's address on its default route's interface,
                     port 3000: in Swarm the docker_gwbridge address, which this host reaches
                     without a published port (Swarm cannot publish on 127.0.0.1 only)

/metrics is served on :9145 at that address. Arguments after the image name are passed on to `refnode` (they win over the environment).
The node listens for clients on every interface, so published ports (and Swarm's routing
mesh) reach it, and tells peers its own address.
"""

import ipaddress
import os
import socket
import subprocess
import sys
import time

from cluster.node import main as refnode

RESOLVE_WAIT = 60.0
METRICS = 9145  # /metrics (dashboards/prometheus.yml's refcluster-docker job)


def resolve(host: str, deadline: float) -> str:
    while True:
        try:
            return socket.gethostbyname(host)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def own_address_near(address: str) -> str:
    """This container's interface address on the network that holds `address`."""
    ips = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True).stdout
    for line in ips.splitlines():
        iface = ipaddress.ip_interface(line.split()[3])
        if ipaddress.ip_address(address) in iface.network:
            return str(iface.ip)
    return address


def default_route_address() -> str:
    route = subprocess.run(["ip", "-o", "-4", "route", "get", "1.1.1.1"], capture_output=True, text=True).stdout
    return route.split(" src ")[1].split()[0]  # only asks the routing table: nothing is sent


def arguments(env: dict[str, str], argv: list[str]) -> list[str]:
    deadline = time.monotonic() + RESOLVE_WAIT
    address = env.get("REFNODE_ADDRESS") or own_address_near(
        resolve(env.get("REFNODE_ADDRESS_OF") or socket.gethostname(), deadline))
    settings = ["network.service.address=0.0.0.0", f"network.service.access-address={address}",
                f"network.heartbeat.address={address}", f"network.fabric.address={address}",
                f"network.metrics.address={address}", f"network.metrics.port={METRICS}"]
    alt_host, _, alt_port = (env.get("REFNODE_ALTERNATE") or f"{default_route_address()}:3000").rpartition(":")
    settings += [f"network.service.alternate-access-address={alt_host}",
                 f"network.service.alternate-access-port={alt_port}"]
    seeds = []
    for seed in filter(None, env.get("REFNODE_SEEDS", "").split(",")):
        host, _, port = seed.strip().rpartition(":")
        seeds.append(f"{resolve(host, deadline)}:{port}")
    if seeds:
        settings.append(f"network.heartbeat.mesh-seed-address-port={','.join(seeds)}")
    settings += env.get("REFNODE_SET", "").split()
    args = ["--work-dir", "/data"]
    for item in settings:
        args += ["--set", item]
    return args + argv


def main() -> int:
    return refnode.main(arguments(dict(os.environ), sys.argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
