"""rack_breaker and partition_heal through the real `chaos` CLI with `--var backend=docker`:
the embedded cluster is a DockerCluster (node containers; kill = docker kill, the split =
iptables inside the containers), durations scaled down. Run helpers and checks are the
chaos tests' own; the node containers' states are recorded while the run goes."""

import time

import pytest

from cluster.deploy.docker_cluster import OWNER
from cluster.deploy.docker_image import LABEL
from tests.chaos.test_experiments import SCALED, ChaosRun
from tests.chaos.test_more_experiments import assert_complete, method_runs

pytestmark = pytest.mark.timeout(300)
DOCKER = ["--var", "backend=docker", *SCALED]


def run_watched(client, experiment: str, tmp_path, *args: str) -> tuple:
    """run_experiment, plus node name -> the states its container was seen in meanwhile (the
    containers of this run's `chaos` process: other runs may share the engine)."""
    run = ChaosRun(experiment, tmp_path, *args)
    owner = f"pid:{run.proc.pid}:"
    seen: dict[str, set[str]] = {}
    deadline = time.monotonic() + 270
    while run.proc.poll() is None and time.monotonic() < deadline:
        for c in client.containers.list(all=True, filters={"label": f"{LABEL}.node"}):
            if c.labels.get(OWNER, "").startswith(owner):
                seen.setdefault(c.labels[f"{LABEL}.node"], set()).add(c.status)
        time.sleep(0.3)
    code = run.wait(10)
    assert not run.leftovers(), run.output()[-3000:]
    return run, code, seen


def test_rack_breaker_on_docker(docker_engine, node_image, tmp_path):
    run, code, seen = run_watched(docker_engine, "chaos/rack_breaker.yaml", tmp_path, *DOCKER, "--var", "repair_s=2")
    folder = assert_complete(run, code, ["kill_rack"])
    assert folder.faults()[0].targets == ("n2", "n4")
    assert method_runs(folder.journal())["full-replication-without-the-rack"]["output"] == 0
    assert 2 in set(folder.timeline()["n1.cluster_size"])  # rack 0 alone while rack 1 was dead
    # the rack's containers were killed and started again; rack 0's ran throughout
    assert {name for name, states in seen.items() if "exited" in states} == {"n2", "n4"}, seen
    assert sorted(seen) == ["n1", "n2", "n3", "n4"]


def test_partition_heal_on_docker(docker_engine, node_image, tmp_path):
    run, code, seen = run_watched(docker_engine, "chaos/partition_heal.yaml", tmp_path, *DOCKER, "--var", "split_s=6",
                                  "--var", "links=direct")
    folder = assert_complete(run, code, ["partition"], lossless=False)
    assert sorted(method_runs(folder.journal())["each-side-forms-a-cluster"]["output"].values()) == [1, 2]
    timeline = folder.timeline()
    assert 2 in set(timeline["n1.cluster_size"]) and 1 in set(timeline["n3.cluster_size"])
    assert sorted(seen) == ["n1", "n2", "n3"]
