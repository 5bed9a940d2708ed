"""Clustering (Paxos, quantum timing) driven directly; whole-cluster scenarios are in tests/sim."""

import random

from cluster.core.clustering import ClusteringConfig, Timing
from cluster.core.effects import ClusterChanged, FabricSend, Orphaned
from cluster.core.heartbeat import HeartbeatConfig
from cluster.core.membership import Membership
from cluster.core.messages import (
    Accept,
    Accepted,
    ChangeApplied,
    JoinReject,
    JoinRequest,
    Learn,
    Prepare,
    PrepareNack,
    Promise,
    Pulse,
)

A, B, C = 0xA0, 0xB0, 0xC0


def node(node_id=A, rng=None, **clustering):
    return Membership(
        node_id,
        cluster_name="test",
        endpoint=f"{node_id:x}:3002",
        fabric_endpoint=f"{node_id:x}:3001",
        clustering_config=ClusteringConfig(**clustering),
        rng=rng or random.Random(1),
        now_ms=0,
    )


def fabric(m):
    sends, events = m.ready()
    return [(s.node, s.msg) for s in sends if isinstance(s, FabricSend)], events


def run_alone(m, until_ms):
    events = []
    for now in range(0, until_ms, 75):
        m.tick(now)
        events += m.ready()[1]
    return events


def test_default_timing_matches_the_spec_table():
    t = Timing.of(interval=150, timeout=10, latency=5)
    assert (t.quantum, t.proposal_timeout, t.paxos_retransmit) == (1810, 905, 100)
    assert (t.join_timeout, t.join_retransmit, t.join_blackout, t.sync_check) == (4525, 75, 300, 150)
    assert (t.wait_departed, t.wait_adjacency) == (1810, 155)
    assert Timing.of(150, 10, 5, quantum=400).quantum == 400


def test_lonely_node_forms_a_cluster_of_one_at_its_first_quantum():
    m = node()
    events = run_alone(m, 2000)
    changed = [e for e in events if isinstance(e, ClusterChanged)]
    assert len(changed) == 1 and changed[0].succession == (A,)
    assert 0 < changed[0].cluster_key < 1 << 48
    assert m.clustering.is_principal and m.clustering.synced


def test_min_cluster_size_keeps_a_lonely_node_orphan():
    m = node(min_cluster_size=2)
    assert not any(isinstance(e, ClusterChanged) for e in run_alone(m, 10_000))
    assert m.clustering.is_orphan


class FixedKeys:
    """An rng whose 48-bit draws repeat a given list, to check the key rules."""

    def __init__(self, keys):
        self.keys = list(keys)

    def getrandbits(self, bits):
        return self.keys.pop(0) if bits == 48 else 7


def test_new_cluster_key_is_never_zero_nor_the_current_one():
    m = node(rng=FixedKeys([0, 0x111, 0x111, 0x222]), quantum_interval_ms=500)
    run_alone(m, 600)
    assert m.cluster_key == 0x111
    m.clustering._start_round((A,), now_ms=700)  # re-propose the same membership
    m.tick(700)
    assert m.cluster_key == 0x222


def test_acceptor_promises_accepts_and_learns_from_a_proposer():
    m = node()
    m.step(Prepare(B, seq=10), now_ms=1)
    assert fabric(m)[0] == [(B, Promise(A, 10, B))]
    m.step(Prepare(C, seq=5), now_ms=2)  # older proposal
    assert fabric(m)[0] == [(C, PrepareNack(A, 5, C, max_seq=10))]
    m.step(Accept(B, seq=10), now_ms=3)
    assert fabric(m)[0] == [(B, Accepted(A, 10, B))]
    m.step(Learn(B, 10, 0x42, (B, A)), now_ms=4)
    sends, events = fabric(m)
    assert sends == [(B, ChangeApplied(A, 0x42, (B, A)))] and events == []  # not yet synced
    m.step(ChangeApplied(B, 0x42, (B, A)), now_ms=5)
    sends, events = fabric(m)
    assert ClusterChanged(0x42, (B, A)) in events
    assert m.clustering.principal == B


