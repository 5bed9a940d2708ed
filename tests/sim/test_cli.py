"""``python -m cluster.sim``: summary for many seeds, replay command for a failing one."""

from cluster.sim.__main__ import main, report_failure
from cluster.sim.simulation import SimConfig, SimResult


def test_many_seeds_print_a_summary(capsys):
    assert main(["--seeds", "3", "--nodes", "3", "--fault-ms", "6000"]) == 0
    out = capsys.readouterr().out
    assert "3 seeds, 0 failed" in out and "simulated s" in out


def test_one_seed_prints_its_schedule_and_digest(capsys):
    assert main(["--seed", "5", "--nodes", "3", "--fault-ms", "6000"]) == 0
    assert "seed 5: ok" in capsys.readouterr().out


def test_failure_report_gives_the_exact_replay_command(capsys):
    config = SimConfig(seed=77, nodes=4, quantum_ms=500)
    result = SimResult(config, ["t=1.0ms: something broke"], None, 1, 0.1, 0, "", None)
    report_failure(result)
    out = capsys.readouterr().out
    assert "seed 77 FAILED" in out and "something broke" in out
    assert "replay: python -m cluster.sim --seed 77 --nodes 4 --quantum-ms 500" in out
