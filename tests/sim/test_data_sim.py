"""The simulator with data: acknowledged writes survive crashes; splits lose some, and we count them."""

import pytest

from cluster.sim.data import POLICIES, DataConfig, DataSimulation, main, run_seed
from cluster.sim.faults import Fault, Schedule
from cluster.sim.simulation import SimConfig

SEEDS = range(200)


@pytest.mark.parametrize("seed", SEEDS)
def test_seed(seed):
    """Crash-only seeds (RF 2, one node down at a time): no acknowledged write lost under
    last-update-time; under generation only to an older write in doubt on a master that crashed
    (as on the real server), and the copies agree. Split seeds: the cluster settles under both
    policies; losses are counted, not failed. Both: nothing written after the heal is lost."""
    for policy in POLICIES:
        r = run_seed(seed, policy)
        assert r.sim.ok, "\n".join(r.sim.violations[:5])
        assert r.acked > 50 and r.acked_after_heal > 10
        if r.kind == "crash":
            assert r.lost == r.lost_to_doubt and (policy == "generation" or r.lost == 0)


def test_a_seed_replays_exactly():
    a, b = run_seed(7), run_seed(7)
    assert a.sim.digest == b.sim.digest
    assert (a.acked, a.doubted, a.lost, a.stale_reads) == (b.acked, b.doubted, b.lost, b.stale_reads)


def test_master_crash_under_writes_loses_nothing():
    sim = DataSimulation(SimConfig(seed=11, nodes=3, fault_ms=9000, settle_ms=30_000), DataConfig(kind="crash"))
    sim.schedule = Schedule((Fault(4000, "crash", (2,)), Fault(6500, "restart", (2,))), None)
    r = sim.run()
    assert r.sim.ok, r.sim.violations[:5]
    assert r.lost == 0 and r.acked > 100


def test_a_long_split_with_writes_on_both_sides_loses_writes_under_generation():
    lost = {}
    for policy in POLICIES:
        sim = DataSimulation(SimConfig(seed=3, nodes=4, fault_ms=9000, settle_ms=30_000),
                             DataConfig(kind="split", policy=policy))
        split = ((0, 1), (2, 3), True)
        sim.schedule = Schedule((Fault(3000, "partition", split), Fault(8000, "partition_end", split)), None)
        r = sim.run()
        assert r.sim.ok, r.sim.violations[:5]
        lost[policy] = r.lost
    # both sides took writes to the same keys: generation keeps the side with more of them
    assert lost["generation"] > 0
    assert lost["last-update-time"] == 0  # one perfect clock and one operation per key at a time


def test_cli_reports_losses_per_policy(capsys):
    assert main(["--data", "--seeds", "4", "--first-seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "8 runs of 4 seeds, 0 failed" in out  # every seed under both policies
    assert "split seeds, policy generation" in out and "acked writes lost" in out


def test_cli_through_the_package_entry_point(capsys):
    from cluster.sim.__main__ import main as sim_main

    assert sim_main(["--data", "--seed", "2", "--nodes", "3"]) == 0
    assert "seed 2 crash generation: ok" in capsys.readouterr().out
