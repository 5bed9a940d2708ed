"""The experiments through the real `chaos` CLI: real node processes, real Locust, durations
scaled down. Each run goes to its own results folder under tmp_path; every process the run
started (nodes, Locust) is collected while it runs and must be gone when `chaos` exits."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from chaos.experiment import actions, probes
from chaos.results import RunFolder
from tests.browser import Browser, find_chromium

REPO = Path(__file__).resolve().parents[2]
CHAOS = str(Path(sys.executable).with_name("chaos"))
NEGATIVE = Path(__file__).with_name("experiments") / "wiped_disk_rf1.yaml"
SCALED = ["--var", "window_s=5", "--var", "load_recordcount=300", "--var", "load_users=2"]
RUN_FILES = ["journal.json", "config.json", "timeline.csv", "faults.csv", "safety.json", "report.html"]


def _default_sigint() -> None:
    """A shell starts a command with SIGINT at its default; a test runner started in the
    background may pass it on ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class ChaosRun:
    """`chaos run` in its own session (so that a test can Ctrl-C it as a terminal would),
    with every descendant process recorded while it runs."""

    def __init__(self, experiment: str, tmp_path: Path, *args: str, cwd: Path = REPO):
        self.results = tmp_path / "results"
        self.log = tmp_path / "chaos.out"
        command = [CHAOS, "--no-version-check", "--log-file", str(tmp_path / "chaostoolkit.log"), "run", experiment,
                   "--journal-path", str(tmp_path / "journal.json"), "--var", f"results_dir={self.results}", *args]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=_default_sigint)
        self.descendants: dict[int, psutil.Process] = {}
        self._watch = threading.Thread(target=self._collect, daemon=True)
        self._watch.start()

    def _collect(self) -> None:
        while self.proc.poll() is None:
            try:
                for child in psutil.Process(self.proc.pid).children(recursive=True):
                    self.descendants.setdefault(child.pid, child)
            except psutil.NoSuchProcess:
                break
            time.sleep(0.2)

    def wait(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise
        self._watch.join()
        return code

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def folder(self) -> RunFolder:
        folders = list(self.results.iterdir())
        assert len(folders) == 1, folders
        return RunFolder(folders[0])

    def leftovers(self, grace: float = 5.0) -> list[str]:
        """Processes of the run still alive (``is_running`` also guards against pid reuse)."""
        deadline = time.monotonic() + grace
        while True:
            alive = [p for p in self.descendants.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
            if not alive or time.monotonic() >= deadline:
                return [" ".join(p.cmdline()[:4]) for p in alive]
            time.sleep(0.2)


def run_experiment(experiment: str, tmp_path: Path, *args: str, cwd: Path = REPO, timeout: float = 240) -> tuple:
    run = ChaosRun(experiment, tmp_path, *args, cwd=cwd)
    code = run.wait(timeout)
    assert run.descendants, "the run started no process"
    assert not run.leftovers(), run.output()[-3000:]
    return run, code


def hypothesis_probes(journal: dict, when: str) -> dict[str, dict]:
    return {p["activity"]["name"]: p for p in journal["steady_states"][when]["probes"]}


def method_runs(journal: dict) -> dict[str, dict]:
    return {r["activity"]["name"]: r for r in journal["run"]}


def assert_complete(run: ChaosRun, code: int, kinds: list[str], lossless: bool = True) -> RunFolder:
    """Exit 0, every file, the hypothesis met before and after, every method step and rollback
    succeeded, these fault windows (ended), the summary printed, and the report renders with
    its plots; `lossless`: the safety workload lost nothing."""
    out = run.output()
    assert code == 0, out[-4000:]
    folder = run.folder()
    for name in RUN_FILES:
        assert (folder / name).exists(), name
    journal = folder.journal()
    assert journal["status"] == "completed" and journal["deviated"] is False
    for when in ("before", "after"):
        assert journal["steady_states"][when]["steady_state_met"], journal["steady_states"][when]
        assert all(p["tolerance_met"] for p in journal["steady_states"][when]["probes"])
    assert all(r["status"] == "succeeded" for r in journal["run"]), [r.get("exception") for r in journal["run"]]
    assert journal["rollbacks"] and all(r["status"] == "succeeded" for r in journal["rollbacks"])
    faults = folder.faults()
    assert [f.kind for f in faults] == kinds and all(f.end is not None for f in faults), faults
    safety = folder.safety()
    assert safety["counts"]["writes"]["ok"] > 100 and safety["counts"]["failed_visible"] == 0
    if lossless:
        assert safety["valid"] and safety["counts"]["lost"] == 0
        assert hypothesis_probes(journal, "after")["no-acknowledged-write-lost"]["output"] == 0
        assert "safety: valid: 0 acknowledged writes lost" in out
    nodes = folder.config()["settings"]["nodes"]
    timeline = folder.timeline()
    assert timeline["ops"].sum() > 0 and timeline["nodes_up"].max() == nodes
    assert timeline["cluster_size_min"].iloc[-1] == nodes
    # the printed summary: the experiment's outcome, each fault's numbers, the report's path
    assert "experiment: status completed, deviated False" in out
    assert all(f"fault {kind} " in out for kind in kinds)
    assert f"report: {folder / 'report.html'}" in out
    assert_report_renders(folder)
    return folder


def assert_report_renders(folder: RunFolder) -> None:
    if find_chromium() is None:
        pytest.skip("needs chromium")
    with Browser() as browser:
        page = browser.open(folder / "report.html")
        sizes = page.evaluate("[...document.querySelectorAll('.plot svg')].map(s => s.getBoundingClientRect().height)")
        lines = page.evaluate("document.querySelectorAll('.plot svg path').length")
        text = page.evaluate("document.body.innerText")
    assert len(sizes) == 6 and all(h > 100 for h in sizes), sizes
    assert lines > 50  # axes, curves and the shaded fault: drawn, not empty panels
    assert "Hypothesis" in text and "status completed, deviated false" in text.lower()
    assert f"Safety: {'valid' if folder.safety()['valid'] else 'INVALID'}" in text  # the verdict safety.json has


def test_rack_breaker_from_the_repository_root(tmp_path):
    run, code = run_experiment("chaos/rack_breaker.yaml", tmp_path, *SCALED, "--var", "repair_s=2")
    folder = assert_complete(run, code, ["kill_rack"])
    assert folder.faults()[0].targets == ("n2", "n4")  # rack 1 of 4 nodes over 2 racks
    journal = folder.journal()
    method = {r["activity"]["name"]: r for r in journal["run"]}
    assert method["full-replication-without-the-rack"]["output"] == 0  # RF 2 restored inside rack 0
    config = folder.config()
    assert config["configuration"]["repair_s"] == 2 and config["settings"]["racks"] == 2
    timeline = folder.timeline()
    assert 2 in set(timeline["n1.cluster_size"]) and timeline["cluster_size_min"].iloc[-1] == 4  # n1 in rack 0


def test_node_pause_from_the_chaos_directory(tmp_path):
    run, code = run_experiment("node_pause.yaml", tmp_path, *SCALED, "--var", "pause_s=3", cwd=REPO / "chaos")
    folder = assert_complete(run, code, ["pause"])
    assert folder.faults()[0].end - folder.faults()[0].start == pytest.approx(3, abs=0.5)
    timeline = folder.timeline()
    assert 2 in set(timeline["n1.cluster_size"])  # n2 evicted while frozen longer than the heartbeat timeout
    assert timeline["cluster_size_min"].iloc[-1] == 3
    assert not (REPO / "chaos" / "journal.json").exists()


def test_negative_control_rf1_and_a_wiped_disk_loses_writes_and_fails(tmp_path):
    run, code = run_experiment(str(NEGATIVE), tmp_path)
    out = run.output()
    assert code == 1, out[-3000:]
    folder = run.folder()
    journal = folder.journal()
    assert journal["status"] == "completed" and journal["deviated"] is True
    after = hypothesis_probes(journal, "after")
    assert after["no-acknowledged-write-lost"]["tolerance_met"] is False
    assert after["no-acknowledged-write-lost"]["output"] > 0
    safety = folder.safety()
    assert not safety["valid"] and safety["counts"]["lost"] == after["no-acknowledged-write-lost"]["output"]
    assert re.search(r"safety: INVALID: [1-9]\d* acknowledged writes lost", out)
    assert [f.kind for f in folder.faults()] == ["kill", "restart"]


def test_ctrl_c_mid_method_restores_and_leaves_nothing(tmp_path):
    run = ChaosRun("chaos/rack_breaker.yaml", tmp_path, *SCALED, "--var", "repair_s=120")
    deadline = time.monotonic() + 120
    while not (run.results.exists() and any(run.results.glob("*/faults.csv"))):  # the rack is down
        assert run.proc.poll() is None and time.monotonic() < deadline, run.output()[-3000:]
        time.sleep(0.2)
    time.sleep(3)  # into the repair window
    os.killpg(run.proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    code = run.wait(60)  # not the 120 s repair window
    assert code == 1, run.output()[-3000:]
    assert not run.leftovers(), run.output()[-3000:]
    folder = run.folder()
    journal = folder.journal()
    assert journal["status"] == "interrupted"
    assert [r["activity"]["name"] for r in journal["rollbacks"]] == ["restore-the-cluster"]
    faults = folder.faults()
    assert [f.kind for f in faults] == ["kill_rack"] and faults[0].end is not None  # undone, not left
    assert (folder / "report.html").exists() and (folder / "timeline.csv").exists()


def test_bad_configuration_stops_the_run_with_a_one_line_reason(tmp_path):
    run = ChaosRun("chaos/node_pause.yaml", tmp_path, "--var", "nodes=three")
    assert run.wait(60) == 1
    assert not run.leftovers()
    assert "configuration nodes: expected int, got 'three'" in run.output()
    assert not run.results.exists() or not any(run.results.iterdir())


def test_chaos_discover_lists_every_action_and_probe(tmp_path):
    path = tmp_path / "discovery.json"
    subprocess.run([CHAOS, "--no-version-check", "--no-log-file", "discover", "--no-install", "--no-system-info",
                    "refcluster", "--discovery-path", str(path)], cwd=tmp_path, check=True, timeout=60)
    discovery = json.loads(path.read_text())
    assert discovery["extension"]["name"] == "refcluster"
    found = {(a["type"], a["name"]) for a in discovery["activities"]}
    assert found == {("action", n) for n in actions.__all__} | {("probe", n) for n in probes.__all__}
    pause = next(a for a in discovery["activities"] if a["name"] == "pause_node")
    assert [(a["name"], a["type"]) for a in pause["arguments"]] == [("node", "string"), ("seconds", "number")]
