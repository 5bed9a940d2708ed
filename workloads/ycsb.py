"""YCSB core workloads as a Locust test against our cluster (or any Aerospike cluster).

    locust -f workloads/ycsb.py          # web UI on :8089, workload A on an embedded cluster
    locust -f workloads/ycsb.py --headless -u 16 -t 30s --workload a --csv results/a/locust --results-dir results/a

Without ``--hosts`` each test (each start from the web UI) gets a fresh embedded
``LocalCluster``, started when the test starts (in the master, or in the only process of a
local run) and stopped when it ends; its run phase first loads the records, since a fresh
cluster is empty. See workloads/README.md.

Roles. The *owner* (master, or the local process) holds each test's results folder and
embedded cluster. Every process that runs users (each worker, or the local process) drives
its share of the workload: worker ``i`` of ``n`` inserts its own slice of the key space and
runs ``operationcount / n`` transactions (``CoreWorkload`` explains the partitioning), sends
its per-second histogram snapshots to the owner (``MergedResults``), says when its share is
done, and when it has stopped; the owner stops the test once every worker is done, and ends
it (results written, cluster stopped) once every worker has stopped.
"""

import dataclasses
import json
import logging
import random
import time

import gevent
from gevent.pool import Pool
from locust import User, constant, events, stats, task
from locust.exception import StopUser
from locust.runners import STATE_SPAWNING, MasterRunner, WorkerRunner

from cluster.client import Client
from cluster.deploy.local_cluster import LocalCluster
from workloads import locust_csv_writer, locust_options
from workloads.aerospike_binding import AerospikeDB, failure_name
from workloads.core_workload import OK, CoreWorkload, load_slice
from workloads.measure import MeasuredDB, Measurements, RateSchedule
from workloads.merged_results import MergedResults, next_second
from workloads.properties import PropertyError

log = logging.getLogger("ycsb")
locust_csv_writer.end_quietly_when_closed()

SNAPSHOT_MESSAGE, DONE_MESSAGE, STOPPED_MESSAGE = "ycsb-snapshot", "ycsb-done", "ycsb-stopped"
PRELOAD_CONCURRENCY = 16
DEFAULT_TIMEOUT_MS = 1000  # our client's total_timeout; YCSB's as.timeout (10 s) would hide failovers


def _client(opts, seeds, max_conns: int, props) -> tuple[Client, AerospikeDB]:
    timeout_ms = int(props.extra.get("as.timeout", DEFAULT_TIMEOUT_MS))
    client = Client({"hosts": seeds, "max_conns_per_node": max_conns,
                     "policies": {"total_timeout": timeout_ms}}).connect()
    return client, AerospikeDB(client, opts.namespace, opts.set_name or None)


def _stop_or_quit(environment) -> None:
    """End the test the way Locust's StopTest does: quit when headless, else back to the UI."""
    if environment.parsed_options.headless:
        environment.runner.quit()
    else:
        environment.runner.stop()


def _give_up(environment, message: str) -> None:
    log.error("%s", message)
    environment.process_exit_code = 2
    gevent.spawn(_stop_or_quit, environment)


