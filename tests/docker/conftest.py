"""Docker backend tests: real engine, real containers, the official client on the host.

tools/docker-setup.sh installs and starts Docker when it can (root, Debian mirror); when it
cannot, every test here skips with its message. The image is built once per session (a
cached tag: seconds when nothing changed). Every container, network and volume a test makes
is labelled and removed at its end, also on failure; the session ends by checking that
(for its own containers: other runs may share the engine).
"""

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def docker_engine():
    setup = subprocess.run([str(REPO / "tools/docker-setup.sh")], capture_output=True, text=True, timeout=600)
    if setup.returncode != 0:
        pytest.skip(f"Docker cannot run here: {setup.stderr.strip()}")
    import docker

    client = docker.from_env(timeout=120)
    yield client
    from cluster.deploy.docker_cluster import OWNER, _orphaned
    from cluster.deploy.docker_image import LABEL
    # ours, or nobody's: other runs may be using Docker on this machine at the same time
    me = f"pid:{os.getpid()}:"
    left = [c.name for c in client.containers.list(all=True, filters={"label": LABEL})
            if c.labels.get(LABEL) not in ("base", "node") and (c.labels.get(OWNER, "").startswith(me)
                                                               or _orphaned(c.labels))]
    assert not left, f"containers left behind: {left}"


@pytest.fixture(scope="session")
def node_image(docker_engine) -> str:
    from cluster.deploy.docker_image import ensure_image
    return ensure_image(docker_engine)


@pytest.fixture
def docker_cluster(node_image, tmp_path):
    """Factory: docker_cluster(nodes=3, rf=2, ...) -> a started DockerCluster, removed at teardown."""
    from cluster.deploy.docker_cluster import DockerCluster
    made = []

    def factory(**kw):
        cluster = DockerCluster(image=node_image, run_dir=tmp_path / f"c{len(made)}", **kw)
        made.append(cluster)
        return cluster.start()

    yield factory
    for cluster in made:
        cluster.stop()
