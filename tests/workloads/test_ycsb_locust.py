"""`locust -f workloads/ycsb.py` through the real CLI, against real node processes on loopback."""

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cluster.client import Client
from cluster.deploy.local_cluster import LocalCluster
from tests.conftest import wait_until

YCSB = Path(__file__).resolve().parents[2] / "workloads" / "ycsb.py"
WORKLOAD_OPS = {
    "a": {"READ", "UPDATE"},
    "b": {"READ", "UPDATE"},
    "c": {"READ"},
    "d": {"READ", "INSERT"},
    "e": {"SCAN", "INSERT"},
    "f": {"READ", "UPDATE", "READ-MODIFY-WRITE"},
}
FAILURE_NAME = re.compile(r"AerospikeError -?\d+ [A-Z_0-9]+")


def locust_command(run_dir: Path, *args: str, users: int = 4, run_time: str = "10s") -> list[str]:
    return [
        sys.executable, "-m", "locust", "-f", str(YCSB), "--headless", "--only-summary",
        "-u", str(users), "-r", str(users), "-t", run_time, "--stop-timeout", "2",
        "--csv", str(run_dir / "locust"), "--results-dir", str(run_dir), "--seed", "7", *args,
    ]  # fmt: skip


def run_locust(run_dir: Path, *args: str, timeout: float = 40, **options) -> subprocess.CompletedProcess:
    return subprocess.run(locust_command(run_dir, *args, **options), capture_output=True, text=True,
                          timeout=timeout, cwd=run_dir.parent)


def stats(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "locust_stats.csv", dtype={"Type": str}).fillna({"Type": "Aggregated"}).set_index(["Type", "Name"])


def assert_clean(result: subprocess.CompletedProcess, run_dir: Path) -> pd.DataFrame:
    """Exit 0, some operations, no failures, no exceptions; returns Locust's stats."""
    assert result.returncode == 0, result.stderr[-3000:]
    table = stats(run_dir)
    total = table.loc[("Aggregated", "Aggregated")]
    assert total["Request Count"] > 0 and total["Failure Count"] == 0, table
    assert pd.read_csv(run_dir / "locust_exceptions.csv").empty
    return table


def assert_results(run_dir: Path, ops: set[str]) -> pd.DataFrame:
    """The per-op histograms of our results folder; returns summary.csv."""
    summary = pd.read_csv(run_dir / "summary.csv")
    assert set(summary.op) == ops
    assert set(summary.kind) == {"service", "intended"}
    series = pd.read_csv(run_dir / "timeseries.csv")
    assert set(series.op) == ops and series["count"].gt(0).all()
    for op in ops:
        assert (run_dir / f"{op}.hdr").exists() and (run_dir / f"Intended-{op}.hdr").exists()
    return summary


@pytest.mark.parametrize("workload", sorted(WORKLOAD_OPS))
def test_each_workload_runs_against_an_embedded_node(tmp_path, workload):
    run_dir = tmp_path / f"ycsb-{workload}"
    result = run_locust(run_dir, "--workload", workload, "--embedded-nodes", "1",
                        "--recordcount", "100", "--operationcount", "300")
    table = assert_clean(result, run_dir)
    assert {op for op, _name in table.index} - {"Aggregated"} == WORKLOAD_OPS[workload]
    summary = assert_results(run_dir, WORKLOAD_OPS[workload])
    # The run stops by itself after operationcount transactions. In F each transaction reads
    # once: a read, or a read-modify-write (recorded as READ, UPDATE and READ-MODIFY-WRITE).
    counts = summary[summary.kind == "service"].set_index("op")["count"]
    assert (counts["READ"] if workload == "f" else counts.sum()) == 300


def test_workload_a_runs_against_an_embedded_three_node_cluster(tmp_path):
    run_dir = tmp_path / "ycsb-a3"
    result = run_locust(run_dir, "--workload", "a", "--embedded-nodes", "3", "--embedded-rf", "2",
                        "--recordcount", "200", "--operationcount", "600", timeout=60)
    assert_clean(result, run_dir)
    assert_results(run_dir, {"READ", "UPDATE"})


def test_two_worker_processes_split_the_key_space(tmp_path, node):
    hosts = "{}:{}".format(*node.address)
    load_dir, run_dir = tmp_path / "load", tmp_path / "run"
    # Load: each worker inserts its own slice; any overlap would fail with 5 RECORD_EXISTS.
    result = run_locust(load_dir, "--processes", "2", "--hosts", hosts, "--phase", "load",
                        "--workload", "d", "--recordcount", "300")
    table = assert_clean(result, load_dir)
    assert table.loc[("INSERT", "test.usertable"), "Request Count"] == 300
    # Run: both workers insert new keys too (create-only again), and read only existing ones.
    result = run_locust(run_dir, "--processes", "2", "--hosts", hosts, "--workload", "d",
                        "--recordcount", "300", "--operationcount", "2000", "--prop", "insertproportion=0.3",
                        "--prop", "readproportion=0.7")
    table = assert_clean(result, run_dir)
    inserts = table.loc[("INSERT", "test.usertable"), "Request Count"]
    summary = assert_results(run_dir, {"READ", "INSERT"})
    assert summary[summary.kind == "service"]["count"].sum() == 2000  # merged from both workers
    client = Client({"hosts": [node.address]}).connect()
    try:
        assert len(client.scan("test", "usertable").results()) == 300 + inserts
    finally:
        client.close()