class Owner:
    """The results folder and the embedded cluster of the current test of this Locust run.

    A test ends (results written, cluster stopped) once it has stopped here *and* every
    driver has reported its last snapshot, in either order: when Locust quits, a master
    stops before its workers; when the web UI stops a test, after them.
    """

    def __init__(self) -> None:
        self.results: MergedResults | None = None
        self.cluster: LocalCluster | None = None
        self._flusher: gevent.Greenlet | None = None
        self._ending: gevent.Greenlet | None = None
        self._tests = 0
        self._drivers = self._workers_done = self._drivers_stopped = 0
        self._stopped = False
        self._locust_csv = False

    def register(self, environment) -> None:
        environment.runner.register_message(SNAPSHOT_MESSAGE, self._on_snapshot)
        environment.runner.register_message(DONE_MESSAGE, self._on_done)
        environment.runner.register_message(STOPPED_MESSAGE, self._on_driver_stopped)

    def start(self, environment) -> None:
        self._end_now()  # a test whose drivers never all reported (one failed, or died)
        opts, runner = environment.parsed_options, environment.runner
        props = locust_options.properties(opts)
        self._tests += 1
        self._locust_csv = bool(opts.csv_prefix)
        # Sent to the workers with their spawn message (Locust forwards custom options).
        opts.ycsb_workers = runner.worker_count if isinstance(runner, MasterRunner) else 1
        opts.ycsb_users = runner.target_user_count
        self._drivers, self._workers_done, self._drivers_stopped = opts.ycsb_workers, 0, 0
        self._stopped = False
        opts.ycsb_hosts = opts.hosts or self._start_cluster(opts, props)
        self.results = MergedResults(locust_options.results_dir(opts, self._tests))
        self._flusher = gevent.spawn(self._flush_every_second)
        self._write_run_file(opts, props)
        log.info("test %d: results in %s", self._tests, self.results.results_dir)

    def _start_cluster(self, opts, props) -> str:
        started = time.monotonic()
        self.cluster = LocalCluster(nodes=opts.embedded_nodes, rf=opts.embedded_rf)
        self.cluster.start()  # held before starting, so that ending the test stops a half-started cluster
        hosts = ",".join(f"{host}:{port}" for host, port in self.cluster.seeds())
        log.info("embedded cluster of %d node(s) at %s in %.1f s",
                 opts.embedded_nodes, hosts, time.monotonic() - started)
        if opts.phase == "run":
            _preload(opts, props, self.cluster.seeds())
        return hosts

    def _write_run_file(self, opts, props) -> None:
        run = {
            "workload": locust_options.workload_label(opts), "phase": opts.phase, "hosts": opts.ycsb_hosts,
            "embedded": None if self.cluster is None else {"nodes": opts.embedded_nodes, "rf": opts.embedded_rf},
            "workers": opts.ycsb_workers, "users": opts.ycsb_users, "target_rate": opts.target_rate,
            "seed": locust_options.seed(opts), "locust_csv_prefix": opts.csv_prefix,
            "properties": dataclasses.asdict(props),
        }
        (self.results.results_dir / "run.json").write_text(json.dumps(run, indent=2, default=str))

    def _on_snapshot(self, environment, msg) -> None:
        if self.results is not None:  # else a straggler of a test that has ended
            self.results.add(msg.data["second"], msg.data["ops"])

    def _on_done(self, environment, msg) -> None:
        self._workers_done += 1
        if self._workers_done == self._drivers:
            log.info("every worker finished its share of the workload")
            gevent.spawn(_stop_or_quit, environment)

    def _on_driver_stopped(self, environment, msg) -> None:
        self._drivers_stopped += 1
        self._end_if_over()

    def test_stopped(self) -> None:
        self._stopped = True
        self._end_if_over()

    def _end_if_over(self) -> None:
        if self._stopped and self._drivers_stopped >= self._drivers:
            # Not in this greenlet: it may be the master's message loop or the web UI's /stop.
            self._ending = gevent.spawn(self._end_test)

    def _end_test(self) -> None:
        results, cluster, flusher = self.results, self.cluster, self._flusher
        self.results = self.cluster = self._flusher = None  # taken before yielding: ends once
        if flusher is not None:
            flusher.kill()
        if results is not None:
            results.finish()
            log.info("results written to %s", results.results_dir)
        if cluster is not None:
            cluster.stop()
            log.info("embedded cluster stopped")

    def _end_now(self) -> None:
        """End the current test here, or wait for the greenlet already ending it."""
        self._end_test()
        if self._ending is not None:
            self._ending.join()

    def _flush_every_second(self) -> None:
        while True:
            gevent.sleep(1.0)
            self.results.flush(time.time())

    def quit(self) -> None:
        if self._locust_csv:
            # Locust rewrites its --csv files once a second and not at exit, so the last
            # second (often all of a short run) would be missing: let it write once more.
            gevent.sleep(stats.CSV_STATS_INTERVAL_SEC + 0.2)
        self._end_now()


def _preload(opts, props, seeds) -> None:
    """Insert every record before the run phase of a fresh embedded cluster (not measured)."""
    started = time.monotonic()
    workload = CoreWorkload(props, random.Random(locust_options.seed(opts)))
    client, db = _client(opts, seeds, PRELOAD_CONCURRENCY, props)
    failed: list = []

    def insert_all() -> None:
        while (transaction := workload.do_insert(db)) is not None:
            if not transaction.ok:
                failed.append(transaction.status)

    pool = Pool(PRELOAD_CONCURRENCY)
    for _ in range(PRELOAD_CONCURRENCY):
        pool.spawn(insert_all)
    pool.join(raise_error=True)
    client.close()
    if failed:
        raise RuntimeError(f"preload: {len(failed)} inserts failed, first: {failure_name(failed[0])}")
    log.info("preloaded %d records in %.1f s", len(workload.load_range), time.monotonic() - started)


