"""The `refcluster` CLI operates a detached local cluster across separate invocations."""

import os
import subprocess
import sys
import time

import psutil

CLI = [sys.executable, "-m", "cluster.deploy.cli"]


def refcluster(run_dir, *args, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*CLI, *args, "--dir", str(run_dir)], capture_output=True, text=True, timeout=90)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def status(run_dir) -> dict[str, dict[str, str]]:
    lines = refcluster(run_dir, "status").stdout.splitlines()
    header = lines[0].split()
    return {row[0]: dict(zip(header, row, strict=True)) for row in (line.split() for line in lines[1:])}


def node_pids(run_dir) -> list[int]:
    return [p.pid for p in psutil.process_iter(["cmdline"])
            if "cluster.node.main" in " ".join(p.info["cmdline"] or []) and str(run_dir) in " ".join(p.info["cmdline"])]


def wait_size(run_dir, node: str, size: str, timeout: float = 20) -> dict[str, dict[str, str]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = status(run_dir)
        if rows[node].get("size") == size or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_cli_lifecycle(tmp_path):
    run_dir = tmp_path / "c"
    try:
        out = refcluster(run_dir, "up", "--nodes", "3", "--rf", "2", "--racks", "2").stdout
        assert out.count(" up ") == 3
        assert len(node_pids(run_dir)) == 3  # detached: they outlive the `up` command

        rows = status(run_dir)
        assert {r["size"] for r in rows.values()} == {"3"} and len({r["cluster_key"] for r in rows.values()}) == 1
        assert [rows[n]["rack"] for n in ("n1", "n2", "n3")] == ["0", "1", "0"]
        key = refcluster(run_dir, "info", "n1", "cluster-stable:size=3").stdout.strip()
        assert key == rows["n1"]["cluster_key"]
        assert refcluster(run_dir, "info", "n1", "no-such-command").stdout.startswith("ERROR:4:")

        refcluster(run_dir, "kill", "n2")
        rows = wait_size(run_dir, "n1", "2")
        assert rows["n2"]["state"] == "down" and rows["n1"]["size"] == "2" and rows["n3"]["size"] == "2"

        refcluster(run_dir, "restart", "n2")
        refcluster(run_dir, "add")
        rows = status(run_dir)
        assert set(rows) == {"n1", "n2", "n3", "n4"} and {r["size"] for r in rows.values()} == {"4"}

        refcluster(run_dir, "pause", "n4")
        rows = wait_size(run_dir, "n1", "3")
        assert rows["n1"]["size"] == "3"
        refcluster(run_dir, "resume", "n4")
        assert wait_size(run_dir, "n1", "4")["n1"]["size"] == "4"

        again = refcluster(run_dir, "up", check=False)
        assert again.returncode != 0 and "already holds a cluster" in again.stderr
        assert refcluster(run_dir, "kill", "n9", check=False).returncode == 2
    finally:
        refcluster(run_dir, "down", check=False)
    assert node_pids(run_dir) == []
    assert not run_dir.exists()
    assert os.path.exists(tmp_path)
