"""The `refcluster` CLI operates a detached local cluster across separate invocations."""

import json
import signal
import socket
import subprocess
import sys

import psutil

from cluster.deploy.local import info_request
from tests.conftest import wait_until

CLI = [sys.executable, "-m", "cluster.deploy.cli"]


def refcluster(run_dir, *args, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*CLI, *args, "--dir", str(run_dir)], capture_output=True, text=True, timeout=90)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def table(text: str) -> dict[str, dict[str, str]]:
    """The status table (`status`, and what `up` prints) as {node: {column: value}}."""
    lines = text.splitlines()
    header = lines[0].split()
    return {row[0]: dict(zip(header, row, strict=True)) for row in (line.split() for line in lines[1:])}


def status(run_dir) -> dict[str, dict[str, str]]:
    return table(refcluster(run_dir, "status").stdout)


def recorded_pids(run_dir) -> dict[str, int]:
    """{node: pid} from the state file the CLI keeps between invocations."""
    state = json.loads((run_dir / "cluster.json").read_text())
    return {n["name"]: n["pid"] for n in state["nodes"]}


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def node_pids(run_dir) -> set[int]:
    """Every live node process whose work directory is under run_dir."""
    return {p.pid for p in psutil.process_iter(["cmdline"])
            if "cluster.node.main" in " ".join(p.info["cmdline"] or []) and str(run_dir) in " ".join(p.info["cmdline"])
            and alive(p.pid)}


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def assert_cluster(rows: dict[str, dict[str, str]], names: set[str]) -> None:
    """These nodes, each up, answering on its address with its id, all in one cluster of them."""
    assert set(rows) == names, rows
    assert {r["state"] for r in rows.values()} == {"up"}, rows
    assert {r["size"] for r in rows.values()} == {str(len(names))}, rows
    assert len({r["cluster_key"] for r in rows.values()}) == 1, rows
    ids = {r["id"] for r in rows.values()}
    assert len(ids) == len(names) and {r["principal"] for r in rows.values()} == {max(ids)}, rows
    for row in rows.values():
        host, port = row["address"].split(":")
        assert info_request(host, int(port), ["node"])["node"] == row["id"]


def wait_size(run_dir, node: str, size: str, timeout: float = 20) -> dict[str, dict[str, str]]:
    """Status rows once `node` reports a cluster of `size` (the last rows seen if it never does)."""
    rows = {}

    def reached():
        rows.update(status(run_dir))
        return rows[node].get("size") == size

    wait_until(reached, timeout, f"{node} in a cluster of {size}", check=False)
    return rows


def test_cli_lifecycle(tmp_path):
    run_dir = tmp_path / "c"
    started: set[int] = set()
    try:
        up = table(refcluster(run_dir, "up", "--nodes", "3", "--rf", "2", "--racks", "2").stdout)
        assert_cluster(up, {"n1", "n2", "n3"})
        assert [up[n]["rack"] for n in ("n1", "n2", "n3")] == ["0", "1", "0"]
        pids = recorded_pids(run_dir)
        started |= set(pids.values())
        # detached: the nodes outlive the `up` command, and they are the processes it recorded
        assert node_pids(run_dir) == set(pids.values()) and len(started) == 3

        rows = status(run_dir)
        assert_cluster(rows, {"n1", "n2", "n3"})
        assert {n: rows[n]["address"] for n in rows} == {n: up[n]["address"] for n in up}
        key = refcluster(run_dir, "info", "n1", "cluster-stable:size=3").stdout.strip()
        assert key == rows["n1"]["cluster_key"]
        assert refcluster(run_dir, "info", "n1", "no-such-command").stdout.startswith("ERROR:4:")

        refcluster(run_dir, "kill", "n2")
        assert not alive(pids["n2"])
        killed_n2 = pids["n2"]
        rows = wait_size(run_dir, "n1", "2")
        assert rows["n2"]["state"] == "down" and rows["n1"]["size"] == "2" and rows["n3"]["size"] == "2"
        assert_cluster({n: rows[n] for n in ("n1", "n3")}, {"n1", "n3"})

        refcluster(run_dir, "restart", "n2")
        refcluster(run_dir, "add")
        pids = recorded_pids(run_dir)
        started |= set(pids.values())
        assert pids["n2"] != killed_n2 and alive(pids["n2"])  # restarted: a new process
        assert node_pids(run_dir) == set(pids.values()) and len(pids) == 4
        rows = status(run_dir)
        assert_cluster(rows, {"n1", "n2", "n3", "n4"})

        refcluster(run_dir, "pause", "n4")
        assert psutil.Process(pids["n4"]).status() == psutil.STATUS_STOPPED
        rows = wait_size(run_dir, "n1", "3")
        assert rows["n1"]["size"] == "3"
        refcluster(run_dir, "resume", "n4")
        assert wait_size(run_dir, "n1", "4")["n1"]["size"] == "4"
        assert_cluster(wait_size(run_dir, "n4", "4"), {"n1", "n2", "n3", "n4"})

        again = refcluster(run_dir, "up", check=False)
        assert again.returncode != 0 and "already holds a cluster" in again.stderr
        assert refcluster(run_dir, "kill", "n9", check=False).returncode == 2
        ports = [int(row["address"].split(":")[1]) for row in rows.values()]
    finally:
        down = refcluster(run_dir, "down", check=False)
        leftover = {pid for pid in started | node_pids(run_dir) if alive(pid)}
        for pid in leftover:  # only the nodes this test started, so a failure leaves none behind
            psutil.Process(pid).send_signal(signal.SIGKILL)
    assert down.returncode == 0, down.stderr
    assert not leftover, f"`down` left node processes running: {leftover}"
    assert not run_dir.exists()
    assert not any(listening(port) for port in ports)
