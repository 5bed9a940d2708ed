"""The background load never outlives its owner: a real Locust started by a process that is
then SIGKILLed goes with it."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil

from chaos.load import recent
from cluster.deploy.local_cluster import LocalCluster

REPO = Path(__file__).resolve().parents[2]
OWNER = textwrap.dedent("""
    import sys, threading, time
    from chaos.load import Load
    load = Load([("127.0.0.1", int(sys.argv[1]))], sys.argv[2], users=1, duration=120)
    threading.Thread(target=load.start).start()  # from a thread that ends at once
    time.sleep(3)
    print(load.proc.pid, flush=True)
    time.sleep(120)
""")


def test_locust_dies_with_the_process_that_started_it(tmp_path):
    with LocalCluster(nodes=1, rf=1) as cluster:
        owner = subprocess.Popen([sys.executable, "-c", OWNER, str(cluster.seeds()[0][1]), str(tmp_path / "load")],
                                 stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
        try:
            locust = psutil.Process(int(owner.stdout.readline()))
            assert locust.is_running() and locust.status() != psutil.STATUS_ZOMBIE  # outlived the starting thread
            owner.send_signal(signal.SIGKILL)
            owner.wait(10)
            locust.wait(10)  # psutil.TimeoutExpired if it survived its parent
        finally:
            owner.kill()
            owner.wait()


def test_recent_window_spans_the_seconds_its_labels_end(tmp_path):
    # labels are ends (workloads.merged_results.next_second): row 103 is the second [102, 103)
    rows = ["timestamp,op,kind,count,errors,p50_us,p95_us,p99_us,p99.9_us,max_us,mean_us"]
    rows += [f"{t},READ,service,10,{int(t == 101)},1,1,{t * 10},1,1,1" for t in (100, 101, 102, 103)]
    rows += ["103,READ,intended,99,99,1,1,999999,1,1,1"]  # intended latency is not the service's
    (tmp_path / "timeseries.csv").write_text("\n".join(rows) + "\n")
    stats = recent(tmp_path, 2)
    assert (stats["first"], stats["last"]) == (101, 103)  # [101, 103): rows 102 and 103
    assert (stats["ops"], stats["errors"], stats["p99_ms"]) == (20, 0, 1.03)
    assert recent(tmp_path, 3)["errors"] == 1
    assert recent(tmp_path / "none", 2) == {"ops": 0, "errors": 0, "error_rate": None, "p99_ms": None,
                                            "first": None, "last": None}