class Driver:
    """This process's share of the workload, shared by its users (greenlets)."""

    def __init__(self) -> None:
        self.db: AerospikeDB | None = None

    def start(self, environment) -> None:
        opts, runner = environment.parsed_options, environment.runner
        props = locust_options.properties(opts)
        worker, workers = (runner.worker_index, opts.ycsb_workers) if isinstance(runner, WorkerRunner) else (0, 1)
        if not 0 <= worker < workers:
            raise RuntimeError(f"worker index {worker} outside the {workers} workers the test started with")
        self.runner = runner
        seed = locust_options.seed(opts)
        self.workload = CoreWorkload(props, random.Random(None if seed is None else seed + worker), worker, workers)
        self.step = self.workload.do_insert if opts.phase == "load" else self.workload.do_transaction
        # Run phase: this worker's share of operationcount (0 = until the run time ends).
        share = len(load_slice(0, props.operationcount, worker, workers))
        self.remaining = share if opts.phase == "run" and props.operationcount else None
        self.client, self.db = _client(opts, locust_options.parse_hosts(opts.ycsb_hosts), max(opts.ycsb_users or 0, 1), props)
        self.target = f"{opts.namespace}.{opts.set_name or props.table}"
        self.events = environment.events
        self.measurements = Measurements(listeners=[self._fire_request])
        self.schedule = RateSchedule(opts.target_rate, time.perf_counter(), workers, worker) if opts.target_rate else None
        self.in_flight = 0
        self.exhausted = self.reported_done = False
        self._sender = gevent.spawn(self._send_every_second)
        log.info("worker %d of %d, phase %s, load keys %s", worker, workers, opts.phase, self.workload.load_range)

    def _fire_request(self, op: str, service: float, intended: float, status) -> None:
        self.events.request.fire(
            request_type=op, name=self.target, response_time=service * 1000.0, response_length=0,
            exception=None if status == OK else failure_name(status), context={},
        )

    def claim(self) -> bool:
        """Take one transaction from the budget; False once it is spent."""
        if self.remaining is None:
            return True
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True

    def intended_start(self) -> float | None:
        """With a target rate, wait for the next slot of the schedule and return it."""
        if self.schedule is None:
            return None
        start = self.schedule.next_start()
        delay = start - time.perf_counter()
        if delay > 0:
            gevent.sleep(delay)
        return start

    def finish_user(self) -> None:
        """A user found the workload exhausted; the last one out tells the owner."""
        self.exhausted = True
        if self.in_flight == 0 and not self.reported_done:
            self.reported_done = True
            self.runner.send_message(DONE_MESSAGE)
        raise StopUser

    def _send_every_second(self) -> None:
        while True:
            second = next_second(time.time())
            gevent.sleep(max(0.0, second - time.time()))
            self._send_snapshot(second)

    def _send_snapshot(self, second: int) -> None:
        snapshot = self.measurements.take_snapshot()
        if snapshot:
            self.runner.send_message(SNAPSHOT_MESSAGE, {"second": second, "ops": snapshot})

    def stop(self, runner) -> None:
        """After the users stopped: the last partial second, let go of the cluster, tell the owner."""
        if self.db is not None:
            self._sender.kill()
            self._send_snapshot(next_second(time.time()))
            self.client.close()
            self.db = None
        runner.send_message(STOPPED_MESSAGE)


owner, driver = Owner(), Driver()


@events.init_command_line_parser.add_listener
def _add_options(parser, **_kwargs) -> None:
    locust_options.add_arguments(parser)


@events.init.add_listener
def _on_init(environment, runner, **_kwargs) -> None:
    # Workers get their options from the master with the first spawn message.
    if environment.parsed_options is None or isinstance(runner, WorkerRunner):
        return
    try:
        locust_options.properties(environment.parsed_options)
        locust_options.parse_hosts(environment.parsed_options.hosts)
    except (PropertyError, ValueError, OSError) as error:
        raise SystemExit(f"{error}") from None
    owner.register(environment)


@events.test_start.add_listener
def _on_test_start(environment, **_kwargs) -> None:
    runner = environment.runner
    try:
        if not isinstance(runner, WorkerRunner):
            # Starting and loading a cluster takes seconds. Show the test as spawning: the web
            # UI polls only while a test spawns or runs, and would take it for not started.
            runner.update_state(STATE_SPAWNING)
            owner.start(environment)
        if not isinstance(runner, MasterRunner):
            driver.start(environment)
    except Exception as error:  # the test cannot run: say why and end it, do not hang until -t
        _give_up(environment, f"{type(error).__name__}: {error}")


@events.test_stop.add_listener
def _on_test_stop(environment, **_kwargs) -> None:
    runner = environment.runner
    if not isinstance(runner, MasterRunner):
        driver.stop(runner)
    if not isinstance(runner, WorkerRunner):
        owner.test_stopped()


@events.quit.add_listener
def _on_quit(**_kwargs) -> None:
    owner.quit()


class YcsbUser(User):
    """One YCSB client thread: runs transactions back to back (or on the --target-rate schedule)."""

    wait_time = constant(0)

    def on_start(self) -> None:
        # No database: the test could not start and _give_up is ending it.
        self.db = None if driver.db is None else MeasuredDB(driver.db, driver.measurements)

    @task
    def transaction(self) -> None:
        if self.db is None:
            raise StopUser
        if driver.exhausted or not driver.claim():
            driver.finish_user()
        driver.in_flight += 1
        try:
            transaction = self.db.run(driver.step, driver.intended_start())
        finally:
            driver.in_flight -= 1
        if transaction is None:  # load phase: this worker's slice is inserted
            driver.finish_user()
