"""Same seed, same run: the trace digest proves it."""

from cluster.sim.simulation import SimConfig, Simulation


def digest(**config):
    return Simulation(SimConfig(**config)).run().digest


def test_same_seed_same_trace():
    assert digest(seed=11) == digest(seed=11)
    assert digest(seed=12, nodes=4, wire=True) == digest(seed=12, nodes=4, wire=True)


def test_different_seeds_differ():
    assert digest(seed=11) != digest(seed=13)


def test_replay_command_names_the_non_default_settings():
    config = SimConfig(seed=1234, nodes=7, min_cluster_size=3, wire=True)
    assert config.replay_command() == "python -m cluster.sim --seed 1234 --nodes 7 --min-cluster-size 3 --wire"


def test_same_digest_across_processes_with_different_hash_seeds():
    import os
    import subprocess
    import sys

    def run_cli(hash_seed):
        env = {**os.environ, "PYTHONHASHSEED": str(hash_seed)}
        cmd = [sys.executable, "-m", "cluster.sim", "--seed", "42", "--nodes", "4", "--fault-ms", "8000"]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=True).stdout
        return out.rsplit("digest ", 1)[1].strip()

    assert run_cli(1) == run_cli(2) == digest(seed=42, nodes=4, fault_ms=8000)


def tick_always(m):
    """Every tick does everything: no deadline lets the simulator or Membership skip one."""
    m.next_deadline = lambda now_ms: now_ms
    m.clustering.next_deadline = lambda now_ms: now_ms
    m.exchange.next_deadline = lambda: 0


def test_skipping_ticks_before_the_deadline_changes_nothing():
    # next_deadline promises that earlier ticks are no-ops: ticking on every 75 ms grid
    # point instead must give the very same run.
    from cluster.core.membership import Membership

    def factory(*args, **kwargs):
        m = Membership(*args, **kwargs)
        tick_always(m)
        return m

    configs = [
        *(SimConfig(seed=s) for s in range(6)),
        SimConfig(seed=7, nodes=7, min_cluster_size=3),
        SimConfig(seed=8, nodes=4, quantum_ms=500),
        SimConfig(seed=9, nodes=3, wire=True),
    ]
    for config in configs:
        skipping = Simulation(config).run()
        every = Simulation(config, membership_factory=factory).run()
        assert (skipping.digest, skipping.messages) == (every.digest, every.messages), config


def test_a_data_seed_replays_across_processes_with_different_hash_seeds():
    """The data simulator too: nothing that orders messages may depend on str hashing."""
    import os
    import subprocess
    import sys

    from cluster.sim.data import run_seed

    def run_cli(hash_seed):
        env = {**os.environ, "PYTHONHASHSEED": str(hash_seed)}
        cmd = [sys.executable, "-m", "cluster.sim", "--data", "--seed", "5", "--policy", "generation"]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=True).stdout
        return out.split("digest ", 1)[1].split()[0]

    assert run_cli(1) == run_cli(2) == run_cli(3) == run_seed(5, "generation").sim.digest
