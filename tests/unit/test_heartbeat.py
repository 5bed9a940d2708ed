"""The mesh heartbeat state machine, driven directly with pulses and ticks."""

import pytest

from cluster.core.effects import AdjacencyChanged, HeartbeatSend, NodeArrived, NodeDeparted, Outbox
from cluster.core.heartbeat import Heartbeat, HeartbeatConfig
from cluster.core.messages import Pulse

A, B, C, D = 0xA0, 0xB0, 0xC0, 0xD0


def make(node=A, seeds=("b0:3002",), **config):
    out = Outbox(node)
    hb = Heartbeat(
        node,
        out,
        cluster_name="test",
        endpoint=f"{node:x}:3002",
        fabric_endpoint=f"{node:x}:3001",
        seeds=seeds,
        config=HeartbeatConfig(**config),
        incarnation=1,
        now_ms=0,
    )
    return hb, out


def pulse(src, stamp, adjacency=(), known=(), name="test", incarnation=1, key=0, succession=()):
    return Pulse(src, name, incarnation, stamp, f"{src:x}:3002", f"{src:x}:3001", adjacency, known, key, succession, 0)


def events(out):
    return out.take()[1]


def test_pulses_every_interval_to_seeds_with_our_view():
    hb, out = make(seeds=("b:3002", "c:3002", "a0:3002"))  # our own endpoint is not a target
    hb.cluster_key, hb.succession = 0x1234, (A,)
    hb.tick(0)
    sends, _ = out.take()
    assert sorted(s.endpoint for s in sends) == ["b:3002", "c:3002"]
    assert all(isinstance(s, HeartbeatSend) and s.msg.cluster_key == 0x1234 for s in sends)
    hb.tick(100)
    assert out.take()[0] == []
    hb.tick(150)
    assert len(out.take()[0]) == 2


def test_arrival_adjacency_change_and_expiry():
    hb, out = make()
    hb.on_pulse(pulse(B, 1), now_ms=10)
    assert events(out) == [NodeArrived(B)] and hb.is_alive(B)
    hb.on_pulse(pulse(B, 2, adjacency=(A,)), now_ms=160)
    assert events(out) == [AdjacencyChanged(B)]
    hb.tick(160 + 1500)  # exactly interval x timeout: still alive
    assert hb.is_alive(B)
    hb.tick(160 + 1501)
    assert NodeDeparted(B) in events(out) and not hb.is_alive(B)


def test_stale_and_duplicate_pulses_are_dropped_but_a_restart_is_not():
    hb, out = make()
    hb.on_pulse(pulse(B, 100, adjacency=(A,)), now_ms=10)
    hb.on_pulse(pulse(B, 50), now_ms=20)  # delayed
    assert hb.adjacency_of(B) == {A}
    assert hb.adjacency[B].heard_at == 10
    hb.on_pulse(pulse(B, 5, incarnation=2), now_ms=30)  # restarted: its clock starts again
    assert hb.adjacency[B].heard_at == 30


def test_cluster_name_mismatch_evicts_after_two_in_a_row():
    hb, out = make()
    hb.on_pulse(pulse(B, 1), now_ms=0)
    events(out)
    for stamp in (2, 3):
        hb.on_pulse(pulse(B, stamp, name="other"), now_ms=stamp)
    assert hb.is_alive(B)
    hb.on_pulse(pulse(B, 4, name="other"), now_ms=4)
    assert events(out) == [NodeDeparted(B, evicted=True)] and not hb.is_alive(B)
    hb.on_pulse(pulse(C, 1, name="other"), now_ms=5)  # never admitted
    assert not hb.is_alive(C)


def test_transitive_discovery_of_endpoints():
    hb, out = make(seeds=("b0:3002",))
    hb.on_pulse(pulse(B, 1, adjacency=(C,), known=((C, "c0:3002"), (A, "a0:3002"))), now_ms=0)
    hb.tick(0)
    assert sorted(s.endpoint for s in out.take()[0]) == ["b0:3002", "c0:3002"]


def test_discovered_endpoints_are_forgotten_after_ten_node_timeouts_seeds_never():
    hb, out = make(seeds=("b0:3002",))
    hb.on_pulse(pulse(B, 1, known=((C, "c0:3002"),)), now_ms=0)
    hb.tick(15_000)
    assert {s.endpoint for s in out.take()[0]} == {"b0:3002", "c0:3002"}
    hb.tick(15_001)
    hb.tick(15_150)
    assert {s.endpoint for s in out.take()[0]} == {"b0:3002"}


def test_interval_and_timeout_change_at_run_time():
    hb, out = make()
    hb.on_pulse(pulse(B, 1), now_ms=0)
    hb.config.set_interval(50)
    hb.config.set_timeout(3)
    hb.tick(0)
    hb.tick(50)
    assert len(out.take()[0]) == 2
    hb.tick(151)
    assert not hb.is_alive(B)
    with pytest.raises(ValueError):
        hb.config.set_interval(10)
    with pytest.raises(ValueError):
        hb.config.set_timeout(2)


def test_adjacency_is_bounded_by_max_cluster_size():
    hb, out = make(max_cluster_size=2)
    hb.on_pulse(pulse(B, 1), now_ms=0)
    hb.on_pulse(pulse(C, 1), now_ms=0)
    assert hb.is_alive(B) and not hb.is_alive(C)


def see(hb, adjacency):
    """Make ``hb`` adjacent to every node in ``adjacency`` (node -> what it advertises)."""
    for node, seen in adjacency.items():
        hb.on_pulse(pulse(node, 1, adjacency=tuple(seen)), now_ms=0)


def test_maximal_clique_evicts_the_node_with_most_missing_links():
    hb, _ = make()
    # B-C and B-D cannot see each other; C-D can. Dropping B leaves a full mesh.
    see(hb, {B: (A,), C: (A, D), D: (A, C)})
    assert hb.maximal_clique({B, C, D}) == (D, C, A)


def test_maximal_clique_ties_evict_the_smaller_id_and_need_mutual_adjacency():
    hb, _ = make()
    see(hb, {B: (A,), C: (A,), D: ()})  # B and C miss each other; D does not see us
    assert hb.maximal_clique({B, C, D}) == (C, A)
