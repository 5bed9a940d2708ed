"""Nothing left behind: the CLI's `down`, and `refcluster gc` after a runner was SIGKILLed
with its containers, network and volumes still there."""

import json
import signal
import subprocess
import sys

from cluster.deploy.cli import main as refcluster
from cluster.deploy.docker_image import LABEL
from tests.conftest import wait_until

RUNNER = """
import sys, time
from cluster.deploy.docker_cluster import DockerCluster
cluster = DockerCluster(nodes=2, rf=1, image=sys.argv[1], run_dir=sys.argv[2]).start()
print(cluster.cluster_id, flush=True)
time.sleep(600)
"""


def ours(client, kind, cluster_id):
    """The containers, networks or volumes of one cluster (other runs may share the engine)."""
    items = getattr(client, kind).list(**({"all": True} if kind == "containers" else {}),
                                       filters={"label": f"{LABEL}={cluster_id}"})
    return [i.name for i in items]


def test_gc_removes_what_a_killed_runner_left(docker_engine, node_image, tmp_path):
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, node_image, str(tmp_path / "run")],
                              stdout=subprocess.PIPE, text=True)
    try:
        cluster_id = runner.stdout.readline().strip()
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.wait(10)
    left = {kind: ours(docker_engine, kind, cluster_id) for kind in ("containers", "networks", "volumes")}
    assert [len(v) for v in left.values()] == [2, 1, 2], left  # a crash leaves them, gc's job
    assert refcluster(["gc"]) == 0
    assert all(not ours(docker_engine, kind, cluster_id) for kind in ("containers", "networks", "volumes"))


def test_cli_up_fault_down_with_the_docker_backend(docker_engine, node_image, tmp_path, capsys):
    run = str(tmp_path / "run")
    assert refcluster(["up", "--backend", "docker", "--nodes", "3", "--racks", "3", "--dir", run]) == 0
    cluster_id = json.loads((tmp_path / "run" / "cluster.json").read_text())["cluster_id"]
    try:
        assert refcluster(["fault", "isolate", "n3", "--dir", run]) == 0
        assert refcluster(["kill", "n2", "--dir", run]) == 0
        assert refcluster(["fault", "partition", "n1", "n2", "--dir", run]) == 1  # n2 is down: refused, said why
        assert "not running" in capsys.readouterr().err
        assert refcluster(["fault", "restore", "--dir", run]) == 0

        def whole():  # n3 back from isolation and n2 restarted: all up, all in one cluster of 3
            assert refcluster(["status", "--dir", run]) == 0
            rows = [line.split() for line in capsys.readouterr().out.splitlines() if line[:1] == "n" and line[1:2].isdigit()]
            return [row[1] for row in rows] == ["up", "up", "up"] and {row[6] for row in rows} == {"3"}
        wait_until(whole, 20, "status: 3 nodes up in one cluster", poll=0.5)
    finally:
        assert refcluster(["down", "--dir", run]) == 0
    assert all(not ours(docker_engine, kind, cluster_id) for kind in ("containers", "networks", "volumes"))
