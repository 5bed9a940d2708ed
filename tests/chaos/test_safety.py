"""The safety workload's rules on hand-made histories, and its negative control on a real
cluster: with RF 1, a node restarted with its disk wiped must cost acknowledged writes.
(The positive case, RF 2 and a node killed, is in test_recorder_report.py.)"""

import time

from chaos.safety import FAILED, INDETERMINATE, OK, Op, SafetyWorkload, classify, wait_settled
from cluster.deploy.local_cluster import LocalCluster


def write(key, value, start, end, outcome=OK):
    return Op("write", key, value, start, end, outcome)


def read(key, value, start, end):
    return Op("read", key, value, start, end, OK)


def test_the_last_acknowledged_value_is_not_lost():
    history = [write(1, 10, 0, 1), write(1, 11, 2, 3)]
    verdict = classify(history, {1: 11})
    assert verdict["valid"] and verdict["counts"]["lost"] == 0


def test_a_final_value_older_than_the_last_acknowledged_write_is_lost():
    history = [write(1, 10, 0, 1), write(1, 11, 2, 3), write(2, 20, 0, 1)]
    verdict = classify(history, {1: 10, 2: 20})
    assert not verdict["valid"]
    [lost] = verdict["lost"]
    assert lost["key"] == 1 and lost["final_value"] == 10 and lost["last_acked"]["value"] == 11
    assert [op["value"] for op in lost["history"]] == [10, 11]


def test_a_missing_record_after_an_acknowledged_write_is_lost():
    verdict = classify([write(1, 10, 0, 1)], {1: None})
    assert verdict["counts"]["lost"] == 1


def test_a_later_write_in_doubt_may_be_the_final_value():
    history = [write(1, 10, 0, 1), write(1, 11, 2, 3, INDETERMINATE)]
    assert classify(history, {1: 11})["valid"]
    assert classify(history, {1: 10})["valid"]  # the write in doubt did not happen: fine too


def test_a_failed_write_that_became_visible_is_reported():
    history = [write(1, 10, 0, 1), write(1, 11, 2, 3, FAILED), read(1, 11, 4, 5)]
    verdict = classify(history, {1: 10})
    assert not verdict["valid"]
    [seen] = verdict["failed_visible"]
    assert seen["write"]["value"] == 11 and seen["seen_by"]["kind"] == "read"
    assert verdict["counts"]["lost"] == 0


def test_a_read_older_than_a_write_acknowledged_before_it_began_is_stale():
    history = [write(1, 10, 0, 1), write(1, 11, 2, 3),
               read(1, 10, 3.5, 4),  # stale: 11 was acknowledged at 3
               read(1, 10, 2.5, 4),  # concurrent with the write of 11: either value is fine
               read(1, None, 0.5, 0.6)]  # before any acknowledged write: nothing is fine
    verdict = classify(history, {1: 11})
    [stale] = verdict["stale_reads"]
    assert stale["read"]["start"] == 3.5 and stale["expected_at_least"]["value"] == 11
    assert verdict["valid"]  # AP mode permits stale reads: reported, not invalid


def test_a_key_that_cannot_be_read_back_is_unreadable_not_lost():
    verdict = classify([write(1, 10, 0, 1)], {})
    assert verdict["unreadable_keys"] == [1] and verdict["counts"]["lost"] == 0


def test_negative_control_rf1_node_restarted_with_its_disk_wiped_loses_acknowledged_writes():
    with LocalCluster(nodes=3, rf=1) as cluster:
        safety = SafetyWorkload(cluster.seeds(), keys=300, rate=150, seed=1).start()
        try:
            time.sleep(4)
            victim = cluster["n2"]
            cluster.stop_node("n2")
            (victim.work_dir / "test.dat").unlink()
            victim.start(20)
            cluster.wait_converged(20)
            safety.stop()
            wait_settled(cluster.seeds(), timeout=30)
            verdict = safety.check()
        finally:
            safety.close()
    assert verdict["counts"]["lost"] > 0
    assert not verdict["valid"]
    assert verdict["policy"]["namespace_config"]["replication-factor"] == "1"
    lost = verdict["lost"][0]
    assert lost["final_value"] != lost["last_acked"]["value"]
    # Writes to the stopped node were refused before being sent, and none of them showed up.
    assert verdict["counts"]["writes"]["failed"] > 0
    assert verdict["counts"]["failed_visible"] == 0
