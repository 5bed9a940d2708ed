"""Latency measurements: HDR precision, intended vs service time, CSV/HDR outputs, merging."""

import time

import pandas as pd
import pytest

from workloads.core_workload import OK, READ, READ_MODIFY_WRITE, UPDATE, Transaction
from workloads.measure import (
    HIGHEST_US,
    INTENDED,
    SERVICE,
    MeasuredDB,
    Measurements,
    RateSchedule,
    ResultsWriter,
    merge,
    read_hdr,
)

US = 1e-6


def hdr_close(value: float, expected: float) -> bool:
    # 3 significant digits: any two values in one HDR bucket differ by at most 0.1 %.
    return abs(value - expected) <= expected * 1e-3 + 1


def record_all(measurements: Measurements, op: str, latencies_us, status=OK):
    for micros in latencies_us:
        measurements.measure(op, 0.0, micros * US, status)


def row(rows, op, kind):
    return next(r for r in rows if r["op"] == op and r["kind"] == kind)


def test_percentiles_of_a_known_set_are_within_hdr_precision():
    m = Measurements()
    record_all(m, READ, range(1, 10_001))
    stats = row(m.summary(), READ, SERVICE)
    assert stats["count"] == 10_000
    for column, expected in [("p50_us", 5000), ("p95_us", 9500), ("p99_us", 9900), ("p99.9_us", 9990)]:
        assert hdr_close(stats[column], expected), (column, stats[column])
    assert hdr_close(stats["max_us"], 10_000)
    assert hdr_close(stats["mean_us"], 5000.5)


def test_out_of_range_latencies_are_clamped_not_dropped():
    m = Measurements()
    m.measure(READ, 0.0, 0.0)
    m.measure(READ, 0.0, 120.0)
    stats = row(m.summary(), READ, SERVICE)
    assert stats["count"] == 2
    assert hdr_close(stats["max_us"], HIGHEST_US)


def test_errors_are_counted_by_status_code():
    m = Measurements()
    record_all(m, READ, [100] * 7)
    record_all(m, READ, [5000] * 2, status=2)
    record_all(m, UPDATE, [100], status="TimeoutError")
    stats = row(m.summary(), READ, SERVICE)
    assert (stats["count"], stats["errors"], stats["errors_2"], stats["errors_TimeoutError"]) == (9, 2, 2, 0)
    assert row(m.summary(), UPDATE, INTENDED)["errors_TimeoutError"] == 1


def test_open_loop_intended_latency_includes_queueing_behind_slow_ops():
    # One user, 100 ops/s intended, but each op takes 30 ms: it falls further behind each
    # time. Service time stays 30 ms; latency from the intended start keeps growing.
    m = Measurements()
    schedule = RateSchedule(100, start=0.0)
    now = 0.0
    for _ in range(50):
        intended = schedule.next_start()
        start = max(now, intended)
        now = start + 0.030
        m.measure(READ, start, now, OK, intended_start=intended)
    service, intended = row(m.summary(), READ, SERVICE), row(m.summary(), READ, INTENDED)
    assert hdr_close(service["max_us"], 30_000) and hdr_close(service["p50_us"], 30_000)
    # The last op was meant to start at 0.49 s and finished at 50 × 30 ms = 1.5 s.
    assert hdr_close(intended["max_us"], 1_010_000)
    assert intended["p50_us"] > 10 * service["p50_us"]


def test_without_a_schedule_intended_equals_service():
    m = Measurements()
    record_all(m, READ, [250, 400])
    assert row(m.summary(), READ, SERVICE)["p99_us"] == row(m.summary(), READ, INTENDED)["p99_us"]


class FakeDB:
    def __init__(self, clock):
        self.clock = clock

    def read(self, table, key, fields):
        self.clock.now += 0.002
        return OK

    def update(self, table, key, values):
        self.clock.now += 0.003
        raise TimeoutError("node down")


class FakeClock:
    now = 0.0

    def __call__(self):
        return self.now


