"""Per-operation latency in HDR histograms, written as per-second and end-of-run CSVs.

Each operation is recorded twice (YCSB's ``measurement.interval=both``):

* ``service`` — from the moment the operation actually started;
* ``intended`` — from the moment an open-loop schedule (``RateSchedule``) meant it to start,
  so time spent queued behind a slow operation counts (the coordinated-omission
  correction YCSB reports as ``Intended-<OP>``). Without a schedule both are equal.

Latencies are integer microseconds, 1 µs … 60 s at 3 significant digits; slower operations
are clamped to 60 s so they still count (HdrHistogram would drop them). Failed operations
are kept in the op's histograms — during a fault their timeouts *are* the latency users
see — and are counted by status code alongside (YCSB instead reports ``<OP>-FAILED``).

All times passed in are seconds from one monotonic clock (``time.perf_counter``).
"""

import csv
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path

from hdrh.histogram import HdrHistogram

from workloads.core_workload import DB, DELETE, INSERT, OK, READ, SCAN, UPDATE, Status, Transaction

LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES = 1, 60_000_000, 3
SERVICE, INTENDED = "service", "intended"
KINDS = (SERVICE, INTENDED)
PERCENTILES = (50.0, 95.0, 99.0, 99.9)
LATENCY_COLUMNS = [f"p{p:g}_us" for p in PERCENTILES] + ["max_us", "mean_us"]
TIMESERIES_COLUMNS = ["timestamp", "op", "kind", "count", "errors", *LATENCY_COLUMNS]

# (op, service seconds, intended seconds, status) for every recorded operation.
Listener = Callable[[str, float, float, Status], None]


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)


def _micros(seconds: float) -> int:
    return min(max(round(seconds * 1e6), LOWEST_US), HIGHEST_US)


def hdr_name(op: str, kind: str) -> str:
    """YCSB's measurement name: ``READ`` for service time, ``Intended-READ`` for intended."""
    return op if kind == SERVICE else f"Intended-{op}"


class _Latency:
    """An HDR histogram plus the running sum of its values, since HdrHistogram's own mean
    walks every bucket (~0.1 s) and would stall the per-second writer."""

    def __init__(self) -> None:
        self.histogram = new_histogram()
        self.sum_us = 0

    def record(self, micros: int) -> None:
        self.histogram.record_value(micros)
        self.sum_us += micros

    def count(self) -> int:
        return self.histogram.get_total_count()

    def reset(self) -> None:
        self.histogram.reset()
        self.sum_us = 0

    def stats(self) -> dict[str, float]:
        """Percentiles, max and mean in microseconds, keyed by ``LATENCY_COLUMNS``."""
        count = self.count()
        by_percentile = self.histogram.get_percentile_to_value_dict(list(PERCENTILES)) if count else {}
        values = [by_percentile.get(p, 0) for p in PERCENTILES]
        values += [self.histogram.get_max_value(), round(self.sum_us / count, 1) if count else 0.0]
        return dict(zip(LATENCY_COLUMNS, values, strict=True))


class _OpStats:
    """Cumulative and current-interval latencies and status counts of one operation.

    An operation is recorded into the interval histograms only; they are added to the
    totals when the interval is taken (a histogram add per second instead of a second
    record per operation, which was most of the harness's cost per request).
    """

    def __init__(self) -> None:
        self.total = {kind: _Latency() for kind in KINDS}
        self.interval = {kind: _Latency() for kind in KINDS}
        self.statuses: Counter[Status] = Counter()
        self.interval_statuses: Counter[Status] = Counter()

    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != OK)

    def interval_errors(self) -> int:
        return sum(n for status, n in self.interval_statuses.items() if status != OK)

    def close_interval(self) -> None:
        """Add the interval's latencies to the totals and start a new interval."""
        for kind in KINDS:
            total, interval = self.total[kind], self.interval[kind]
            if interval.count():
                total.histogram.add(interval.histogram)
                total.sum_us += interval.sum_us
                interval.reset()
        self.interval_statuses.clear()

    def so_far(self, kind: str) -> "_Latency":
        """The totals including the interval not yet closed."""
        total, interval = self.total[kind], self.interval[kind]
        if not interval.count():
            return total
        combined = _Latency()
        combined.histogram.add(total.histogram)
        combined.histogram.add(interval.histogram)
        combined.sum_us = total.sum_us + interval.sum_us
        return combined



