"""Partition rebalance plans (Aerospike's balance_namespace_ap and queue_namespace_migrations) for fixed scenarios, and cross-node consistency."""

import random

import pytest

from cluster.core.partition_balance import partition_table
from cluster.core.partition_version import FAMILY_UNIQUE, ISOLATED, Version, unpack, version_ckey
from cluster.core.rebalance import (
    ACTING_MASTER,
    CONTINGENT,
    DUPLICATE,
    balance_namespace,
    plan_partition,
    versions_by_pid,
)

A, B, C, D = 0xA0, 0xB0, 0xC0, 0xD0
OLD, NEW = 0x1111_2222_3333, 0x4444_5555_6666  # cluster keys (48 bits)
OTHER = 0x7777_8888_9999


def master(ckey=OLD):
    return Version(ckey, 0, master=True)


def replica(ckey=OLD):
    return Version(ckey, 0)


EMPTY = Version()


def plans(seq, rf, versions, ckey=NEW, pid=7):
    return {n: plan_partition(pid, seq, rf, versions, ckey, n) for n in seq}


def check_consistent(p: dict) -> None:
    """Every node agrees on the global decisions; every expected immigration has a sender."""
    nodes = list(p)
    first = p[nodes[0]]
    for plan in p.values():
        assert (plan.replicas, plan.working_master, plan.duplicates) == (
            first.replicas, first.working_master, first.duplicates)
    fm = first.final_master
    sent = set()  # (src, dst)
    for src, plan in p.items():
        for dst, kind in plan.emigrate_to:
            assert src in p[dst].immigrate_from, (src, dst, kind)
            sent.add((src, dst))
    for dst in p[fm].contingent_to:
        assert p[dst].immigrate_from == frozenset({fm})
        sent.add((fm, dst))
    for dst, plan in p.items():
        for src in plan.immigrate_from:
            assert (src, dst) in sent, f"{dst:x} waits for {src:x}, which sends nothing"
        if dst != fm:
            assert not plan.contingent_to and not plan.witnesses
    for n, plan in p.items():
        if n in first.replicas:
            assert not plan.drop
    # every emigration is to the final master, except the final master's own contingent ones
    for src, plan in p.items():
        for dst, kind in plan.emigrate_to:
            if kind == CONTINGENT:
                assert src == fm and dst in first.replicas
            else:
                assert dst == fm and src != fm


def test_fresh_cluster_nothing_migrates():
    seq = (A, B, C)
    p = plans(seq, 2, dict.fromkeys(seq, EMPTY))
    check_consistent(p)
    for plan in p.values():
        assert plan.working_master == A
        assert not plan.immigrate_from and not plan.emigrate_to and not plan.drop
    assert p[A].version == Version(version_ckey(NEW), 0, master=True)
    assert p[B].version == Version(version_ckey(NEW), 0)
    assert p[C].version == EMPTY


def test_master_leaves_rf2_replica_promoted_new_replica_fed_by_it():
    # Before: A master, B replica (seq A, B, C). A leaves: the sequence becomes (B, C).
    seq = (B, C)
    p = plans(seq, 2, {B: replica(), C: EMPTY})
    check_consistent(p)
    assert p[B].working_master == B and p[B].final_master == B
    assert p[B].emigrate_to == ((C, CONTINGENT),)  # the final master is already working master
    assert p[C].immigrate_from == {B}
    assert p[B].version == Version(version_ckey(NEW), 0, master=True)
    assert p[C].version == Version(version_ckey(NEW), 0, subset=True, evade=True)
    assert p[C].final_version == Version(version_ckey(NEW), 0)


def test_replica_leaves_rf2_new_replica_immigrates_from_final_master():
    seq = (A, C)  # B (the replica) left; C is the new replica
    p = plans(seq, 2, {A: master(), C: EMPTY})
    check_consistent(p)
    assert p[A].working_master == A
    assert p[A].emigrate_to == ((C, CONTINGENT),)
    assert p[C].immigrate_from == {A}


