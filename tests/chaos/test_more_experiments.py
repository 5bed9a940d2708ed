"""partition_heal, capacity_overflow and slow_link through the real `chaos` CLI (issue #11):
real node processes, real Locust, real refproxy, durations scaled down. The run helpers and
the report check are test_experiments' own."""

import re

import pytest

from tests.chaos.test_experiments import (
    REPO,
    SCALED,
    assert_complete,
    hypothesis_probes,
    method_runs,
    run_experiment,
)


def test_slow_link_raises_write_p99_not_read_p99(tmp_path):
    run, code = run_experiment("chaos/slow_link.yaml", tmp_path, *SCALED, "--var", "slow_s=8")
    folder = assert_complete(run, code, ["latency"])
    assert folder.faults()[0].targets == ("n1", "n2", "n3")  # one window for n1's links to both peers
    method = method_runs(folder.journal())
    assert method["write-p99-rose-by-the-latency"]["output"] >= 100
    assert method["read-p99-did-not"]["output"] <= 50


@pytest.mark.parametrize("policy", ["generation", "last-update-time"])
def test_partition_heal_reports_the_writes_the_heal_discarded(tmp_path, policy):
    run, code = run_experiment("partition_heal.yaml", tmp_path, *SCALED, "--var", "split_s=8",
                               "--var", f"conflict_policy={policy}", cwd=REPO / "chaos")
    folder = assert_complete(run, code, ["partition"], lossless=False)
    out, journal = run.output(), folder.journal()
    method = method_runs(journal)
    assert sorted(method["each-side-forms-a-cluster"]["output"].values()) == [1, 2]
    assert set(method["both-sides-take-writes"]["output"].values()) == {10}  # every node, either side
    assert folder.faults()[0].targets == ("n3|n1,n2",)
    timeline = folder.timeline()
    assert 2 in set(timeline["n1.cluster_size"]) and 1 in set(timeline["n3.cluster_size"])  # two clusters
    # the losses are counted, consistent between the journal, safety.json and the summary
    safety = folder.safety()
    assert safety["policy"]["namespace_config"]["conflict-resolution-policy"] == policy
    discarded = safety["discarded"]
    assert hypothesis_probes(journal, "after")["acknowledged-writes-the-heal-discarded"]["output"] == \
        discarded["acknowledged_writes_discarded"]
    assert discarded["acknowledged_writes"] == safety["counts"]["writes"]["ok"] > 100
    assert discarded["keys_lost"] == safety["counts"]["lost"]
    # pinned writers on both sides wrote the same keys; the heal kept one side's record
    assert safety["policy"]["mode"] == discarded["safety_mode"] == "pinned"
    assert 0 < discarded["acknowledged_writes_discarded"] <= discarded["acknowledged_during_faults"]
    assert discarded["acknowledged_writes_discarded"] == sum(entry["discarded"] for entry in safety["lost"])
    assert discarded["keys_lost"] == len(safety["lost"]) > 0
    split = folder.faults()[0]
    assert all(entry["last_acked"]["end"] < split.end for entry in safety["lost"])  # writes stopped before the heal
    assert method["stop-the-safety-writes"]["output"] == discarded["acknowledged_writes"]  # none after the heal
    line = re.search(r"acknowledged writes the heal discarded: (\d+) of (\d+) .*conflict-resolution-policy (\S+)\)", out)
    assert line and [int(line[1]), int(line[2]), line[3]] == [
        discarded["acknowledged_writes_discarded"], discarded["acknowledged_writes"], policy]
    print(line[0])  # the figure, for the README


def test_capacity_overflow_stop_writes_then_writes_resume(tmp_path):
    run, code = run_experiment("chaos/capacity_overflow.yaml", tmp_path, *SCALED, "--var", "full_s=4")
    folder = assert_complete(run, code, ["fill", "kill", "restart"])
    journal = folder.journal()
    method = method_runs(journal)
    fill = method["fill-the-devices"]["output"]
    assert fill["records_written"] * 64 / 1024 >= 0.5 * 3 * 16 / 2 * 0.8  # about 50% of 3 x 16 MiB, 2 copies
    assert method["writes-refused-reads-and-deletes-work"]["output"] == {"write": 8, "read": 0, "delete": 0}
    assert method["still-in-stop-writes"]["output"] == 3  # the migrations ran in stop-writes
    faults = {f.kind: f for f in folder.faults()}
    timeline = folder.timeline()
    full = timeline[(timeline["time"] >= faults["fill"].start) & (timeline["time"] < faults["fill"].end)]
    assert full["errors.8"].sum() > 0 and full["UPDATE.errors"].sum() > 0  # client writes got 8
    node_down = (full["time"] >= faults["kill"].start) & (full["time"] <= faults["restart"].end + 2)
    assert full.loc[~node_down, "READ.errors"].fillna(0).sum() == 0  # reads kept succeeding (but with a node down)
    back = timeline[(timeline["time"] >= faults["restart"].start) & (timeline["time"] < faults["fill"].end)]
    assert back["migrate_partitions_remaining"].max() > 0  # the restarted node's partitions migrated back
    after = timeline[timeline["time"] > faults["fill"].end + 2]
    assert after["UPDATE.ops"].sum() > 0 and after["UPDATE.errors"].fillna(0).sum() == 0  # writes resumed
    safety = folder.safety()
    assert safety["counts"]["writes"]["indeterminate"] > 0  # 8s were in doubt, and not counted lost
    # stop-writes came before the devices were really full: no replica or migration write failed for space
    logs = list((folder / "nodes").glob("*.log"))
    assert len(logs) == 3 and not [log.name for log in logs if "OutOfSpace" in log.read_text(errors="replace")]
