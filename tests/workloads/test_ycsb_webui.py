"""`locust -f workloads/ycsb.py` with no YCSB option, as a new user types it: Locust's web UI,
driven from headless Chromium, on the embedded cluster (real node processes on loopback).

Only ``--web-host 127.0.0.1 --web-port P`` are added: 8089 may be taken, and nothing here
listens beyond loopback.
"""

import contextlib
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import psutil
import pytest

from tests.browser import Browser, Page, find_chromium
from tests.conftest import wait_until

YCSB = Path(__file__).resolve().parents[2] / "workloads" / "ycsb.py"
LOCUST = Path(sys.executable).with_name("locust")  # the venv's console script, as a user runs it
WAIT = 60.0  # bound of every wait: a starting cluster on a busy 2-core machine

pytestmark = [pytest.mark.skipif(find_chromium() is None, reason="needs chromium (make setup installs it)"),
              pytest.mark.timeout(240)]


@contextlib.contextmanager
def locust_web_ui(run_dir: Path):
    """The bare command in ``run_dir``; yields (process, url). Killed at the end if still running."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with open(run_dir / "locust.log", "wb") as log:
        locust = subprocess.Popen([str(LOCUST), "-f", str(YCSB), "--web-host", "127.0.0.1", "--web-port", str(port)],
                                  cwd=run_dir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: locust.poll() is not None or _listening(port), WAIT, "the web UI listens", poll=0.2)
        assert locust.poll() is None, (run_dir / "locust.log").read_text()[-3000:]
        yield locust, f"http://127.0.0.1:{port}/"
    finally:
        if locust.poll() is None:
            locust.kill()  # its nodes die with it (PR_SET_PDEATHSIG)
        locust.wait()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def nodes_of(locust: subprocess.Popen) -> set[int]:
    """Pids of the embedded cluster's node processes (children of this locust)."""
    try:
        children = psutil.Process(locust.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return set()
    return {child.pid for child in children if "cluster.node.main" in " ".join(_cmdline(child))}


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def running(pids: set[int]) -> set[int]:
    return {pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE}


# -- the page, as a user sees it ----------------------------------------------------------------


def open_form(page: Page) -> dict[str, str]:
    """Wait for the start form, open its "Custom parameters"; returns every field's value."""
    page.wait_for("document.querySelector('input[name=userCount]') !== null")
    page.click_text("form *", "Custom parameters")
    return page.evaluate("Object.fromEntries([...document.querySelectorAll('form input, form select')]"
                         ".map(e => [e.name, e.value]))")


def start_swarm(page: Page, users: int, **fields: str) -> None:
    """Fill the start form (fields by their form names, e.g. workload="c") and press Start."""
    page.type("input[name=userCount]", str(users))
    page.type("input[name=spawnRate]", str(users))
    for name, value in fields.items():
        if page.evaluate(f"document.querySelector('[name={name}]').tagName") == "SELECT":
            page.select(f"select[name={name}]", value)
        else:
            page.type(f"input[name={name}]", value)
    page.click_text("button", "START")


def status(page: Page) -> str:
    """The Status shown in the header bar: READY, SPAWNING, RUNNING, STOPPED."""
    return page.evaluate("""(() => {
        const header = document.querySelector('header');
        const lines = header ? header.innerText.split('\\n').map(s => s.trim()).filter(Boolean) : [];
        return lines[lines.indexOf('Status') + 1] || '';
    })()""")


def requests_by_type(page: Page) -> dict[str, int]:
    """The Statistics tab's table: request type -> # Requests (the Aggregated row left out)."""
    text = page.evaluate("[...document.querySelectorAll('table')].map(t => t.innerText)"
                         ".find(t => t.includes('# Requests')) || ''")
    rows = [line.split("\t") for line in text.splitlines()]
    if not rows:
        return {}
    column = rows[0].index("# Requests")
    return {row[0]: int(row[column]) for row in rows[1:] if row[0]}


# -- results --------------------------------------------------------------------------------------


def results_of(run_dir: Path, name: str) -> Path:
    """The folder whose name ends in ``name`` once its summary is written (at the end of the test)."""
    return wait_until(lambda: next((d for d in (run_dir / "results").glob(f"*{name}")
                                    if (d / "summary.csv").exists()), None), WAIT, f"results/*{name}/summary.csv", poll=0.2)


def assert_per_operation(results: Path, ops: set[str]) -> pd.Series:
    """Rows per operation in the summary and the time series, an .hdr per operation; service counts."""
    summary = pd.read_csv(results / "summary.csv")
    assert set(summary.op) == ops and set(summary.kind) == {"service", "intended"}, summary
    series = pd.read_csv(results / "timeseries.csv")
    assert set(series.op) == ops and series["count"].gt(0).all()
    assert all((results / f"{op}.hdr").exists() for op in ops)
    return summary[summary.kind == "service"].set_index("op")["count"]


# -- tests ------------------------------------------------------------------------------------------


def test_bare_command_serves_the_web_ui_and_runs_tests_from_its_form(tmp_path):
    with locust_web_ui(tmp_path) as (locust, url), Browser() as browser:
        page = browser.open(url)
        form = open_form(page)
        # Our options are in the form, with the bare command's defaults.
        assert form["workload"] == "a" and form["phase"] == "run" and form["targetRate"] == "0"
        assert form["recordcount"] == form["operationcount"] == form["hosts"] == ""
        page.screenshot(tmp_path / "form.png")

        # Test 1, the form as it comes: workload A on a fresh 3-node cluster; its 1000
        # operations done, it stops by itself.
        start_swarm(page, users=4)
        wait_until(lambda: status(page) == "STOPPED" and requests_by_type(page), WAIT, "test 1 stopped by itself", poll=0.2)
        assert set(requests_by_type(page)) == {"READ", "UPDATE"}
        counts = assert_per_operation(results_of(tmp_path, "-ycsb-a"), {"READ", "UPDATE"})
        assert counts.sum() == 1000
        wait_until(lambda: not nodes_of(locust), WAIT, "test 1's cluster stopped", poll=0.2)

        # Test 2 from the form: workload C, no operation limit; stopped from the UI.
        page.click_text("button", "NEW")
        open_form(page)
        start_swarm(page, users=4, workload="c", operationcount="0")
        # (Until the page polls test 2, its table still shows test 1's reads and updates.)
        wait_until(lambda: status(page) == "RUNNING" and requests_by_type(page).keys() == {"READ"},
                   WAIT, "reads, and only reads, counted on the page", poll=0.2)
        nodes = nodes_of(locust)
        assert len(nodes) == 3
        page.screenshot(tmp_path / "running.png")
        page.click_text("button", "STOP")
        wait_until(lambda: status(page) == "STOPPED", WAIT, "test 2 stopped", poll=0.2)
        assert set(requests_by_type(page)) == {"READ"}
        assert_per_operation(results_of(tmp_path, "-ycsb-c-2"), {"READ"})
        wait_until(lambda: not running(nodes), WAIT, "test 2's cluster stopped", poll=0.2)
        assert locust.poll() is None  # by the end of the test, not by Locust exiting

    assert (tmp_path / "running.png").stat().st_size > 10_000  # a rendered page, not a blank one


def test_ctrl_c_during_a_test_writes_its_results_and_stops_its_cluster(tmp_path):
    with locust_web_ui(tmp_path) as (locust, url), Browser() as browser:
        page = browser.open(url)
        open_form(page)
        start_swarm(page, users=2, operationcount="0")
        wait_until(lambda: requests_by_type(page).get("UPDATE", 0) > 0, WAIT, "updates counted on the page", poll=0.2)
        nodes = nodes_of(locust)
        assert len(nodes) == 3
        locust.send_signal(signal.SIGINT)
        assert locust.wait(WAIT) == 0, (tmp_path / "locust.log").read_text()[-3000:]
    assert_per_operation(results_of(tmp_path, "-ycsb-a"), {"READ", "UPDATE"})
    assert not running(nodes)
    log = (tmp_path / "locust.log").read_text()
    # Stopped by Locust before it exited, not killed with it (PR_SET_PDEATHSIG).
    assert "results written to" in log and "embedded cluster stopped" in log, log[-3000:]
