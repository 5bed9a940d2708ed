"""Hundreds of seeded fault schedules; every one must satisfy the simulator's invariants."""

import pytest

from cluster.sim.simulation import SimConfig, Simulation

MIXES = [
    # (label, seeds, config overrides)
    ("5 nodes", range(0, 250), {}),
    ("3 nodes", range(1000, 1060), {"nodes": 3}),
    ("7 nodes min-cluster-size 3", range(2000, 2030), {"nodes": 7, "min_cluster_size": 3}),
    ("4 nodes short quantum", range(3000, 3010), {"nodes": 4, "quantum_ms": 500}),
    ("5 nodes through the codec", range(4000, 4010), {"wire": True}),
]
CASES = [pytest.param(seed, overrides, id=f"{label}-seed{seed}") for label, seeds, overrides in MIXES for seed in seeds]


@pytest.mark.parametrize(("seed", "overrides"), CASES)
def test_seed_satisfies_invariants(seed, overrides):
    result = Simulation(SimConfig(seed=seed, fault_ms=15_000, **overrides)).run()
    assert result.ok, "\n".join([*result.violations, f"replay: {result.config.replay_command()}"])
    assert result.converged_after_ms is not None


def test_case_count():
    assert len(CASES) >= 200
