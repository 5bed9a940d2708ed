"""YCSB on Locust in the background, for as long as an experiment needs load.

    load = Load(cluster.seeds(), run.load_dir, workload="a", users=8, duration=120)
    load.preload()   # the records the run phase reads (a fresh cluster is empty)
    load.start()
    ...              # faults; the steady-state probe asks load.recent(10)
    load.stop()

The load is ``locust -f workloads/ycsb.py --headless`` as a child process in its own
process group, writing into ``results_dir`` (workloads/README.md: timeseries.csv,
summary.csv, the HDR files, and Locust's own ``locust_*.csv``; its log in locust.log).
It dies with this process (PR_SET_PDEATHSIG), and ``stop`` always ends it: SIGINT to the
group, which lets Locust write its summary, then SIGKILL after a grace period.
"""

import atexit
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from cluster.deploy.local import _die_with_parent

REPO = Path(__file__).resolve().parents[1]
LOCUSTFILE = REPO / "workloads" / "ycsb.py"
CSV_PREFIX = "locust"  # Locust's --csv files: locust_stats.csv, locust_failures.csv, ...

# The parent-death signal fires when the *thread* that forked the child exits, so children
# are forked from this one thread, which lives as long as the process, not from the caller's
# (Chaos Toolkit runs background activities on pool threads).
_spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chaos-load-spawner")
_running: set["Load"] = set()


class Load:
    def __init__(self, hosts: list[tuple[str, int]], results_dir: str | Path, workload: str = "a",
                 users: int = 8, target_rate: float = 0.0, duration: float = 600.0, recordcount: int = 1000,
                 props: dict[str, str] | None = None, seed: int | None = None):
        self.hosts = ",".join(f"{host}:{port}" for host, port in hosts)
        self.results_dir = Path(results_dir)
        self.workload, self.users, self.target_rate = workload, users, target_rate
        self.duration, self.recordcount = duration, recordcount
        self.props = dict(props or {})
        self.seed = seed
        self.proc: subprocess.Popen | None = None

    @property
    def failures_csv(self) -> Path:
        """Locust's per-error counts (cumulative, rewritten every second): the recorder reads it."""
        return self.results_dir / f"{CSV_PREFIX}_failures.csv"

    def command(self, phase: str, results_dir: Path, users: int, duration: float) -> list[str]:
        cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
               "-u", str(users), "-r", str(users), "-t", f"{max(1, round(duration))}s",
               "--hosts", self.hosts, "--workload", self.workload, "--phase", phase,
               "--recordcount", str(self.recordcount), "--results-dir", str(results_dir),
               "--csv", str(results_dir / CSV_PREFIX)]
        if phase == "run":
            cmd += ["--operationcount", "0", "--target-rate", str(self.target_rate)]
        if self.seed is not None:
            cmd += ["--seed", str(self.seed)]
        for key, value in self.props.items():
            cmd += ["--prop", f"{key}={value}"]
        return cmd

    def preload(self, timeout: float = 120.0) -> None:
        """Insert the ``recordcount`` records (YCSB's load phase), into ``results_dir/preload``."""
        out = self.results_dir / "preload"
        proc = _spawn(self.command("load", out, self.users, timeout), out)
        try:
            code = proc.wait(timeout)
        finally:
            _end(proc, grace=5.0)
        if code != 0:
            raise RuntimeError(f"YCSB load phase exited with {code}; see {out / 'locust.log'}")

    def start(self) -> "Load":
        """Start the run phase; it ends after ``duration`` or at ``stop``, whichever is first."""
        if self.proc is not None:
            raise RuntimeError("this load is already started")
        self.proc = _spawn(self.command("run", self.results_dir, self.users, self.duration), self.results_dir)
        _running.add(self)
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 15.0) -> int | None:
        """End the run (SIGINT, then SIGKILL after ``grace`` s); Locust's exit code (None if killed)."""
        _running.discard(self)
        if self.proc is None:
            return None
        return _end(self.proc, grace)

    def __enter__(self) -> "Load":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def recent(self, seconds: int = 10) -> dict:
        """``recent(self.results_dir, seconds)``: the steady-state probe's view of the load."""
        return recent(self.results_dir, seconds)


def recent(results_dir: str | Path, seconds: int = 10) -> dict:
    """Operations, errors, error rate and p99 over the last ``seconds`` written seconds.

    The load labels a second by its end (workloads.merged_results.next_second) and writes it
    about 4 s after it ended; the window is ``[first, last)`` in unix seconds, ``last`` being
    the latest label written. p99 is the worst per-second p99 of any operation in the window
    — an upper bound of the window's p99, as only per-second percentiles are written while
    running. With nothing written yet: ops 0, error_rate and p99_ms None.
    """
    path = Path(results_dir) / "timeseries.csv"
    rows = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["timestamp", "kind"])
    rows = rows[rows["kind"] == "service"]
    if rows.empty:
        return {"ops": 0, "errors": 0, "error_rate": None, "p99_ms": None, "first": None, "last": None}
    last = int(rows["timestamp"].max())
    window = rows[rows["timestamp"] > last - seconds]
    ops, errors = int(window["count"].sum()), int(window["errors"].sum())
    return {"ops": ops, "errors": errors, "error_rate": errors / ops if ops else None,
            "p99_ms": float(window["p99_us"].max()) / 1000, "first": last - seconds, "last": last}


def _spawn(cmd: list[str], results_dir: Path) -> subprocess.Popen:
    results_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with open(results_dir / "locust.log", "ab") as log:
        return _spawner.submit(subprocess.Popen, cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env,
                               start_new_session=True, preexec_fn=_die_with_parent).result()


def _end(proc: subprocess.Popen, grace: float) -> int | None:
    """SIGINT to the process group, SIGKILL if it is still there after ``grace`` s."""
    if proc.poll() is None:
        _signal_group(proc, signal.SIGINT)
        try:
            return proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    _signal_group(proc, signal.SIGKILL)  # also any --processes workers left in the group
    code = proc.wait()
    return None if code == -signal.SIGKILL else code


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


@atexit.register
def _stop_all() -> None:
    for load in list(_running):
        load.stop(grace=5.0)
