"""Failover: SIGKILL one node of a 4-node local cluster, time until the survivors agree.

"Agree" = every survivor answers `cluster-stable:size=3` with the same cluster key, polled
every 10 ms from this process. Each trial kills either the principal (the survivors must
first notice, turn orphan and re-form) or another node (the principal evicts it), then
restarts it and waits for the 4-node cluster again. Printed next to the heartbeat budget
interval × timeout, the time a dead node takes just to be noticed.

    .venv/bin/python bench/failover.py --trials 20
"""

import argparse
import statistics
import time

from cluster.deploy.local import info_request
from cluster.deploy.local_cluster import LocalCluster, parse_info_kv


def agreed(nodes, size: int) -> bool:
    keys = set()
    for node in nodes:
        try:
            keys.add(info_request(node.host, node.port, [f"cluster-stable:size={size};ignore-migrations=true"],
                                  timeout=0.5).popitem()[1])
        except OSError:
            return False
    return len(keys) == 1 and not keys.pop().startswith("ERROR")


def principal_name(lc: LocalCluster) -> str:
    ids = {name: node.info("node") for name, node in lc.nodes.items()}
    principal = parse_info_kv(lc.nodes["n1"].info("statistics"))["cluster_principal"]
    return next(name for name, node_id in ids.items() if node_id == principal)


def trial(lc: LocalCluster, victim: str, timeout: float) -> float:
    survivors = [node for name, node in lc.nodes.items() if name != victim]
    lc.kill(victim)
    start = time.monotonic()
    while not agreed(survivors, len(survivors)):
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"survivors did not agree within {timeout}s after killing {victim}")
        time.sleep(0.01)
    took = time.monotonic() - start
    lc.restart(victim)
    return took


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--interval", type=int, default=150, help="heartbeat interval, ms")
    ap.add_argument("--timeout", type=int, default=10, help="heartbeat timeout, intervals")
    args = ap.parse_args()
    settings = [f"network.heartbeat.interval={args.interval}", f"network.heartbeat.timeout={args.timeout}",
                "namespaces.test.storage-engine.type=memory"]
    budget = args.interval * args.timeout / 1000
    results: dict[str, list[float]] = {"principal": [], "other": []}
    with LocalCluster(nodes=4, rf=2, settings=settings) as lc:
        for i in range(args.trials):
            kind = "principal" if i % 2 == 0 else "other"
            principal = principal_name(lc)
            victim = principal if kind == "principal" else next(n for n in lc.nodes if n != principal)
            took = trial(lc, victim, timeout=10 * budget + 10)
            results[kind].append(took)
            print(f"trial {i + 1:2}: killed {victim} ({kind:9}) -> survivors agreed in {took:.3f}s", flush=True)
    everything = results["principal"] + results["other"]
    print(f"\nheartbeat budget interval x timeout = {budget:.2f}s; goal <= budget + 0.6s = {budget + 0.6:.2f}s")
    print(f"{'victim':10}{'n':>4}{'median s':>10}{'p90 s':>8}{'max s':>8}{'median-budget s':>17}")
    for kind, values in [*results.items(), ("all", everything)]:
        if values:
            med = statistics.median(values)
            print(f"{kind:10}{len(values):>4}{med:>10.3f}{pct(values, 0.9):>8.3f}{max(values):>8.3f}"
                  f"{med - budget:>17.3f}")


if __name__ == "__main__":
    main()
