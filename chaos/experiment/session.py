"""One run of an experiment, held for the extension's controls, actions and probes.

`chaos run` calls plain functions, so the parts of a run live here, one run per process:
the results folder, the embedded LocalCluster (or the hosts of an existing cluster), its
fault API, the YCSB load, the safety workload and the recorder. The control starts them
(`begin`) and ends them (`Run.finish`, then `Run.teardown`, which always runs: after the
experiment, in the control's cleanup, and at exit).
"""

import atexit
import json
import logging
import shutil
import signal
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from chaoslib.exceptions import ActivityFailed, InterruptExecution

from chaos.load import Load
from chaos.recorder import Recorder, cluster_nodes
from chaos.report import summary_text, write_report
from chaos.results import RunFolder
from chaos.safety import SafetyWorkload, wait_settled
from cluster.deploy.faults import Faults, FaultWindow
from cluster.deploy.local_cluster import LocalCluster

from .config import Settings

logger = logging.getLogger("chaostoolkit")
NAMESPACE = "test"

_current: "Run | None" = None


def current() -> "Run":
    """The run in progress; ActivityFailed if there is none (the control is missing or failed)."""
    if _current is None:
        raise ActivityFailed("no run in progress: the experiment needs the control chaos.experiment.controls")
    if _current.torn_down:
        raise ActivityFailed("the run has already ended")
    return _current


def active() -> "Run | None":
    """The run in progress, or None."""
    return _current if _current is not None and not _current.torn_down else None


def begin(name: str, settings: Settings, experiment: dict, configuration: dict) -> "Run":
    """Start a run; on failure, tear down what was started and interrupt the experiment."""
    global _current
    if _current is not None and not _current.torn_down:
        raise InterruptExecution("a run is already in progress in this process")
    _current = Run(name, settings, experiment, configuration)
    try:
        _current.start()
    except Exception as exc:
        _current.teardown()
        raise InterruptExecution(f"could not start the run: {type(exc).__name__}: {exc}") from exc
    return _current


def end(journal: dict | None) -> None:
    """Record the run (if one began) and tear it down."""
    if _current is None:
        return
    try:
        _current.finish(journal)
    finally:
        _current.teardown()


def teardown() -> None:
    if _current is not None:
        _current.teardown()


atexit.register(teardown)


