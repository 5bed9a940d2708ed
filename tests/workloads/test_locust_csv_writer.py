"""Locust's CSV writer greenlet outliving close_files (workloads/locust_csv_writer.py), with the
real Locust classes, in a subprocess: importing Locust monkey-patches the process for gevent."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

RACE = """
import json, sys
import gevent
from locust import stats
from locust.env import Environment
from workloads import locust_csv_writer

if sys.argv[1] == "patched":
    locust_csv_writer.end_quietly_when_closed()
environment = Environment()
environment.create_local_runner()
writer = stats.StatsCSVFileWriter(environment, stats.PERCENTILES_TO_REPORT, sys.argv[2])
loop = gevent.spawn(writer.stats_writer)
gevent.sleep(0.1)  # it wrote once and sleeps for CSV_STATS_INTERVAL_SEC
writer.close_files()  # what Locust's shutdown does
gevent.sleep(stats.CSV_STATS_INTERVAL_SEC + 0.5)  # the exit handlers yielding to the hub
print(json.dumps({"dead": loop.dead, "error": repr(loop.exception) if loop.exception else None}))
"""


def run_race(mode: str, tmp_path) -> dict:
    result = subprocess.run([sys.executable, "-c", RACE, mode, str(tmp_path / "locust")], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_the_writer_ends_quietly_when_locust_closes_its_files(tmp_path):
    unpatched = run_race("unpatched", tmp_path)
    if unpatched["error"] is None:
        pytest.skip("this Locust no longer writes to closed files: workloads/locust_csv_writer.py can go")
    assert "closed file" in unpatched["error"]
    assert run_race("patched", tmp_path) == {"dead": True, "error": None}
