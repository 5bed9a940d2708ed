"""YCSB workload A through our harness (chaos.load.Load: Locust, unthrottled) on a 3-node
RF 2 cluster of ours and, with `--asd PATH` (or $ASD_BIN), of the real server, alternating
trial by trial. Ops/s = mean of the run's whole seconds (first and last cut off), as in
bench/docker_vs_local.py; the nodes' CPU (user + system, all three) is taken over the same
call (preload included) and divided by the operations of the timed phase.

    .venv/bin/python bench/ycsb_a.py --trials 3 --seconds 20 --users 8 --asd /work/asd/bin/asd
"""

import argparse
import sys
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.docker_vs_local import throughput  # noqa: E402
from bench.real_server import add_asd_argument, asd_path, cluster_kinds, print_side_by_side  # noqa: E402


def cpu_s(pids: list[int]) -> float:
    return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=3, help="per cluster kind")
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--users", type=int, default=8)
    add_asd_argument(ap)
    args = ap.parse_args()
    kinds = cluster_kinds(asd_path(args.asd))
    ops: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    for i in range(args.trials):
        for kind in reversed(kinds):  # the real server first, when there is one
            with kinds[kind](nodes=3, rf=2, settings=["namespaces.test.storage-engine.type=memory"]) as lc:
                pids = [node.pid for node in lc.nodes.values()]
                cpu0 = cpu_s(pids)
                per_s = throughput(lc, args.seconds, args.users)
                used = cpu_s(pids) - cpu0
            ops.setdefault(kind, []).append(per_s)
            cpu.setdefault(kind, []).append(used * 1e6 / (per_s * args.seconds))
            print(f"trial {i + 1} {kind:4}: {per_s:.0f} ops/s, nodes' CPU ≈ {cpu[kind][-1]:.0f} µs/op", flush=True)
    print(f"YCSB A, 3 nodes RF 2 memory, {args.users} users, {args.seconds} s, unthrottled")
    print_side_by_side("ops/s", {"YCSB A ops/s": ops})
    print_side_by_side("µs/op", {"nodes' CPU per op (approx.)": cpu})


if __name__ == "__main__":
    main()