class Measurements:
    """Thread- and greenlet-safe store of every operation's latency and status."""

    def __init__(self, listeners: Sequence[Listener] = ()) -> None:
        self._ops: dict[str, _OpStats] = {}
        self._lock = threading.Lock()
        self._listeners = list(listeners)

    def measure(
        self, op: str, start: float, end: float, status: Status = OK, intended_start: float | None = None
    ) -> None:
        service = end - start
        intended = service if intended_start is None else max(service, end - intended_start)
        with self._lock:
            stats = self._ops.get(op)
            if stats is None:
                stats = self._ops[op] = _OpStats()
            stats.interval[SERVICE].record(_micros(service))
            stats.interval[INTENDED].record(_micros(intended))
            stats.statuses[status] += 1
            stats.interval_statuses[status] += 1
        for listener in self._listeners:
            listener(op, service, intended, status)

    def take_interval(self, timestamp: float) -> list[dict]:
        """Rows for the operations seen since the last call (``TIMESERIES_COLUMNS``); resets them."""
        rows = []
        with self._lock:
            for op, stats in sorted(self._ops.items()):
                count = stats.interval[SERVICE].count()
                if count == 0:
                    continue
                for kind in KINDS:
                    row = {"timestamp": round(timestamp, 3), "op": op, "kind": kind, "count": count}
                    row["errors"] = stats.interval_errors()
                    rows.append(row | stats.interval[kind].stats())
                stats.close_interval()
        return rows

    def take_snapshot(self) -> dict[str, dict]:
        """The interval since the last call as plain (msgpack-able) data for ``absorb`` in another
        process: per op, its statuses as ``[status, n]`` pairs and per kind the encoded histogram
        and its sum in µs. Resets the interval, like ``take_interval``."""
        snapshot = {}
        with self._lock:
            for op, stats in self._ops.items():
                if not stats.interval_statuses:
                    continue
                entry = {"statuses": [[status, n] for status, n in stats.interval_statuses.items()]}
                for kind in KINDS:
                    latency = stats.interval[kind]
                    entry[kind] = [latency.histogram.encode(), latency.sum_us]
                stats.close_interval()
                snapshot[op] = entry
        return snapshot

    def absorb(self, snapshot: Mapping[str, Mapping]) -> None:
        """Add another process's ``take_snapshot`` to the current interval (and so, once it is
        taken, to the totals)."""
        with self._lock:
            for op, entry in snapshot.items():
                stats = self._ops.get(op)
                if stats is None:
                    stats = self._ops[op] = _OpStats()
                for kind in KINDS:
                    encoded, sum_us = entry[kind]
                    latency = stats.interval[kind]
                    latency.histogram.add(HdrHistogram.decode(encoded))
                    latency.sum_us += sum_us
                for status, n in entry["statuses"]:
                    stats.statuses[status] += n
                    stats.interval_statuses[status] += n

    def summary(self) -> list[dict]:
        """One row per operation and kind over the whole run, with an ``errors_<code>`` column per error."""
        with self._lock:
            codes = sorted({str(s) for stats in self._ops.values() for s in stats.statuses if s != OK})
            rows = []
            for op, stats in sorted(self._ops.items()):
                by_code = {f"errors_{code}": 0 for code in codes}
                by_code |= {f"errors_{s}": n for s, n in stats.statuses.items() if s != OK}
                for kind in KINDS:
                    latency = stats.so_far(kind)
                    row = {"op": op, "kind": kind, "count": latency.count(), "errors": stats.errors()}
                    rows.append(row | latency.stats() | by_code)
        return rows

    def encoded(self) -> dict[str, bytes]:
        """Every cumulative histogram, HdrHistogram-encoded, keyed by ``hdr_name``."""
        with self._lock:
            return {
                hdr_name(op, kind): stats.so_far(kind).histogram.encode()
                for op, stats in self._ops.items()
                for kind in KINDS
            }


def merge(histograms: Iterable[HdrHistogram | bytes | str]) -> HdrHistogram:
    """Add up histograms from several workers (objects or their encoded form)."""
    merged = new_histogram()
    for histogram in histograms:
        if isinstance(histogram, HdrHistogram):
            merged.add(histogram)
        else:
            merged.decode_and_add(histogram)
    return merged


def read_hdr(path: str | Path) -> HdrHistogram:
    """A histogram written by ``ResultsWriter`` (``<results_dir>/<name>.hdr``)."""
    return HdrHistogram.decode(Path(path).read_bytes().strip())


def append_timeseries(results_dir: Path, rows: Iterable[Mapping]) -> None:
    """Append ``take_interval`` rows to ``<results_dir>/timeseries.csv``, header first if new."""
    path = Path(results_dir) / "timeseries.csv"
    is_new = not path.exists()
    with path.open("a", newline="") as out:
        writer = csv.DictWriter(out, TIMESERIES_COLUMNS)
        if is_new:
            writer.writeheader()
        writer.writerows(rows)


