"""compose.yaml brings up a working cluster with docker-compose 1.29 and with
`docker stack deploy` on a one-node Swarm; the official client on the host uses it."""

import shutil
import subprocess
import time
from pathlib import Path

import aerospike
import pytest

from tests.conftest import wait_until

COMPOSE = Path(__file__).resolve().parents[2] / "compose.yaml"
PROJECT = "refclustertest"
pytestmark = pytest.mark.timeout(240)


def run(*cmd, check=True):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=check)


def client_sees_three_and_serves():
    def nodes():
        try:
            client = aerospike.client({"hosts": [("127.0.0.1", 3000)], "use_services_alternate": True,
                                       "policies": {"total_timeout": 2000}}).connect()
        except aerospike.exception.AerospikeError:
            return None
        try:
            if len(client.get_nodes()) < 3:
                return None
            client.put(("test", "compose", 1), {"a": 1})
            return client.get(("test", "compose", 1))[2]
        finally:
            client.close()
    assert wait_until(nodes, 60, "the client to find 3 nodes and write", poll=1) == {"a": 1}


def test_docker_compose_up(node_image):
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (tools/docker-setup.sh installs it)")
    try:
        run("docker-compose", "-f", str(COMPOSE), "-p", PROJECT, "up", "-d")
        client_sees_three_and_serves()
    finally:
        run("docker-compose", "-f", str(COMPOSE), "-p", PROJECT, "down", "-v", check=False)


@pytest.mark.xfail(strict=True, reason="issue #12, open: on Swarm the nodes form one cluster but the client "
                   "seeded on 127.0.0.1:3000 does not find all 3 nodes within 60 s (not yet diagnosed)")
def test_stack_deploy_on_a_one_node_swarm(node_image):
    state = run("docker", "info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()
    ours = state != "active"
    if ours:
        run("docker", "swarm", "init", "--advertise-addr", "127.0.0.1")
    try:
        run("docker", "stack", "deploy", "-c", str(COMPOSE), PROJECT)
        client_sees_three_and_serves()
    finally:
        run("docker", "stack", "rm", PROJECT, check=False)
        wait_until(lambda: not run("docker", "ps", "-q", "--filter", f"label=com.docker.stack.namespace={PROJECT}")
                   .stdout.strip(), 60, "the stack's containers to go", poll=1)
        time.sleep(2)  # the stack's network goes after its containers
        if ours:
            run("docker", "swarm", "leave", "--force", check=False)
        run("docker", "volume", "prune", "-f", "--filter", f"label=com.docker.stack.namespace={PROJECT}", check=False)
