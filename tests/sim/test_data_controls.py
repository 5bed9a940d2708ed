"""The data simulator's checks are not vacuous: each deliberately broken data path below is
caught within a few seeds (the data-side twin of test_injected_bugs.py).

Bugs are injected with monkeypatch on the core classes and the simulator's store function;
production code has no flag for them.
"""

import pytest

from cluster.core import dup_res
from cluster.core.data_messages import ReplWriteAck
from cluster.core.data_plane import DataPlane
from cluster.core.records import GENERATION, store
from cluster.core.replication import Replication
from cluster.sim import data
from cluster.sim.data import POLICIES, run_seed

SEEDS = range(4)
SPLIT_SEEDS = range(1, 80, 2)  # 40 seeds whose last fault is a network split


def violations(seeds=SEEDS, policies=POLICIES) -> list[str]:
    """The first violations of the first failing run, or [] if every run passed."""
    for seed in seeds:
        for policy in policies:
            r = run_seed(seed, policy)
            if not r.sim.ok:
                return r.sim.violations
    return []


def test_ack_before_the_replicas_answer_is_caught(monkeypatch):
    start = Replication.start

    def start_and_ack_at_once(self, *args):
        start(self, *args)
        return None  # "nothing to wait for": the master answers OK at once

    monkeypatch.setattr(Replication, "start", start_and_ack_at_once)
    found = violations()
    assert any("acknowledged" in v and "is not on replica" in v for v in found), found


def test_a_replica_that_acks_without_storing_is_caught(monkeypatch):
    def ack_and_drop(self, msg, now_s):
        self.out.fabric(msg.src, ReplWriteAck(self.node_id, msg.tid, 0))

    monkeypatch.setattr(DataPlane, "_on_replica_write", ack_and_drop)
    assert violations()


def test_a_delete_without_a_tombstone_is_caught(monkeypatch):
    def delete_outright(storage, image):
        if image.tombstone:
            storage.delete(image.digest)  # the master forgets the record instead of burying it
        else:
            store(storage, image)

    monkeypatch.setattr(data, "store", delete_outright)
    found = violations()
    assert any("holds" in v and "the master None" in v for v in found), found


def never_ask_the_duplicates(monkeypatch):
    monkeypatch.setattr(DataPlane, "dup_sources", lambda self, ns, pid: ())


def merge_nothing_they_answer(monkeypatch):
    monkeypatch.setattr(dup_res, "apply_if_better", lambda *args: False)


@pytest.mark.parametrize("skip_dup_res", [never_ask_the_duplicates, merge_nothing_they_answer])
def test_a_write_that_skips_duplicate_resolution_is_caught(monkeypatch, skip_dup_res):
    skip_dup_res(monkeypatch)  # after a heal, writes start from the working master's own copy
    for policy in POLICIES:
        found = violations(SPLIT_SEEDS, (policy,))
        assert any("after the healed cluster agreed, duplicate" in v for v in found), (policy, found)


def test_without_that_check_the_write_it_loses_is_caught(monkeypatch):
    """The end-to-end check alone: a blind put shows a wrong starting copy only when a
    duplicate that is no replica (replicas take the write by last-update-time) wins the merge
    later by generation — rarer, and never under last-update-time."""
    never_ask_the_duplicates(monkeypatch)
    monkeypatch.setattr(data, "remote_wins", lambda policy, local, remote: False)  # the simulator's check only
    found = violations(SPLIT_SEEDS, (GENERATION,))
    assert any("acknowledged writes" in v and "started after the healed cluster agreed" in v for v in found), found


def test_the_same_seeds_pass_without_the_bugs():
    assert violations() == []
    assert violations(SPLIT_SEEDS) == []
