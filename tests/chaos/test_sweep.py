"""python -m chaos.sweep: the grid and its checks, and a real scaled-down 2x2 sweep of
rack_breaker through the chaos CLI that is bounded, Ctrl-C'd and resumed on the way (the
notebook tests read the same sweep)."""

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from chaos.sweep import Spec

REPO = Path(__file__).resolve().parents[2]
SWEEP = [sys.executable, "-m", "chaos.sweep"]
SCALED = ["--var", "window_s=5", "--var", "load_recordcount=300", "--var", "load_users=2", "--var", "repair_s=2"]
GRID = ["--grid", "migrate-threads=1,4", "--grid", "migrate_sleep_us=0,2000"]
RUN_FILES = ["journal.json", "config.json", "timeline.csv", "faults.csv", "safety.json", "report.html"]


def sweep_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*SWEEP, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def read_index(sweep_dir: Path) -> list[dict]:
    with (sweep_dir / "index.csv").open(newline="") as src:
        return list(csv.DictReader(src))


# -- the grid ---------------------------------------------------------------------------------

def test_runs_repeat_the_whole_grid_and_settings_become_chaos_vars(tmp_path):
    spec = Spec("chaos/partition_heal.yaml", {"migrate_threads": ["1", "4"], "service.migrate-max-num-incoming": ["8"]},
                {"repair_s": "5", "node_config": "service.proto-fd-max=100"}, repeat=2)
    runs = spec.runs()
    assert [(r["run_id"], r["repetition"], r["settings"]["migrate_threads"]) for r in runs] == [
        ("r1", 1, "1"), ("r2", 1, "4"), ("r3", 2, "1"), ("r4", 2, "4")]
    args = spec.chaos_vars(runs[1]["settings"], tmp_path)
    assert args == ["--var", "repair_s=5", "--var", "migrate_threads=4",
                    "--var", "node_config=service.proto-fd-max=100;service.migrate-max-num-incoming=8",
                    "--var", f"results_dir={tmp_path}"]


def test_keys_the_experiment_would_ignore_are_refused(tmp_path):
    out = sweep_cli("chaos/rack_breaker.yaml", "--grid", "migrate_treads=1,4", "--dir", str(tmp_path / "s"))
    assert out.returncode == 1 and "migrate_treads: not in rack_breaker.yaml's configuration" in out.stderr
    assert not (tmp_path / "s").exists()
    out = sweep_cli("chaos/rack_breaker.yaml", "--var", "results_dir=elsewhere")
    assert out.returncode == 1 and "results_dir: the sweep sets it" in out.stderr
    out = sweep_cli("chaos/no_such.yaml")
    assert out.returncode == 1 and "no such experiment" in out.stderr


def test_a_node_setting_goes_through_node_config_and_the_bound_stops_before_a_run(tmp_path):
    sweep_dir = tmp_path / "s"
    out = sweep_cli("chaos/partition_heal.yaml", "--grid", "migrate-max-num-incoming=2,8", "--max-minutes", "0",
                    "--dir", str(sweep_dir))
    assert out.returncode == 2 and "stopping: --max-minutes 0 reached" in out.stdout, out
    assert json.loads((sweep_dir / "sweep.json").read_text())["grid"] == {"service.migrate-max-num-incoming": ["2", "8"]}
    assert not (sweep_dir / "runs").exists()
    # the same folder for another grid: refused, not mixed
    out = sweep_cli("chaos/partition_heal.yaml", "--grid", "migrate_threads=1,2", "--dir", str(sweep_dir))
    assert out.returncode == 1 and "holds another sweep" in out.stderr


# -- a real sweep, shared with test_notebooks -------------------------------------------------

_made: dict = {}


def small_sweep(tmp_path_factory) -> dict:
    """The scaled 2x2 rack_breaker sweep, made once per session: a --max-minutes bound stops
    it after r1; resumed, it is Ctrl-C'd during r2; resumed again, it finishes."""
    if "sweep" not in _made:
        try:
            _made["sweep"] = _make_sweep(tmp_path_factory.mktemp("sweep") / "sweep")
        except BaseException as exc:
            _made["sweep"] = exc
    if isinstance(_made["sweep"], BaseException):
        raise _made["sweep"]
    return _made["sweep"]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as a shell starts a command