def test_node_joins_at_position_0_old_master_acts_until_handoff():
    # Before: B master, C replica. D joins and lands at position 0: sequence (D, B, C).
    seq = (D, B, C)
    p = plans(seq, 2, {D: EMPTY, B: master(), C: replica()})
    check_consistent(p)
    assert p[D].working_master == B  # acting master
    assert p[B].emigrate_to == ((D, ACTING_MASTER),)
    assert p[D].immigrate_from == {B}
    assert p[D].contingent_to == ()  # B stays a replica with its full copy
    assert p[D].witnesses == (C,)  # C is no longer a replica but holds data: dropped at ALL_DONE
    assert not p[C].drop and p[C].version == replica()
    assert p[B].version == master(version_ckey(NEW))
    assert p[D].version == Version(version_ckey(NEW), 0, subset=True, evade=True)
    assert p[D].final_version == master(version_ckey(NEW))


def test_node_joins_at_position_1_master_fills_it():
    seq = (B, D, C)
    p = plans(seq, 2, {D: EMPTY, B: master(), C: replica()})
    check_consistent(p)
    assert p[B].working_master == B
    assert p[B].emigrate_to == ((D, CONTINGENT),)
    assert p[D].immigrate_from == {B}
    assert p[B].witnesses == (C,)


def test_restarted_node_with_isolated_copy_is_a_duplicate_merged_into_the_final_master():
    seq = (A, B, C)
    p = plans(seq, 2, {A: master(), B: ISOLATED, C: replica()})  # B restarted, C became replica meanwhile
    check_consistent(p)
    assert p[A].working_master == A
    assert p[A].duplicates == (B,)
    assert p[A].immigrate_from == {B}
    assert p[B].emigrate_to == ((A, DUPLICATE),)
    assert p[B].immigrate_from == {A}  # every replica is an immigrator when duplicates exist
    assert p[A].contingent_to == (B,)
    assert p[A].witnesses == (C,)


def test_whole_cluster_restart_every_isolated_copy_is_merged():
    seq = (A, B, C)
    p = plans(seq, 2, dict.fromkeys(seq, ISOLATED))
    check_consistent(p)
    assert p[A].working_master == A
    assert p[A].duplicates == (B, C)
    assert p[A].immigrate_from == {B, C}
    assert p[C].emigrate_to == ((A, DUPLICATE),)
    assert p[A].witnesses == (C,)


def test_split_heal_two_lineages_are_duplicates():
    # Side 1 (A, C) ran under OLD with C master, side 2 (B) under OTHER as master.
    seq = (A, B, C)
    p = plans(seq, 2, {A: replica(OLD), B: master(OTHER), C: master(OLD)})
    check_consistent(p)
    assert p[A].working_master == B  # the first master flag in sequence order
    # one full copy per other lineage: A holds a full copy of OLD, first in sequence
    assert p[A].duplicates == (A,)
    assert p[B].emigrate_to == ((A, ACTING_MASTER),)
    assert p[A].immigrate_from == {B}
    assert p[A].contingent_to == (B,)


def test_split_heal_final_master_is_working_master_waits_for_the_other_side():
    seq = (A, B, C)
    p = plans(seq, 2, {A: master(OLD), B: master(OTHER), C: replica(OLD)})
    check_consistent(p)
    assert p[A].working_master == A
    assert p[A].duplicates == (B,)
    assert p[A].immigrate_from == {B}
    assert p[B].emigrate_to == ((A, DUPLICATE),)
    assert p[A].contingent_to == (B,)


def test_a_duplicate_replica_stays_a_duplicate_if_the_cluster_changes_before_it_migrated():
    # Seed 937 of the data simulator: B alone acked a write that A (final master) lacks.
    # The heal's cluster breaks up before B's duplicate migration is in: the next
    # rebalance, on the versions the first one set, must still merge B into A.
    seq = (A, B, C)
    first = plans(seq, 2, {A: master(OLD), B: master(OTHER), C: EMPTY}, ckey=NEW)
    assert first[A].duplicates == (B,)
    assert first[B].version.lineage != first[A].version.lineage
    second = plans(seq, 2, {n: first[n].version for n in seq}, ckey=OTHER)
    check_consistent(second)
    assert second[A].duplicates == (B,)
    assert second[B].emigrate_to == ((A, DUPLICATE),)