def test_measured_db_records_calls_and_composite_transactions():
    clock = FakeClock()
    m = Measurements()
    db = MeasuredDB(FakeDB(clock), m, clock=clock)

    def read_then_update(target):
        read_status = target.read("t", "k", None)
        try:
            target.update("t", "k", {"field0": b"x"})
        except TimeoutError:
            return Transaction(READ_MODIFY_WRITE, "k", "TimeoutError")
        return Transaction(READ_MODIFY_WRITE, "k", read_status)

    clock.now = 10.0
    db.run(read_then_update, intended_start=9.0)
    rows = m.summary()
    assert hdr_close(row(rows, READ, SERVICE)["max_us"], 2000)
    assert hdr_close(row(rows, READ, INTENDED)["max_us"], 1_002_000)
    assert row(rows, UPDATE, SERVICE)["errors_TimeoutError"] == 1
    rmw = row(rows, READ_MODIFY_WRITE, SERVICE)
    assert hdr_close(rmw["max_us"], 5000) and rmw["errors"] == 1
    # A single-call transaction is recorded once, by the wrapper only.
    db.run(lambda target: Transaction(READ, "k", target.read("t", "k", None)))
    assert row(m.summary(), READ, SERVICE)["count"] == 2


def test_listeners_see_every_measurement():
    seen = []
    m = Measurements(listeners=[lambda *event: seen.append(event)])
    m.measure(READ, 1.0, 1.5, 2, intended_start=0.5)
    assert seen == [(READ, 0.5, 1.0, 2)]


def test_writer_outputs_parse_with_pandas_and_histograms_round_trip(tmp_path):
    m = Measurements()
    wall = iter([1000.0, 1001.0])
    writer = ResultsWriter(m, tmp_path, wall_clock=lambda: next(wall))
    record_all(m, READ, [100, 200, 300])
    record_all(m, UPDATE, [1000], status=2)
    writer.write_interval()
    record_all(m, READ, [400])
    writer.write_interval()
    writer.write_summary()

    series = pd.read_csv(tmp_path / "timeseries.csv")
    assert list(series.columns) == [
        "timestamp",
        "op",
        "kind",
        "count",
        "errors",
        "p50_us",
        "p95_us",
        "p99_us",
        "p99.9_us",
        "max_us",
        "mean_us",
    ]
    assert len(series) == 6  # READ and UPDATE × 2 kinds, then READ × 2 kinds
    second = series[(series.timestamp == 1001.0) & (series.kind == SERVICE)]
    assert list(second.op) == [READ] and second["count"].item() == 1 and hdr_close(second.max_us.item(), 400)
    assert series[series.op == UPDATE].errors.tolist() == [1, 1]

    summary = pd.read_csv(tmp_path / "summary.csv")
    read_service = summary[(summary.op == READ) & (summary.kind == SERVICE)].iloc[0]
    assert read_service["count"] == 4 and read_service.errors_2 == 0
    assert summary[summary.op == UPDATE].errors_2.tolist() == [1, 1]

    assert read_hdr(tmp_path / "READ.hdr").get_total_count() == 4
    assert read_hdr(tmp_path / "Intended-UPDATE.hdr").get_total_count() == 1


def test_merge_adds_histograms_from_several_workers():
    workers = [Measurements() for _ in range(3)]
    for index, m in enumerate(workers):
        record_all(m, READ, range(index * 1000 + 1, index * 1000 + 1001))
    merged = merge(m.encoded()[READ] for m in workers)
    assert merged.get_total_count() == 3000
    assert hdr_close(merged.get_value_at_percentile(50), 1500)
    # Objects and encoded histograms mix.
    assert merge([merged, workers[0].encoded()[READ]]).get_total_count() == 4000


def test_background_writer_appends_every_interval_and_summarises_on_stop(tmp_path):
    m = Measurements()
    writer = ResultsWriter(m, tmp_path, interval_s=0.05)
    writer.start()
    for _ in range(4):
        record_all(m, READ, [100])
        time.sleep(0.06)
    writer.stop()
    series = pd.read_csv(tmp_path / "timeseries.csv")
    assert series[series.kind == SERVICE]["count"].sum() == 4
    assert (tmp_path / "summary.csv").exists() and (tmp_path / "READ.hdr").exists()


def test_rate_schedule_shares_the_rate_between_workers():
    target, workers = 1000.0, 4
    schedules = [RateSchedule(target, start=5.0, workers=workers, worker=i) for i in range(workers)]
    slots = sorted(t for s in schedules for t in [s.next_start() for _ in range(25)])
    gaps = [b - a for a, b in zip(slots, slots[1:], strict=False)]
    assert slots[0] == 5.0
    assert all(gap == pytest.approx(1 / target) for gap in gaps)
    single = RateSchedule(10, start=0.0)
    assert [next(single) for _ in range(3)] == pytest.approx([0.0, 0.1, 0.2])


def test_rate_schedule_rejects_bad_arguments():
    with pytest.raises(ValueError, match="positive"):
        RateSchedule(0, start=0.0)
    with pytest.raises(ValueError, match="worker index"):
        RateSchedule(10, start=0.0, workers=2, worker=2)