def request_count(run_dir: Path) -> int:
    """Requests Locust has counted so far (its stats CSV, rewritten every second); 0 before the first."""
    try:
        return int(stats(run_dir).loc[("Aggregated", "Aggregated"), "Request Count"])
    except (FileNotFoundError, KeyError, pd.errors.EmptyDataError):
        return 0


def kill_mid_run(run_dir: Path, hosts: str, kill, records: int, run_time: str) -> tuple[subprocess.CompletedProcess, int]:
    """Load, then start a run phase, kill a node once Locust has counted requests, let the run
    finish. Returns the run and how many requests Locust had counted when the node was killed."""
    assert_clean(run_locust(run_dir.with_name("load"), "--hosts", hosts, "--phase", "load",
                            "--workload", "a", "--recordcount", str(records)), run_dir.with_name("load"))
    command = locust_command(run_dir, "--hosts", hosts, "--workload", "a", "--recordcount", str(records),
                             "--operationcount", "0", run_time=run_time)
    run_dir.mkdir(parents=True)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          cwd=run_dir.parent) as locust:
        try:
            wait_until(lambda: request_count(run_dir) or locust.poll() is not None, 30,
                              "Locust to count requests")
            assert locust.poll() is None, f"Locust ended before the kill: {locust.stderr.read()[-3000:]}"
            seen = request_count(run_dir)
            kill()
            stdout, stderr = locust.communicate(timeout=60)
        finally:
            if locust.poll() is None:
                locust.kill()
    result = subprocess.CompletedProcess(command, locust.returncode, stdout, stderr)
    assert seen > 0
    # the kill happened mid-run: Locust went on and counted more requests after it
    assert request_count(run_dir) > seen, (seen, request_count(run_dir))
    return result, seen


def assert_errors_by_result_code(result: subprocess.CompletedProcess, run_dir: Path) -> pd.DataFrame:
    """The run ended by itself (0, or Locust's 1 for "there were failures"; a crash is 2 or a
    traceback); every failure, if any, is named by an Aerospike result code, counted the same by
    Locust and by our results (service and intended histograms)."""
    assert result.returncode in (0, 1), result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert pd.read_csv(run_dir / "locust_exceptions.csv").empty
    failures = pd.read_csv(run_dir / "locust_failures.csv")
    assert failures.Error.str.fullmatch(FAILURE_NAME.pattern).all(), failures
    assert set(failures.Method) <= {"READ", "UPDATE"}
    table = stats(run_dir)
    assert table.loc[("Aggregated", "Aggregated"), "Failure Count"] == failures.Occurrences.sum()
    assert (result.returncode == 1) == (failures.Occurrences.sum() > 0), (result.returncode, failures)
    summary = pd.read_csv(run_dir / "summary.csv")  # our results count the same errors by code
    assert summary.filter(like="errors_").sum().sum() == 2 * failures.Occurrences.sum()
    return failures


def test_killing_the_only_node_shows_failures_by_result_code(tmp_path, node):
    run_dir = tmp_path / "run"
    result, _seen = kill_mid_run(run_dir, "{}:{}".format(*node.address), node.kill, records=200, run_time="6s")
    failures = assert_errors_by_result_code(result, run_dir)
    # With its only node dead nothing can answer: the rest of the run fails, by result code.
    assert result.returncode == 1 and failures.Occurrences.sum() > 0, failures


def test_killing_one_of_three_nodes_keeps_running_and_recovers(tmp_path):
    with LocalCluster(nodes=3, rf=2, run_dir=tmp_path / "cluster") as cluster:
        hosts = ",".join(f"{h}:{p}" for h, p in cluster.seeds())
        run_dir = tmp_path / "run"
        result, seen = kill_mid_run(run_dir, hosts, lambda: cluster.kill("n2"), records=500, run_time="12s")
        assert not cluster["n2"].is_running() and len(cluster.running()) == 2
    failures = assert_errors_by_result_code(result, run_dir)  # errors, if any, by known result codes
    print(f"{seen} requests before the kill; failures by code:\n{failures.to_string()}")
    # Once the cluster re-formed without n2, operations succeed again: the last whole second
    # (the final row is a partial one) has operations and no errors.
    series = pd.read_csv(run_dir / "timeseries.csv")
    per_second = series[series.kind == "service"].groupby("timestamp")[["count", "errors"]].sum()
    assert len(per_second) >= 3, per_second
    assert per_second.iloc[-2]["count"] > 0 and per_second.iloc[-2]["errors"] == 0, per_second
