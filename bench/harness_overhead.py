"""What the measurement side costs the load: YCSB throughput with the recorder and the
safety workload running, against the load alone, on the same cluster in the same run.

One Locust run (closed loop) goes on throughout; the phases alternate off, on, off, on, ...
(``--rounds`` pairs of ``--phase-s`` seconds each), with the first second of every phase
dropped, so drift of a shared machine falls on both sides alike. Throughput per phase
comes from the load's own timeseries.csv. Goal: ratio >= 0.9.

    .venv/bin/python bench/harness_overhead.py --rounds 4 --phase-s 6
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from chaos.load import Load
from chaos.recorder import Recorder, cluster_nodes
from chaos.safety import SafetyWorkload
from cluster.deploy.local_cluster import LocalCluster


def run(rounds: int, phase_s: float, users: int, safety_rate: float) -> dict[str, list[float]]:
    out = Path(tempfile.mkdtemp(prefix="harness-overhead-"))
    windows: dict[str, list[tuple[float, float]]] = {"load alone": [], "with recorder + safety": []}
    with LocalCluster(nodes=3, rf=2) as cluster:
        load = Load(cluster.seeds(), out / "load", users=users, duration=2 * rounds * phase_s + 30)
        load.preload()
        with load:
            time.sleep(3)  # past Locust's start
            for i in range(rounds):
                windows["load alone"].append(_phase(phase_s))
                recorder = Recorder(cluster_nodes(cluster), out / f"on-{i}", failures_csv=load.failures_csv)
                safety = SafetyWorkload(cluster.seeds(), keys=200, rate=safety_rate)
                with recorder, safety:
                    windows["with recorder + safety"].append(_phase(phase_s))
                safety.close()
            time.sleep(5)  # the load writes a second ~4 s after it ended
    series = pd.read_csv(out / "load" / "timeseries.csv")
    per_second = series[series["kind"] == "service"].groupby("timestamp")["count"].sum()
    return {case: [per_second[(per_second.index > start + 1) & (per_second.index <= end)].mean()
                   for start, end in spans] for case, spans in windows.items()}


def _phase(seconds: float) -> tuple[float, float]:
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--phase-s", type=float, default=6.0)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--safety-rate", type=float, default=100.0, help="safety workload operations/s")
    args = parser.parse_args()
    results = run(args.rounds, args.phase_s, args.users, args.safety_rate)
    baseline = statistics.mean(results["load alone"])
    for case, values in results.items():
        mean = statistics.mean(values)
        print(f"{case:24} {mean:8.0f} YCSB ops/s  ({', '.join(f'{v:.0f}' for v in values)})  ratio {mean / baseline:.2f}")


if __name__ == "__main__":
    main()