def _make_sweep(sweep_dir: Path) -> dict:
    made: dict = {"dir": sweep_dir}
    started = time.monotonic()
    made["bounded"] = sweep_cli("chaos/rack_breaker.yaml", *GRID, *SCALED, "--max-minutes", "0.4",
                                "--dir", str(sweep_dir), timeout=240)
    made["after_bound"] = read_index(sweep_dir)

    log = sweep_dir.parent / "interrupted.out"
    with log.open("w") as out:
        proc = subprocess.Popen([*SWEEP, "--resume", str(sweep_dir)], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_default_sigint)
    seen: dict[int, psutil.Process] = {}
    watcher = threading.Thread(target=_collect, args=(proc, seen), daemon=True)
    watcher.start()
    deadline = time.monotonic() + 120
    while not list(sweep_dir.glob("runs/r2/*/cluster.csv")):  # r2's cluster is up and recorded
        assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
        time.sleep(0.5)
    time.sleep(3)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the sweep's terminal
    made["interrupted_code"] = proc.wait(240)
    watcher.join()
    made["interrupted_out"] = log.read_text()
    made["alive_after_interrupt"] = [p for p in seen.values() if p.is_running() and p.status() != "zombie"]
    made["after_interrupt"] = read_index(sweep_dir)

    made["resumed"] = sweep_cli("--resume", str(sweep_dir), timeout=420)
    made["seconds"] = time.monotonic() - started
    return made


def _collect(proc: subprocess.Popen, seen: dict) -> None:
    while proc.poll() is None:
        try:
            for child in psutil.Process(proc.pid).children(recursive=True):
                seen.setdefault(child.pid, child)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_sweep_bounded_interrupted_and_resumed_ends_complete(tmp_path_factory):
    made = small_sweep(tmp_path_factory)
    sweep_dir = made["dir"]
    bounded = made["bounded"]
    assert bounded.returncode == 2 and "stopping: --max-minutes 0.4 reached" in bounded.stdout, bounded
    assert "[1/4] r1 migrate_threads=1 migrate_sleep_us=0 repetition 1" in bounded.stdout
    assert "3 runs left, about" in bounded.stdout  # progress: runs and time left
    assert [(r["run_id"], r["status"]) for r in made["after_bound"]] == [("r1", "completed")]

    assert made["interrupted_code"] == 130, made["interrupted_out"]
    assert "sweep stopped by a signal" in made["interrupted_out"]
    assert [(r["run_id"], r["status"]) for r in made["after_interrupt"]] == [("r1", "completed"), ("r2", "interrupted")]
    assert made["alive_after_interrupt"] == []  # chaos rolled back: no node, no Locust left

    resumed = made["resumed"]
    assert resumed.returncode == 0, resumed
    assert "4 runs (1 already done), 3 to go" in resumed.stdout
    assert (sweep_dir / "runs" / "r2.unfinished-1").is_dir()  # the cut-short attempt, set aside
    r1 = made["after_bound"][0]
    assert read_index(sweep_dir)[0] == r1  # r1 was not run again


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_index_lists_every_run_with_the_settings_it_ran_with(tmp_path_factory):
    sweep_dir = small_sweep(tmp_path_factory)["dir"]
    rows = read_index(sweep_dir)
    assert [(r["run_id"], r["repetition"], r["migrate_threads"], r["migrate_sleep_us"]) for r in rows] == [
        ("r1", "1", "1", "0"), ("r2", "1", "1", "2000"), ("r3", "1", "4", "0"), ("r4", "1", "4", "2000")]
    for row in rows:
        assert (row["status"], row["exit_code"]) == ("completed", "0"), row
        folder = sweep_dir / row["run_folder"]
        assert folder.parent == sweep_dir / "runs" / row["run_id"]
        assert all((folder / name).exists() for name in RUN_FILES), sorted(p.name for p in folder.iterdir())
        config = json.loads((folder / "config.json").read_text())
        assert (config["settings"]["migrate_threads"], config["settings"]["migrate_sleep_us"]) == (
            int(row["migrate_threads"]), int(row["migrate_sleep_us"]))
        assert config["configuration"]["repair_s"] == 2  # the fixed --var reached it too
        assert float(row["duration_s"]) > 10
