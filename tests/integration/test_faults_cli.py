"""`refcluster up --proxied` and `refcluster fault ...` across separate invocations, and a
crash-safe heal: faults made by a runner that was SIGKILLed are removed by `fault heal`."""

import json
import signal
import subprocess
import sys

import psutil

from chaos.proxy.api import ToxiproxyClient
from tests.integration.test_refcluster_cli import alive, node_pids, refcluster, status

SPLIT = """
import os, signal, sys
from cluster.deploy.local_cluster import LocalCluster
faults = LocalCluster.load(sys.argv[1]).faults
faults.partition([["n1"], ["n2", "n3"]])
faults.latency("n1", "n2", 300)
os.kill(os.getpid(), signal.SIGKILL)  # the runner dies with its faults in force
"""


def proxy_pid(run_dir) -> int:
    return json.loads((run_dir / "cluster.json").read_text())["proxy_server_pid"]


def api(run_dir) -> ToxiproxyClient:
    return ToxiproxyClient(json.loads((run_dir / "cluster.json").read_text())["toxiproxy_url"])


def toxics(run_dir) -> dict[str, list[str]]:
    return {name: [t.name for t in p.toxics] for name, p in api(run_dir).proxies().items() if p.toxics}


def test_proxied_cluster_faults_from_the_cli_and_heal_after_a_crashed_runner(tmp_path):
    run_dir = tmp_path / "c"
    refcluster(run_dir, "up", "--nodes", "3", "--proxied")
    try:
        assert {row["size"] for row in status(run_dir).values()} == {"3"}
        pid = proxy_pid(run_dir)
        assert alive(pid)
        assert len(api(run_dir).proxies()) == 3 * 2 * 2 + 3

        out = refcluster(run_dir, "fault", "partition", "n1", "n2,n3").stdout
        assert "partition" in out and "active" in out
        assert "n1-n2-fabric" in toxics(run_dir) and "n2-n3-fabric" not in toxics(run_dir)
        refcluster(run_dir, "fault", "latency", "n2", "n3", "200")
        assert toxics(run_dir)["n2-n3-heartbeat"] == ["refcluster-2-latency"]
        listed = refcluster(run_dir, "fault", "list").stdout
        assert "partition" in listed and "latency" in listed
        healed = refcluster(run_dir, "fault", "heal").stdout
        assert "healed partition" in healed and "healed latency" in healed
        assert toxics(run_dir) == {}
        assert "active" not in refcluster(run_dir, "fault", "list").stdout

        bad = refcluster(run_dir, "fault", "isolate", "n7", check=False)
        assert bad.returncode != 0 and "no node 'n7'" in bad.stderr
        bad = refcluster(run_dir, "fault", "partition", "n1,n2", "n2,n3", check=False)
        assert bad.returncode != 0 and "more than one group" in bad.stderr

        refcluster(run_dir, "pause", "n3")
        assert "pause" in refcluster(run_dir, "fault", "list").stdout
        refcluster(run_dir, "resume", "n3")

        # a runner SIGKILLed with faults in force: the state on disk lets `fault heal` undo them
        crashed = subprocess.run([sys.executable, "-c", SPLIT, str(run_dir)], capture_output=True, text=True,
                                 timeout=60)
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        assert "n1-n2-heartbeat" in toxics(run_dir)
        refcluster(run_dir, "fault", "heal")
        assert toxics(run_dir) == {}

        # even with the state file gone, heal finds our toxics by their name (and only ours)
        api(run_dir).add_toxic("n1-n2-fabric", "latency", {"latency": 5}, name="users-own")
        subprocess.run([sys.executable, "-c", SPLIT, str(run_dir)], capture_output=True, timeout=60)
        (run_dir / "faults.json").unlink()
        refcluster(run_dir, "fault", "heal")
        assert toxics(run_dir) == {"n1-n2-fabric": ["users-own"]}
    finally:
        refcluster(run_dir, "down", check=False)
    assert not node_pids(run_dir)
    assert not alive(pid), "down left refproxy running"
    assert not any("chaos.proxy" in " ".join(p.info["cmdline"] or []) and p.pid == pid
                   for p in psutil.process_iter(["cmdline"]))
