"""``python -m cluster.sim``: run one seed verbosely, or many seeds and print a summary."""

import argparse
import sys
import time

from .simulation import SimConfig, SimResult, Simulation


def _parse(argv) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m cluster.sim", description=__doc__)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--seed", type=int, help="run this one seed and show its fault schedule")
    which.add_argument("--seeds", type=int, default=100, help="run seeds first-seed .. first-seed+N-1")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--nodes", type=int, default=SimConfig.nodes)
    p.add_argument("--fault-ms", type=int, default=SimConfig.fault_ms)
    p.add_argument("--settle-ms", type=int, default=SimConfig.settle_ms)
    p.add_argument("--stable-ms", type=int, default=SimConfig.stable_ms)
    p.add_argument("--min-cluster-size", type=int, default=SimConfig.min_cluster_size)
    p.add_argument("--quantum-ms", type=int, default=None)
    p.add_argument("--wire", action="store_true", help="pass every message through encode/decode")
    p.add_argument("--data", action="store_true", help="the simulator with data (see --data --help)")
    args = p.parse_args(argv)
    if args.nodes < 1 or args.seeds < 1:
        p.error("--nodes and --seeds must be >= 1")
    return args


def _config(args, seed: int) -> SimConfig:
    return SimConfig(
        seed=seed,
        nodes=args.nodes,
        fault_ms=args.fault_ms,
        settle_ms=args.settle_ms,
        stable_ms=args.stable_ms,
        min_cluster_size=args.min_cluster_size,
        quantum_ms=args.quantum_ms,
        wire=args.wire,
    )


def report_failure(result: SimResult) -> None:
    print(f"seed {result.config.seed} FAILED:")
    for violation in result.violations:
        print(f"  {violation}")
    print(f"  replay: {result.config.replay_command()}")


def main(argv=None) -> int:
    if "--data" in (sys.argv[1:] if argv is None else argv):
        from .data import main as data_main

        return data_main(argv)
    args = _parse(argv)
    if args.seed is not None:
        result = Simulation(_config(args, args.seed)).run()
        for fault in result.schedule.faults:
            print(f"  fault {fault}")
        if result.schedule.final_split:
            print(f"  final split {result.schedule.final_split}")
        print(
            f"seed {args.seed}: {'ok' if result.ok else 'FAILED'}, converged {result.converged_after_ms} ms "
            f"after faults stopped, {result.sim_ms / 1000:.1f} sim s in {result.wall_s:.2f} s, "
            f"{result.messages} messages, digest {result.digest}"
        )
        if not result.ok:
            report_failure(result)
        return 0 if result.ok else 1
    started = time.perf_counter()
    failures, sim_ms, worst = [], 0.0, 0
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        result = Simulation(_config(args, seed)).run()
        sim_ms += result.sim_ms
        if result.ok:
            worst = max(worst, result.converged_after_ms or 0)
        else:
            failures.append(result)
            report_failure(result)
    wall = time.perf_counter() - started
    print(
        f"{args.seeds} seeds, {len(failures)} failed; {sim_ms / 1000:.0f} simulated s in {wall:.1f} s wall "
        f"({sim_ms / 1000 / wall:.0f}x); slowest convergence {worst} ms after faults stopped"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
