"""The background load never outlives its owner: a real Locust started by a process that is
then SIGKILLed goes with it."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil

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
