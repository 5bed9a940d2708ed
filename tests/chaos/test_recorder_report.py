"""One small chaos run end to end, with real parts: a 3-node RF 2 LocalCluster under YCSB
(Locust) load, the safety workload and the recorder; n3 is killed in the middle (the fault
window recorded in faults.csv) and restarted. Then the run folder, its headline numbers
and its report, opened in headless Chromium."""

import re
import shutil
import subprocess
import time

import pandas as pd
import psutil
import pytest

from chaos.load import Load
from chaos.recorder import NODE_METRICS, SUMMARY_COLUMNS, Recorder, cluster_nodes
from chaos.report import headlines, summary_text, write_report
from chaos.results import Fault, RunFolder
from chaos.safety import SafetyWorkload, wait_settled
from cluster.deploy.local_cluster import LocalCluster

CHROMIUM = shutil.which("chromium")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    config = {"cluster": {"nodes": 3, "rf": 2}, "load": {"workload": "a", "users": 4}, "fault": "kill n3"}
    run = RunFolder.create("kill-n3", root=tmp_path_factory.mktemp("results"), config=config)
    with LocalCluster(nodes=3, rf=2) as cluster:
        load = Load(cluster.seeds(), run.load_dir, workload="a", users=4, duration=60, seed=7)
        load.preload()
        safety = SafetyWorkload(cluster.seeds(), keys=100, rate=100, seed=7)
        recorder = Recorder(cluster_nodes(cluster), run.path, failures_csv=load.failures_csv)
        with load, safety, recorder:
            time.sleep(6)
            start = time.time()
            cluster.kill("n3")
            cluster.wait_converged(20)  # the survivors re-formed: so re-forming happens inside the window
            wait_settled(cluster.seeds(), timeout=30)  # ... and re-replicated without n3
            recorder.wait_sample()  # one sample of the settled survivors before n3 returns
            end = time.time()
            cluster["n3"].start(20)
            cluster.wait_converged(20)
            run.add_fault(Fault("kill", ("n3",), start, end))
            time.sleep(4)
            run.recent = load.recent(5)
            wait_settled(cluster.seeds(), timeout=30)
            recorder.wait_sample()  # one more sample, of the settled cluster
        run.locust_pid = load.proc.pid
        recorder.stop()  # again: the timeline now has the load's last seconds too
        run.write_safety(safety.check())
        safety.close()
    return run


def test_timeline_has_one_row_per_second_with_every_column(run):
    timeline = run.timeline()
    assert len(timeline) >= 15
    assert (timeline["time"].diff().dropna() == 1).all()
    expected = SUMMARY_COLUMNS + [f"{node}.{metric}" for node in ("n1", "n2", "n3") for metric in NODE_METRICS]
    expected += [f"{op}.{c}" for op in ("READ", "UPDATE") for c in ("ops", "errors", "p50_ms", "p99_ms", "p99.9_ms", "max_ms")]
    assert set(expected + ["ops", "errors"]) <= set(timeline.columns)
    assert timeline["ops"].sum() > 0


def test_cluster_size_dips_to_two_and_returns_to_three(run):
    sizes = run.timeline()["n1.cluster_size"].tolist()
    first_two = sizes.index(2)
    assert 3 in sizes[first_two:]
    assert sizes[-1] == 3


def test_a_dead_node_leaves_its_columns_empty(run):
    timeline = run.timeline()
    down = timeline[timeline["nodes_up"] == 2]
    assert len(down) >= 1
    assert down[[f"n3.{metric}" for metric in NODE_METRICS]].isna().all().all()


def test_the_kill_leaves_partitions_below_full_replication_until_migration(run):
    timeline = run.timeline()
    assert timeline["partitions_below_rf"].max() > 0
    assert timeline["migrate_partitions_remaining"].max() > 0
    assert timeline["partitions_below_rf"].iloc[-1] == 0
    assert timeline["migrate_records_rate"].sum() > 0  # records moved, counted per second


def test_no_acknowledged_write_lost_with_rf2_and_one_node_killed(run):
    safety = run.safety()
    assert safety["counts"]["writes"]["ok"] > 100
    assert safety["counts"]["lost"] == 0
    assert safety["counts"]["failed_visible"] == 0
    assert safety["valid"]
    assert safety["policy"]["namespace_config"]["replication-factor"] == "2"


def test_headline_numbers_are_in_causal_order_and_inside_the_fault(run):
    [fault] = run.faults()
    [h] = headlines(run)
    assert 0 < h["detect_s"] <= h["reform_s"] < fault.end - fault.start
    assert h["reform_s"] < h["full_replication_s"] < fault.end - fault.start
    assert h["rebalance_s"] > 0  # n3's return is a rebalance of its own
    assert h["worst_p99_ms"] > 0
    assert h["errors"] >= 0 and h["ops"] > 0
    assert h["writes_lost"] == 0


def test_the_summary_has_the_headline_numbers(run):
    [h] = headlines(run)
    text = summary_text(run)
    assert f"detect {h['detect_s']:.1f} s" in text
    assert f"full replication {h['full_replication_s']:.1f} s" in text
    assert f"rebalanced {h['rebalance_s']:.1f} s after it ended" in text
    assert "safety: valid: 0 acknowledged writes lost" in text


def test_the_probe_view_of_the_load(run):
    assert run.recent["ops"] > 0
    assert 0 <= run.recent["error_rate"] <= 1
    assert run.recent["p99_ms"] > 0


def test_the_load_is_gone_after_stop(run):
    assert not psutil.pid_exists(run.locust_pid) or psutil.Process(run.locust_pid).status() == psutil.STATUS_ZOMBIE


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium")
def test_report_opens_in_headless_chromium(run, tmp_path):
    path = write_report(run.path)
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=60, check=True).stdout
    assert len(re.findall(r"<svg\b", dom)) == 6
    [h] = headlines(run)
    assert f"{h['detect_s']:.3f}" in dom
    assert "Safety: <b>valid</b>" in dom
    assert "<path" in dom  # the plots have lines in them
    assert pd.notna(h["full_replication_s"])
