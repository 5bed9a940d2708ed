"""Hundreds of seeded fault schedules; every one must satisfy the simulator's invariants."""

from collections import Counter

import pytest

from cluster.sim.simulation import SimConfig, Simulation

FAULT_MS = 15_000
MIXES = [
    # (label, seeds, config overrides)
    ("5 nodes", range(0, 250), {}),
    ("3 nodes", range(1000, 1060), {"nodes": 3}),
    ("7 nodes min-cluster-size 3", range(2000, 2030), {"nodes": 7, "min_cluster_size": 3}),
    ("4 nodes short quantum", range(3000, 3010), {"nodes": 4, "quantum_ms": 500}),
    ("5 nodes through the codec", range(4000, 4010), {"wire": True}),
]
CASES = [pytest.param(seed, overrides, id=f"{label}-seed{seed}") for label, seeds, overrides in MIXES for seed in seeds]
ENDS = {"partition": "partition_end", "crash": "restart", "pause": "resume", "loss": "loss_end", "delay": "delay_end"}


def config(seed: int, overrides: dict) -> SimConfig:
    return SimConfig(seed=seed, fault_ms=FAULT_MS, **overrides)


@pytest.mark.parametrize(("seed", "overrides"), CASES)
def test_seed_satisfies_invariants(seed, overrides):
    result = Simulation(config(seed, overrides)).run()
    assert result.ok, "\n".join([*result.violations, f"replay: {result.config.replay_command()}"])
    assert result.converged_after_ms is not None


def fault_category(fault, nodes: int) -> str:
    """What a starting fault does: partitions are told apart by shape (isolate, one-way, split)."""
    if fault.kind != "partition":
        return fault.kind
    a, b, both_ways = fault.args
    if not both_ways:
        return "one_way"
    return "isolate" if min(len(a), len(b)) == 1 and len(a) + len(b) == nodes else "partition"


def test_case_count():
    """The cases above are hundreds of *different* fault schedules (the seeds the test runs, built
    exactly as the runs build them), each well formed, and together they exercise every kind of
    fault, final splits and clean endings — in every mix, not just overall."""
    assert len(CASES) >= 200
    assert len({case.id for case in CASES}) == len(CASES)
    schedules = {}
    for label, seeds, overrides in MIXES:
        categories: Counter = Counter()
        final_splits = 0
        for seed in seeds:
            cfg = config(seed, overrides)
            schedule = Simulation(cfg).schedule
            schedules.setdefault((cfg.nodes, cfg.min_cluster_size, cfg.quantum_ms, cfg.wire, schedule), []).append(seed)
            starts = [f for f in schedule.faults if f.kind in ENDS]
            assert starts, f"{label} seed {seed}: a fault phase without faults"
            ends = Counter((f.kind, f.args) for f in schedule.faults if f.kind not in ENDS)
            assert ends == Counter((ENDS[f.kind], f.args if f.kind in ("partition", "crash", "pause") else ())
                                   for f in starts), f"{label} seed {seed}: a fault that never ends"
            assert all(0 < f.at_ms <= FAULT_MS for f in schedule.faults), (label, seed, schedule)
            assert all(node < cfg.nodes for f in starts if f.kind in ("crash", "pause") for node in f.args)
            categories.update(fault_category(f, cfg.nodes) for f in starts)
            final_splits += schedule.final_split is not None
        assert set(categories) >= {"crash", "pause", "loss", "delay"}, (label, categories)
        assert set(categories) & {"partition", "one_way", "isolate"}, (label, categories)
        assert 0 < final_splits < len(seeds), (label, final_splits)
    duplicates = [seeds for seeds in schedules.values() if len(seeds) > 1]
    assert not duplicates, f"seeds running the same schedule twice: {duplicates}"
    assert len(schedules) == len(CASES)
