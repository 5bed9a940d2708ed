"""Split seeds of the data simulator that once lost acknowledged writes under
last-update-time, which with the simulator's one perfect clock loses nothing."""

from cluster.sim.data import LAST_UPDATE_TIME, run_seed


def test_seed_937_heal_broken_up_before_the_duplicate_migrated():
    # the duplicate's replica copy claimed the master's lineage before its migration was in
    r = run_seed(937, LAST_UPDATE_TIME)
    assert r.kind == "split" and r.sim.ok
    assert r.lost == 0
