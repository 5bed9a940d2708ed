"""Cold formation: start 4 fresh nodes at once, time until all agree on one cluster of 4.

"Agree" as in bench/failover.py (`cluster-stable:size=4` with one key on every node, polled
every 10 ms), counted from the moment the first process is spawned, so it includes each
process's own start-up (Python imports for ours, asd's initialisation for the real one).
Memory storage, RF 2, heartbeat 150 ms × 10. With `--asd PATH` (or $ASD_BIN) trials
alternate between the real server and ours.

    .venv/bin/python bench/formation.py --trials 10 --asd /work/asd/bin/asd
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.failover import agreed, wait_until  # noqa: E402
from bench.real_server import add_asd_argument, asd_path, cluster_kinds, print_side_by_side  # noqa: E402


def form(factory, nodes: int, settings: list[str]) -> float:
    lc = factory(nodes=nodes, rf=2, settings=settings)
    try:
        lc.run_dir.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        for spec in lc.specs:
            lc.nodes[spec.name] = lc._node(spec).start(wait=0)
        wait_until(lambda: agreed(lc.nodes.values(), nodes), 60, f"{nodes} nodes agreed", 0.01)
        return time.monotonic() - start
    finally:
        lc.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=10, help="per cluster kind")
    ap.add_argument("--nodes", type=int, default=4)
    add_asd_argument(ap)
    args = ap.parse_args()
    settings = ["network.heartbeat.interval=150", "network.heartbeat.timeout=10",
                "namespaces.test.storage-engine.type=memory"]
    kinds = cluster_kinds(asd_path(args.asd))
    results: dict[str, list[float]] = {}
    for i in range(args.trials):
        for kind in reversed(kinds):  # the real server first, when there is one
            took = form(kinds[kind], args.nodes, settings)
            results.setdefault(kind, []).append(took)
            print(f"trial {i + 1:2} {kind:4}: {args.nodes} nodes agreed {took:.3f}s after spawn", flush=True)
    print_side_by_side("s", {f"cold formation, {args.nodes} nodes": results})


if __name__ == "__main__":
    main()