class ResultsWriter:
    """Appends ``timeseries.csv`` every interval and writes ``summary.csv`` and ``*.hdr`` at the end."""

    def __init__(
        self,
        measurements: Measurements,
        results_dir: str | Path,
        interval_s: float = 1.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.measurements = measurements
        self.results_dir = Path(results_dir)
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self.interval_s = interval_s
        self._wall_clock = wall_clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def write_interval(self) -> None:
        append_timeseries(self.results_dir, self.measurements.take_interval(self._wall_clock()))

    def write_summary(self) -> None:
        rows = self.measurements.summary()
        columns = list(dict.fromkeys(column for row in rows for column in row))
        with (self.results_dir / "summary.csv").open("w", newline="") as out:
            writer = csv.DictWriter(out, columns or ["op", "kind", "count", "errors", *LATENCY_COLUMNS])
            writer.writeheader()
            writer.writerows(rows)
        for name, encoded in self.measurements.encoded().items():
            (self.results_dir / f"{name}.hdr").write_bytes(encoded + b"\n")

    def start(self) -> None:
        """Write an interval every ``interval_s`` in the background until ``stop``."""
        self._thread = threading.Thread(target=self._run, name="ycsb-results-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.write_interval()

    def stop(self) -> None:
        """Stop the background writer, write the last partial interval and the summary."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.write_interval()
        self.write_summary()


class MeasuredDB(DB):
    """Wraps a ``DB`` and records every call, like YCSB's DBWrapper.

    One instance per user: ``run`` sets the transaction's intended start time, which the
    calls inside it are measured from as well.
    """

    def __init__(self, db: DB, measurements: Measurements, clock: Callable[[], float] = time.perf_counter):
        self.db = db
        self.measurements = measurements
        self._clock = clock
        self._intended_start: float | None = None

    def run(
        self, step: Callable[[DB], Transaction | None], intended_start: float | None = None
    ) -> Transaction | None:
        """Run one workload step (``workload.do_transaction``/``do_insert``) through this wrapper.

        A step that is not a single DB call (read-modify-write) is also recorded as a whole
        under its own name.
        """
        self._intended_start = intended_start
        start = self._clock()
        transaction = step(self)
        if transaction is not None and transaction.op not in _DB_CALLS:
            self.measurements.measure(
                transaction.op, start, self._clock(), transaction.status, intended_start
            )
        return transaction

    def _timed(self, op: str, call: Callable[..., Status], *args) -> Status:
        start = self._clock()
        try:
            status = call(*args)
        except Exception as error:
            self.measurements.measure(op, start, self._clock(), type(error).__name__, self._intended_start)
            raise
        self.measurements.measure(op, start, self._clock(), status, self._intended_start)
        return status

    def read(self, table: str, key: str, fields: Collection[str] | None) -> Status:
        return self._timed(READ, self.db.read, table, key, fields)

    def update(self, table: str, key: str, values: Mapping[str, bytes]) -> Status:
        return self._timed(UPDATE, self.db.update, table, key, values)

    def insert(self, table: str, key: str, values: Mapping[str, bytes]) -> Status:
        return self._timed(INSERT, self.db.insert, table, key, values)

    def scan(
        self, table: str, startkey: str, count: int, fields: Collection[str] | None, keys: Sequence[str]
    ) -> Status:
        return self._timed(SCAN, self.db.scan, table, startkey, count, fields, keys)

    def delete(self, table: str, key: str) -> Status:
        return self._timed(DELETE, self.db.delete, table, key)


_DB_CALLS = frozenset({READ, UPDATE, INSERT, SCAN, DELETE})


class RateSchedule:
    """Intended start times for open-loop load at ``target_ops_per_s`` across ``workers``.

    Slots are evenly spaced; worker ``worker`` owns every ``workers``-th one, offset by its
    index, so the workers together hit the target and interleave instead of bunching up.
    Users of one worker share its schedule: each ``next_start()`` hands out the next slot.
    """

    def __init__(self, target_ops_per_s: float, start: float, workers: int = 1, worker: int = 0) -> None:
        if target_ops_per_s <= 0:
            raise ValueError(f"target rate must be positive, got {target_ops_per_s}")
        if not 0 <= worker < workers:
            raise ValueError(f"worker index {worker} is not in [0, {workers})")
        self._first = start + worker / target_ops_per_s
        self._period = workers / target_ops_per_s
        self._slot = 0
        self._lock = threading.Lock()

    def next_start(self) -> float:
        with self._lock:
            slot = self._slot
            self._slot += 1
        # Multiplying instead of accumulating keeps late slots free of rounding drift.
        return self._first + slot * self._period

    def __iter__(self):
        return self

    def __next__(self) -> float:
        return self.next_start()
