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


# Runs of both simulators: crash and split data seeds under both policies, wire mode, and
# membership runs; each digest covers every message's order and every decision.
_RUNS = """
import cluster
from cluster.sim.data import run_seed
from cluster.sim.simulation import SimConfig, Simulation
data = [(937, "last-update-time", False), (937, "generation", False), (6, "generation", False),
        (15, "last-update-time", True), (21, "generation", False), (8, "last-update-time", False)]
membership = [(3, 5, False), (4, 4, True), (7, 7, False)]
digests = [cluster.__file__, *(run_seed(seed, policy, wire=wire).sim.digest for seed, policy, wire in data),
           *(Simulation(SimConfig(seed=seed, nodes=nodes, wire=wire)).run().digest for seed, nodes, wire in membership)]
print(" ".join(digests))
"""


def _shift_addresses(n: int) -> str:
    """A prelude that frees objects of many sizes in a shuffled order, so that the run's
    objects land in those holes: addresses no longer follow the order of allocation."""
    return (f"import random\n_held = [bytes(i % 480) for i in range({n})]\n"
            f"random.Random({n}).shuffle(_held)\ndel _held[::2]\n")


def test_digests_do_not_depend_on_how_the_process_starts(tmp_path):
    """Nothing may depend on object addresses (a set of eq=False dataclasses, a sort by id())
    or on str hashing: the same runs, in processes started as `python -c`, a script file and
    stdin, with different hash seeds and heap layouts, give the same digests as this process.
    (Checked to fail with the rebalance's plans installed in id() order of their partition
    states, or a set of PendingWrite deciding Replication.retarget's order.)

    Every process imports the `cluster` this test imported: `-c` and stdin put the working
    directory first on sys.path, a script its own directory, so without PYTHONPATH the start
    modes may import different trees (a checkout vs the editable install) and differ for that."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import cluster

    env = {**os.environ, "PYTHONPATH": str(Path(cluster.__file__).parents[1])}
    script = tmp_path / "runs.py"
    script.write_text(_shift_addresses(50_000) + _RUNS)
    starts = [
        ([sys.executable, "-c", _RUNS], None, "1"),
        ([sys.executable, str(script)], None, "2"),
        ([sys.executable, "-"], _shift_addresses(20_011) + _RUNS, "3"),
    ]
    procs = [(subprocess.Popen(cmd, cwd=tmp_path, env={**env, "PYTHONHASHSEED": seed}, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), stdin)
             for cmd, stdin, seed in starts]  # concurrently: each takes a few seconds
    outputs = []
    for proc, stdin in procs:
        out, err = proc.communicate(stdin, timeout=120)
        assert proc.returncode == 0, err
        outputs.append(out.split())
    here: dict = {}
    exec(_RUNS, here)
    assert outputs[0] == outputs[1] == outputs[2] == here["digests"]
