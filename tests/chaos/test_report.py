"""Headline numbers and the timeline merge on small hand-made data (the real run is in
test_recorder_report.py)."""

import pandas as pd

from chaos.recorder import merge_timeline
from chaos.report import headline, headlines, write_report
from chaos.results import Fault, RunFolder

# A 3-node cluster; n3 dies at 102.5; the survivors notice at 104, re-form at 105 (key B),
# migrate until 107; a second-long blip of partitions below RF comes back at 109.
ROWS = [  # time, n1 size, n1 key, n2 size, n2 key, migrations, below rf, p99 ms, errors
    (100, 3, "A", 3, "A", 0, 0, 2.0, 0),
    (101, 3, "A", 3, "A", 0, 0, 2.0, 0),
    (102, 3, "A", 3, "A", 0, 0, 2.0, 0),
    (103, 3, "A", 3, "A", 0, 1365, 900.0, 40),
    (104, 2, "A", 0, "0", 0, 1365, 1000.0, 70),
    (105, 2, "B", 2, "B", 900, 1365, 30.0, 2),
    (106, 2, "B", 2, "B", 300, 400, 20.0, 0),
    (107, 2, "B", 2, "B", 0, 0, 3.0, 0),
    (108, 2, "B", 2, "B", 0, 0, 3.0, 0),
    (109, 2, "B", 2, "B", 0, 7, 3.0, 0),
    (110, 2, "B", 2, "B", 0, 0, 3.0, 0),
    (111, 2, "B", 2, "B", 0, 0, 3.0, 0),
]


def timeline() -> pd.DataFrame:
    frame = pd.DataFrame(ROWS, columns=["time", "n1.cluster_size", "n1.cluster_key", "n2.cluster_size",
                                        "n2.cluster_key", "migrate_partitions_remaining", "partitions_below_rf",
                                        "READ.p99_ms", "errors"])
    frame["sampled_at"] = frame["time"] + 0.05
    frame["n3.cluster_size"] = [3, 3, 3] + [None] * 9
    frame["n3.cluster_key"] = ["A", "A", "A"] + [None] * 9
    frame["nodes_up"] = [3, 3, 3] + [2] * 9
    sizes = frame[["n1.cluster_size", "n2.cluster_size", "n3.cluster_size"]]
    frame["cluster_size_min"], frame["cluster_size_max"] = sizes.min(axis=1), sizes.max(axis=1)
    frame["ops"] = 100
    return frame


def test_headline_numbers_from_the_timeline():
    h = headline(timeline(), Fault("kill", ("n3",), 102.5, 108.5), safety={"counts": {"lost": 3}})
    assert h["detect_s"] == 1.55  # 104.05: n1 reports 2 (n2, orphaned, 0)
    assert h["reform_s"] == 2.55  # 105.05: both on key B, size 2 = nodes up
    assert h["full_replication_s"] == 4.55  # 107.05, while n3 was still away
    assert h["rebalance_s"] == 1.55  # from its return at 108.5: 110.05, after the blip at 109, for good
    assert h["worst_p99_ms"] == 1000.0 and h["errors"] == 112  # seconds 103..109 overlap [102.5, 108.5]
    assert h["writes_lost"] == 3


def test_full_replication_counts_only_while_the_fault_lasts():
    h = headline(timeline(), Fault("kill", ("n3",), 102.5, 106.5))
    assert h["full_replication_s"] is None  # migrations still ran when n3 returned at 106.5
    assert h["rebalance_s"] == 3.55  # 110.05


def test_full_replication_is_measured_up_to_the_next_fault():
    h = headline(timeline(), Fault("kill", ("n3",), 102.5, None), horizon=109.0)
    assert h["full_replication_s"] == 4.55  # 107.05: the blip belongs to the next fault
    assert h["rebalance_s"] is None  # it never ended


def test_a_member_slow_to_answer_does_not_hide_the_reform():
    frame = timeline()
    frame.loc[frame["time"] == 105, ["n2.cluster_size", "n2.cluster_key", "nodes_up"]] = [None, None, 1]
    frame.loc[frame["time"] == 105, "cluster_size_min"] = 2
    assert headline(frame, Fault("kill", ("n3",), 102.5, 108.5))["reform_s"] == 2.55  # n1 alone: key B, size 2


def test_an_orphan_alone_on_a_new_key_is_no_reform():
    frame = timeline()
    frame.loc[frame["time"] == 105, ["n1.cluster_size", "n1.cluster_key", "nodes_up"]] = [None, None, 1]
    frame.loc[frame["time"] == 105, ["n2.cluster_size", "n2.cluster_key", "cluster_size_min", "cluster_size_max"]] = [0, "0", 0, 0]
    assert headline(frame, Fault("kill", ("n3",), 102.5, 108.5))["reform_s"] == 3.55  # 106.05


def test_a_split_reforms_when_each_side_has_formed_its_own_cluster():
    frame = timeline()
    frame["nodes_up"] = 3
    frame["n3.cluster_size"] = [3, 3, 3, 3, 0, 1, 1, 1, 1, 1, 1, 1]  # n3 alone: orphaned, then its own
    frame["n3.cluster_key"] = ["A", "A", "A", "A", "0", "C", "C", "C", "C", "C", "C", "C"]
    frame.loc[frame["time"] == 105, "n1.cluster_size"] = 3  # n1 and n2 on key B disagree on its size
    h = headline(frame, Fault("partition", ("n3",), 102.5, 110.5))
    assert h["detect_s"] == 1.55 and h["reform_s"] == 3.55  # 106.05: n1, n2 on B (2), n3 on C (1)


def test_a_reform_only_after_the_fault_ended_is_not_seen():
    assert headline(timeline(), Fault("kill", ("n3",), 102.5, 105.0))["reform_s"] is None


def test_a_fault_nobody_noticed_has_no_detection_and_no_reform():
    h = headline(timeline(), Fault("latency", ("n1",), 107.5, 108.5))
    assert h["detect_s"] is None and h["reform_s"] is None


def test_the_merge_has_one_row_per_second_even_where_the_load_wrote_none():
    cluster = pd.DataFrame({"time": [10, 11, 12, 13], "nodes_up": [3, 3, 2, 3]})
    load = pd.DataFrame({"timestamp": [11, 11, 13, 13, 13], "op": ["READ"] * 5,
                         "kind": ["service", "intended", "service", "intended", "service"],
                         "count": [5, 5, 7, 7, 1], "errors": [0, 0, 1, 1, 0],
                         **{column: [1000] * 5 for column in ("p50_us", "p99_us", "p99.9_us", "max_us")}})
    load.loc[4, "p99_us"] = 9000  # a late snapshot of second 13: counts add, the worse p99 wins
    errors = pd.DataFrame({"time": [13, 13], "error": ["9", "-10"], "count": [1, 2]})
    merged = merge_timeline(cluster, load, errors)
    assert merged["time"].tolist() == [10, 11, 12, 13]
    assert merged["READ.ops"].fillna(0).tolist() == [0, 5, 0, 8]
    assert merged.loc[3, "READ.p99_ms"] == 9.0 and merged.loc[3, "READ.errors"] == 1
    assert merged.loc[3, "errors.9"] == 1 and merged.loc[3, "errors.-10"] == 2


def test_a_run_without_faults_has_no_headlines_and_still_a_report(tmp_path):
    run = RunFolder.create("no-faults", root=tmp_path)
    frame = timeline()
    frame.to_csv(run.path / "timeline.csv", index=False)
    assert headlines(run) == []
    assert "<svg" in write_report(run.path).read_text()
