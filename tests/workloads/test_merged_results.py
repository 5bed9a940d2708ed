"""Per-second snapshots from several processes merged into one results folder; failure names."""

import msgpack
import pandas as pd

from workloads.aerospike_binding import failure_name
from workloads.measure import Measurements, read_hdr
from workloads.merged_results import MergedResults, next_second


def wire(snapshot):
    """What a snapshot looks like after Locust's message encoding."""
    return msgpack.loads(msgpack.dumps(snapshot), raw=False, strict_map_key=False)


def test_seconds_from_two_workers_merge_into_exact_rows(tmp_path):
    workers = [Measurements(), Measurements()]
    results = MergedResults(tmp_path, lag_s=2)
    for second in (100, 101):
        for index, m in enumerate(workers):
            for micros in range(1, 101):
                m.measure("READ", 0.0, (index * 100 + micros) / 1e6, 0)
            m.measure("UPDATE", 0.0, 0.001, 9 if index else 0)
            results.add(second, wire(m.take_snapshot()))
    results.flush(now=102.5)  # only second 100 is old enough
    assert set(pd.read_csv(tmp_path / "timeseries.csv").timestamp) == {100}
    results.finish()

    series = pd.read_csv(tmp_path / "timeseries.csv")
    read = series[(series.op == "READ") & (series.kind == "service")].set_index("timestamp")
    assert read["count"].to_dict() == {100: 200, 101: 200}
    assert read.loc[100, "p50_us"] == 100 and read.loc[100, "max_us"] == 200  # percentiles over both workers
    update = series[(series.op == "UPDATE") & (series.kind == "service")]
    assert update.errors.tolist() == [1, 1]

    summary = pd.read_csv(tmp_path / "summary.csv").set_index(["op", "kind"])
    assert summary.loc[("READ", "service"), "count"] == 400
    assert summary.loc[("UPDATE", "intended"), "errors_9"] == 2
    assert read_hdr(tmp_path / "Intended-READ.hdr").get_total_count() == 400


def test_snapshot_resets_the_interval_and_skips_idle_operations():
    m = Measurements()
    m.measure("READ", 0.0, 0.001, 0)
    assert set(m.take_snapshot()) == {"READ"}
    assert m.take_snapshot() == {}
    assert m.summary()[0]["count"] == 1  # the totals keep it


def test_next_second_labels_the_interval_by_its_end():
    assert next_second(100.0) == 101 and next_second(100.999) == 101


def test_failures_are_named_by_result_code():
    assert failure_name(9) == "AerospikeError 9 TIMEOUT"
    assert failure_name(2) == "AerospikeError 2 KEY_NOT_FOUND"
    assert failure_name(-10) == "AerospikeError -10 CONNECTION_FAILED"
    assert failure_name(-7) == "AerospikeError -7 NO_MORE_CONNECTIONS"
    assert failure_name(-99) == "AerospikeError -99 CODE_-99"
    assert failure_name("ValueError") == "ValueError"