def test_copies_keep_their_lineages_apart_while_duplicates_merge():
    # final master D is empty; acting master A (OLD); B another full copy of OLD; C of OTHER
    seq = (D, A, B, C)
    p = plans(seq, 4, {A: master(OLD), B: replica(OLD), C: replica(OTHER), D: EMPTY})
    check_consistent(p)
    ckey = version_ckey(NEW)
    assert p[A].duplicates == (C,)
    assert p[D].version == Version(ckey, 0, subset=True, evade=True)  # family 0: the merge's
    assert p[A].version == Version(ckey, 1, master=True)  # the acting master's lineage
    assert p[B].version == Version(ckey, 1)  # a full copy of it
    assert p[C].version == Version(ckey, 2)  # the duplicate: its own family
    with_final_master = plans(seq[1:], 3, {A: master(OLD), B: replica(OLD), C: replica(OTHER)})
    assert with_final_master[B].version == Version(ckey, 0, subset=True)  # will lack the merged records
    assert with_final_master[C].version == Version(ckey, 1)


def test_subsets_without_a_full_copy_are_all_duplicates():
    seq = (A, B, C, D)
    sub = Version(OTHER, 0, subset=True)
    p = plans(seq, 2, {A: master(), B: EMPTY, C: sub, D: sub})
    check_consistent(p)
    assert p[A].duplicates == (C, D)


def test_non_replica_with_data_and_no_immigrators_drops_at_once():
    seq = (A, B, C)  # C held a stale full copy of the same lineage
    p = plans(seq, 2, {A: master(), B: replica(), C: replica()})
    check_consistent(p)
    assert p[C].drop
    assert not p[A].drop and not p[B].drop
    assert all(not plan.emigrate_to and not plan.immigrate_from for plan in p.values())
    assert p[B].version == Version(version_ckey(NEW), 0)


def test_master_flag_moves_forward_to_an_identical_full_copy():
    seq = (A, B, C)
    p = plans(seq, 2, {A: replica(), B: master(), C: EMPTY})
    check_consistent(p)
    assert p[A].working_master == A


def test_without_master_flag_the_best_scoring_copy_serves():
    seq = (A, B, C)
    p = plans(seq, 2, {A: Version(OLD, 0, subset=True), B: EMPTY, C: Version(OLD, 0)})
    check_consistent(p)
    assert p[A].working_master == C
    assert p[C].emigrate_to == ((A, ACTING_MASTER),)


@pytest.mark.parametrize("seed", range(20))
def test_random_versions_give_consistent_plans_on_every_node(seed):
    rng = random.Random(seed)
    nodes = rng.sample(range(1, 2**40), rng.randint(1, 6))
    table = partition_table(nodes)[:256]
    choices = [EMPTY, ISOLATED, master(OLD), replica(OLD), master(OTHER), replica(OTHER),
               Version(OLD, 0, subset=True), Version(OLD, 0, subset=True, evade=True),
               Version(OTHER, 3, subset=True), Version(OLD, FAMILY_UNIQUE, subset=True)]
    versions = {n: {pid: rng.choice(choices).pack() for pid in range(len(table))} for n in nodes}
    rf = min(rng.randint(1, 3), len(nodes))
    by_node = {n: balance_namespace(table, rf, versions, NEW, n) for n in nodes}
    for pid in range(len(table)):
        check_consistent({n: by_node[n][pid] for n in nodes})
        for n in nodes:
            plan = by_node[n][pid]
            mine = unpack(versions[n][pid])
            if plan.drop:
                assert mine.has_data and n not in plan.replicas
            if n in plan.replicas:
                assert plan.final_version.ckey == version_ckey(NEW)


def test_versions_by_pid_inverts_the_exchange_form():
    assert versions_by_pid({5: (1, 2), 9: (3,)}) == {1: 5, 2: 5, 3: 9}


def test_version_pack_round_trip_and_str():
    v = Version(0xABC, 3, master=True, evade=True)
    assert unpack(v.pack()) == v
    assert str(v) == "000000000ABC.3.m-e"
    assert str(ISOLATED) == "000000000001.U.-s-"
    assert unpack(0) == Version() and not Version().has_data
