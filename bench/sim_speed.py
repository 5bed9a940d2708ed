"""Simulator speed: simulated seconds per wall second for a 5-node cluster.

Two workloads, each over the same seeds: a quiet cluster (heartbeats and the odd quantum
only, the steady state) and the mixed-fault runs the test suite uses (partitions, crashes,
pauses, drops, then healing). `--wire` also sends every message through the msgpack codec,
as the real node does. Each workload runs `--repeat` times and the fastest run is shown,
with its CPU time next to the wall time (on a shared machine the two differ; the ratio
that counts is against wall time). Goal: >= 1000x for 5 nodes.

    .venv/bin/python bench/sim_speed.py --seeds 10
"""

import argparse
import time

from cluster.sim.simulation import SimConfig, Simulation


def run(configs: list[SimConfig]) -> tuple[float, float, float, int]:
    sim_ms, messages = 0, 0
    wall, cpu = time.perf_counter(), time.process_time()
    for config in configs:
        result = Simulation(config).run()
        sim_ms += result.sim_ms
        messages += result.messages
    return sim_ms / 1000, time.perf_counter() - wall, time.process_time() - cpu, messages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3, help="runs per workload; the fastest is shown")
    ap.add_argument("--wire", action="store_true", help="encode/decode every message")
    args = ap.parse_args()
    workloads = {
        # no faults: fault_ms=0 leaves the stable phase to run the steady state
        "quiet": [SimConfig(seed=s, nodes=args.nodes, fault_ms=0, stable_ms=60_000, wire=args.wire)
                  for s in range(args.seeds)],
        "mixed faults": [SimConfig(seed=s, nodes=args.nodes, wire=args.wire) for s in range(args.seeds)],
    }
    print(f"{args.nodes} nodes, {args.seeds} seeds per workload, wire codec {'on' if args.wire else 'off'}, "
          f"best of {args.repeat}")
    print(f"{'workload':14}{'sim s':>8}{'wall s':>8}{'cpu s':>8}{'messages':>10}{'sim s / wall s':>16}{'sim s / cpu s':>15}")
    for name, configs in workloads.items():
        sim_s, wall_s, cpu_s, messages = min((run(configs) for _ in range(args.repeat)), key=lambda r: r[1])
        print(f"{name:14}{sim_s:>8.0f}{wall_s:>8.2f}{cpu_s:>8.2f}{messages:>10}{sim_s / wall_s:>15.0f}x{sim_s / cpu_s:>14.0f}x")


if __name__ == "__main__":
    main()