def test_duplicate_accept_and_learn_after_applying_do_not_reinstall():
    m = node()
    for msg in (Prepare(B, 10), Accept(B, 10), Learn(B, 10, 0x42, (B, A)), ChangeApplied(B, 0x42, (B, A))):
        m.step(msg, now_ms=1)
    m.ready()
    m.step(Accept(B, 10), now_ms=2)  # delayed duplicate
    m.step(Learn(B, 10, 0x42, (B, A)), now_ms=3)  # retransmission
    sends, events = fabric(m)
    assert sends[-1] == (B, ChangeApplied(A, 0x42, (B, A)))
    assert events == [] and m.clustering.synced


def test_learn_without_accept_is_not_applied():
    m = node()
    m.step(Prepare(B, seq=10), now_ms=1)
    m.step(Learn(B, 10, 0x42, (B, A)), now_ms=2)
    assert m.cluster_key == 0


def test_member_only_answers_its_principal():
    m = node()
    for msg in (Prepare(B, 10), Accept(B, 10), Learn(B, 10, 0x42, (B, A)), ChangeApplied(B, 0x42, (B, A))):
        m.step(msg, now_ms=1)
    m.ready()
    m.step(Prepare(C, seq=99), now_ms=2)  # C is not our principal
    assert fabric(m)[0] == [(C, PrepareNack(A, 99, C, max_seq=99))]
    m.step(Prepare(B, seq=100), now_ms=3)
    assert fabric(m)[0] == [(B, Promise(A, 100, B))]


def test_members_reject_join_requests_principals_queue_them():
    member = node()
    for msg in (Prepare(B, 10), Accept(B, 10), Learn(B, 10, 0x42, (B, A)), ChangeApplied(B, 0x42, (B, A))):
        member.step(msg, now_ms=1)
    member.ready()
    member.step(JoinRequest(C), now_ms=2)
    assert fabric(member)[0] == [(C, JoinReject(A))]
    principal = node()
    run_alone(principal, 2000)
    principal.step(JoinRequest(C), now_ms=2001)
    assert fabric(principal)[0] == []


def test_principal_whose_cluster_falls_below_min_cluster_size_becomes_orphan():
    m = node(min_cluster_size=2, quantum_interval_ms=500)
    for msg in (Prepare(A, 10), Accept(A, 10), Learn(A, 10, 0x42, (A, B)), ChangeApplied(B, 0x42, (A, B))):
        m.step(msg, now_ms=1)
    assert m.clustering.is_principal
    events = []
    for now in range(0, 2000, 75):  # B never pulses: it is dead from the start
        m.tick(now)
        events += m.ready()[1]
    assert Orphaned() in events and m.clustering.is_orphan


def test_heartbeat_config_is_shared_with_clustering_timing():
    m = Membership(
        A,
        cluster_name="t",
        endpoint="a",
        fabric_endpoint="a",
        heartbeat_config=HeartbeatConfig(interval_ms=100, timeout=5),
        rng=random.Random(0),
        now_ms=0,
    )
    assert m.clustering.timing.quantum == min(5000, 500 + 2 * 105)
    m.heartbeat.config.set_interval(300)
    assert m.clustering.timing.quantum == 1500 + 2 * 305
    assert m.tick_ms == 75


def test_first_quantum_counts_from_the_first_tick_not_from_construction():
    """A node built at 0 that starts ticking only at 1000 (a slow start) still gives its seeds
    a whole quantum: B, principal of (B, C), is first heard 100 ms after that first tick, and A
    asks to join it rather than form a cluster of its own (which would come back with an empty
    master copy of every partition when the two clusters merge)."""
    m = node(quantum_interval_ms=200)
    m.tick(1000)
    _, events = fabric(m)
    pulse = Pulse(B, "test", 1, 1, f"{B:x}:3002", f"{B:x}:3001", (C,), (), 0x42, (B, C), 3)
    m.step(pulse, 1100)
    sent = []
    for now in range(1100, 1500, 25):
        m.tick(now)
        sends, more = fabric(m)
        sent += sends
        events += more
    assert not [e for e in events if isinstance(e, ClusterChanged)], events
    assert (B, JoinRequest(A)) in sent


def test_a_driver_wakes_at_the_end_of_the_quantum_not_on_the_next_timer_tick():
    m = node()
    m.tick(0)  # an orphan: busy, every tick may act on the latest pulses
    assert m.next_wake(0) == m.tick_ms == 75
    assert m.clustering.quantum_due() == 1810
    assert m.next_wake(1790) == 1810  # not 1865