@contextmanager
def _no_sigint():
    """Cleanup is bounded; a second Ctrl-C must not cut it short and leave nodes or faults."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class Run:
    def __init__(self, name: str, settings: Settings, experiment: dict, configuration: dict):
        self.name = name
        self.settings = settings
        self.title = experiment.get("title", name)
        self.configuration = dict(configuration or {})
        self.folder: RunFolder | None = None
        self.cluster: LocalCluster | None = None
        self.faults: Faults | None = None
        self.hosts: list[tuple[str, int]] = settings.host_list()
        self.nodes: dict[str, tuple[str, int]] = {f"{h}:{p}": (h, p) for h, p in self.hosts}
        self.load: Load | None = None
        self.safety: SafetyWorkload | None = None
        self.recorder: Recorder | None = None
        self.verdict: dict | None = None
        self.notes: list[str] = []  # lines a probe adds to the printed summary
        self.method_ended = False
        self.quiet_since = time.time()  # the load probes judge only seconds after this
        self.torn_down = False
        self._work_dir: Path | None = None

    # -- start ----------------------------------------------------------------------------

    def start(self) -> None:
        s = self.settings
        self.folder = RunFolder.create(self.name, root=s.results_root(), config=self.config())
        logger.info(f"Run folder: {self.folder.path}")
        if s.embedded:
            self._start_cluster()
        self.folder.write_config(self.config())  # now with the cluster's addresses
        self.load = Load(self.hosts, self.folder.load_dir, workload=s.load_workload, users=s.load_users,
                         target_rate=s.load_target_rate, duration=s.max_run_s, recordcount=s.load_recordcount,
                         seed=s.seed)
        logger.info(f"Preloading {s.load_recordcount} records (YCSB load phase)")
        self.load.preload()
        self.recorder = Recorder(self.nodes, self.folder.path, NAMESPACE, failures_csv=self.load.failures_csv,
                                 load_dir=self.folder.load_dir).start()
        self.safety = SafetyWorkload(self.hosts, NAMESPACE, keys=s.safety_keys, rate=s.safety_rate,
                                     max_duration=s.max_run_s, seed=s.seed, mode=s.safety_mode).start()
        self.load.start()
        self.quiet_since = time.time()
        logger.info(f"Load running: YCSB workload {s.load_workload}, {s.load_users} users, "
                    f"safety workload ({s.safety_mode}) on {s.safety_keys} keys")

    def _start_cluster(self) -> None:
        s = self.settings
        self._work_dir = Path(tempfile.mkdtemp(prefix=f"refcluster-{self.name}-"))
        links = {"links": "proxied", "toxiproxy_url": s.toxiproxy_url or None} if s.links == "proxied" else {}
        kind = LocalCluster
        if s.backend == "docker":  # node containers (docs/docker.md), same arguments
            from cluster.deploy.docker_cluster import DockerCluster as kind
        self.cluster = kind(nodes=s.nodes, rf=s.rf, racks=s.racks, run_dir=self._work_dir,
                            settings=s.node_settings(), **links)
        logger.info(f"Starting the embedded cluster: {s.nodes} nodes, {s.racks} rack(s), rf {s.rf}")
        try:
            self.cluster.start()
        except BaseException:
            self.cluster.stop()
            raise
        self.faults = Faults(self.cluster, toxiproxy_url=s.toxiproxy_url or None, on_window=self._on_window)
        self.hosts = self.cluster.seeds()
        self.nodes = cluster_nodes(self.cluster)

    def config(self) -> dict:
        cluster = None
        if self.cluster is not None:
            cluster = {spec.name: {"address": f"{self.cluster.host(spec.port)}:{spec.port}", "rack": spec.rack}
                       for spec in self.cluster.specs}
        return {"experiment": self.name, "title": self.title, "settings": self.settings.as_dict(),
                "configuration": self.configuration, "cluster": cluster, "hosts": [f"{h}:{p}" for h, p in self.hosts]}

    def _on_window(self, window: FaultWindow) -> None:
        self.folder.add_fault(window)
        if window.end is not None and not self.faults.active():
            self.quiet_since = max(self.quiet_since, window.end)

    # -- during ---------------------------------------------------------------------------

    def require_faults(self) -> Faults:
        if self.faults is None:
            raise ActivityFailed("process faults need the embedded cluster; this run uses hosts="
                                 f"{self.settings.hosts} (load, safety and probes only)")
        return self.faults

    def faults_active(self) -> bool:
        return self.faults is not None and bool(self.faults.active())

    def check_safety(self) -> dict:
        """Stop the safety workload, wait for the cluster to settle, read everything back (once)."""
        if self.verdict is None:
            self.safety.stop()
            wait_settled(self.hosts, self.settings.settle_timeout_s)
            self.verdict = self.safety.check()
            self.folder.write_safety(self.verdict)
        return self.verdict

    # -- end ------------------------------------------------------------------------------

    def finish(self, journal: dict | None) -> None:
        """Stop the workloads and write the rest of the run folder: journal, safety, timeline,
        report; print the summary."""
        if self.folder is None:
            return
        cut_short = self.torn_down or (journal or {}).get("status") == "interrupted"
        if self.verdict is None and self.safety is not None and not cut_short:
            try:
                self.check_safety()
            except Exception as exc:  # the run's own outcome matters more than this verdict
                logger.warning(f"No safety verdict: {type(exc).__name__}: {exc}")
        self._stop_workloads()
        if journal is not None:
            (self.folder / "journal.json").write_text(json.dumps(journal, indent=2, default=str) + "\n")
        report = None
        try:
            report = write_report(self.folder.path)
        except Exception as exc:
            logger.warning(f"No report: {type(exc).__name__}: {exc}")
        print(f"\n{summary_text(self.folder)}")
        for note in self.notes:
            print(note)
        print(f"results: {self.folder.path}")
        if report is not None:
            print(f"report: {report}")

    def _stop_workloads(self) -> None:
        # the load first, so that the timeline the recorder writes has its last seconds
        for step in (self._stop_load, self._stop_safety, self._stop_recorder):
            try:
                step()
            except Exception as exc:
                logger.warning(f"While stopping: {type(exc).__name__}: {exc}")

    def _stop_load(self) -> None:
        if self.load is not None:
            self.load.stop(grace=10.0)

    def _stop_safety(self) -> None:
        if self.safety is not None:
            self.safety.close()

    def _stop_recorder(self) -> None:
        if self.recorder is not None:
            recorder, self.recorder = self.recorder, None
            recorder.stop()

    def teardown(self) -> None:
        """Leave nothing running: workloads, fault watchers, the embedded cluster (node logs
        are kept in the run folder under nodes/). Idempotent."""
        if self.torn_down:
            return
        self.torn_down = True
        with _no_sigint():
            self._stop_workloads()
            if self.faults is not None:
                self.faults.close()
            if self.cluster is not None:
                self.cluster.stop()
            if self._work_dir is not None:
                if self.folder is not None:
                    for log in self._work_dir.glob("*/node.log"):
                        (self.folder / "nodes").mkdir(exist_ok=True)
                        shutil.copy(log, self.folder / "nodes" / f"{log.parent.name}.log")
                shutil.rmtree(self._work_dir, ignore_errors=True)
