"""compose.yaml brings up a working cluster with docker-compose 1.29 and with
`docker stack deploy` on a one-node Swarm; the official client on the host uses it, and
nothing listens beyond this host (compose: 127.0.0.1 only; Swarm: nothing published).
With the `prometheus` profile (when Debian's prometheus binary made its image), Prometheus
in compose scrapes the three nodes."""

import shutil
import subprocess
from pathlib import Path

import aerospike
import pytest

from tests.conftest import wait_until
from tests.integration.test_metrics import PrometheusApi

COMPOSE = Path(__file__).resolve().parents[2] / "compose.yaml"
PROJECT = "refclustertest"
pytestmark = pytest.mark.timeout(240)


def run(*cmd, check=True, stdin=None):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=check, input=stdin)


def client_sees_three_and_serves(seed: tuple[str, int]) -> list[tuple[str, int]]:
    """Seeded with one node, the client finds all three and writes; returns where they are."""
    def nodes():
        try:
            client = aerospike.client({"hosts": [seed], "use_services_alternate": True,
                                       "policies": {"total_timeout": 2000}}).connect()
        except aerospike.exception.AerospikeError:
            return None
        try:
            if len(client.get_nodes()) < 3:
                return None
            client.put(("test", "compose", 1), {"a": 1})
            return client.get(("test", "compose", 1))[2] == {"a": 1} and sorted(client.get_nodes())
        finally:
            client.close()
    return wait_until(nodes, 60, "the client to find 3 nodes and write", poll=1)


def test_docker_compose_up(node_image, docker_engine):
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (tools/docker-setup.sh installs it)")
    from cluster.deploy.docker_image import ensure_prometheus_image
    prometheus = ensure_prometheus_image(docker_engine) is not None  # the profile needs its image
    compose = ["docker-compose", "-f", str(COMPOSE), "-p", PROJECT, *(["--profile", "prometheus"] if prometheus else [])]
    try:
        run(*compose, "up", "-d")
        assert client_sees_three_and_serves(("127.0.0.1", 3000)) == [("127.0.0.1", p) for p in (3000, 3010, 3020)]
        bound = {b["HostIp"] for c in docker_engine.containers.list(filters={"label": f"com.docker.compose.project={PROJECT}"})
                 for ports in c.attrs["NetworkSettings"]["Ports"].values() for b in ports or []}
        assert bound == {"127.0.0.1"}
        if prometheus:
            api = PrometheusApi("http://127.0.0.1:9090")
            up = wait_until(lambda: len(api.up_targets()) == 3 and api.up_targets(), 60, "3 nodes scraped", poll=1)
            assert {t["labels"]["job"] for t in up} == {"refcluster-docker"}
            assert sorted(t["scrapeUrl"] for t in up) == [f"http://n{i}:9145/metrics" for i in (1, 2, 3)]
    finally:
        run(*compose, "down", "-v", check=False)


def test_stack_deploy_on_a_one_node_swarm(node_image, docker_engine):
    ours = run("docker", "info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip() != "active"
    if ours:
        run("docker", "swarm", "init", "--advertise-addr", "127.0.0.1")
    stack = {"label": f"com.docker.stack.namespace={PROJECT}"}
    try:
        swarm_file = "".join(line for line in COMPOSE.read_text().splitlines(True) if "compose-only" not in line)
        run("docker", "stack", "deploy", "-c", "-", PROJECT, stdin=swarm_file)
        assert all(not s.attrs["Endpoint"].get("Ports") for s in docker_engine.services.list(filters=stack))
        containers = wait_until(lambda: len(docker_engine.containers.list(filters=stack)) == 3
                                and docker_engine.containers.list(filters=stack), 60, "3 tasks running", poll=1)
        gateway = docker_engine.networks.get("docker_gwbridge").attrs["Containers"]
        addresses = sorted((gateway[c.id]["IPv4Address"].split("/")[0], 3000) for c in containers)
        assert client_sees_three_and_serves(addresses[0]) == addresses
    finally:
        run("docker", "stack", "rm", PROJECT, check=False)
        wait_until(lambda: not docker_engine.containers.list(all=True, filters=stack), 60, "the stack's containers to go", poll=1)
        wait_until(lambda: not docker_engine.networks.list(filters=stack), 30, "the stack's network to go", poll=1)
        if ours:  # and the bridge that joining made, unless a container is still on it
            run("docker", "swarm", "leave", "--force", check=False)
            run("docker", "network", "rm", "docker_gwbridge", check=False)
        for volume in docker_engine.volumes.list(filters=stack):
            volume.remove(force=True)
