"""Failover: SIGKILL one node of a 4-node local cluster, time until the survivors agree.

"Agree" = every survivor answers `cluster-stable:size=3` with the same cluster key, polled
every 10 ms from this process. Each trial kills either the principal (the survivors must
first notice, turn orphan and re-form) or another node (the principal evicts it), then
restarts it and waits for the 4-node cluster again. Printed next to the heartbeat budget
interval × timeout, the time a dead node takes just to be noticed.

With `--records N` the cluster first holds N records of one 1 KiB bin (written with the
official client) and each trial also times kill → migrations done: the survivors agree and
every one reports `migrate_partitions_remaining` 0 (polled every 50 ms); after the restart
the next trial waits for the restarted node's migrations too.

With `--asd PATH` (or $ASD_BIN) a cluster of the real server runs beside ours, with the same
ports layout, settings and victims, and the trials alternate: real, ours, real, ours, ...

    .venv/bin/python bench/failover.py --trials 20
    .venv/bin/python bench/failover.py --trials 10 --asd /work/asd/bin/asd --records 20000
"""

import argparse
import sys
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.real_server import add_asd_argument, asd_path, cluster_kinds, print_side_by_side  # noqa: E402
from cluster.deploy.local import info_request  # noqa: E402
from cluster.deploy.local_cluster import LocalCluster, parse_info_kv  # noqa: E402

VALUE = b"v" * 1024


def agreed(nodes, size: int) -> bool:
    keys = set()
    for node in nodes:
        try:
            keys.add(info_request(node.host, node.port, [f"cluster-stable:size={size};ignore-migrations=true"],
                                  timeout=0.5).popitem()[1])
        except OSError:
            return False
    return len(keys) == 1 and not keys.pop().startswith("ERROR")


def migrations_done(nodes) -> bool:
    try:
        return all(int(parse_info_kv(node.info("statistics"))["migrate_partitions_remaining"]) == 0
                   for node in nodes)
    except (OSError, KeyError, ValueError):
        return False


def wait_until(predicate, timeout: float, what: str, poll: float) -> float:
    """Seconds until `predicate()` held (polled every `poll` s); TimeoutError after `timeout`."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"not {what} within {timeout}s")
        time.sleep(poll)
    return time.monotonic() - start


def principal_name(lc: LocalCluster) -> str:
    ids = {name: node.info("node").upper() for name, node in lc.nodes.items()}
    principal = parse_info_kv(lc.nodes["n1"].info("statistics"))["cluster_principal"].upper()
    return next(name for name, node_id in ids.items() if node_id == principal)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def load_records(lc: LocalCluster, records: int) -> None:
    """`records` records of one 1 KiB bin through the official client (it routes to masters)."""
    import aerospike
    client = aerospike.client({**lc.client_config(), "policies": {"write": {"total_timeout": 5000}}}).connect()
    try:
        for i in range(records):
            client.put(("test", "bench", i), {"v": VALUE})
    finally:
        client.close()


def trial(lc: LocalCluster, victim: str, timeout: float, records: int) -> tuple[float, float | None]:
    """(kill → survivors agree, kill → migrations done or None) in s; the victim is restarted."""
    survivors = [node for name, node in lc.nodes.items() if name != victim]
    lc.kill(victim)
    start = time.monotonic()
    wait_until(lambda: agreed(survivors, len(survivors)), timeout, f"agreed after killing {victim}", 0.01)
    took = time.monotonic() - start
    migrated = None
    if records:
        wait_until(lambda: migrations_done(survivors) and agreed(survivors, len(survivors)), 6 * timeout,
                   "migrated", 0.05)
        migrated = time.monotonic() - start
    lc.restart(victim)
    if records:
        wait_until(lambda: migrations_done(lc.running()), 6 * timeout, "migrated after the restart", 0.2)
    return took, migrated


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=20, help="per cluster kind; odd ones kill the principal")
    ap.add_argument("--interval", type=int, default=150, help="heartbeat interval, ms")
    ap.add_argument("--timeout", type=int, default=10, help="heartbeat timeout, intervals")
    ap.add_argument("--records", type=int, default=0, help="load N 1 KiB records and time migrations too")
    add_asd_argument(ap)
    args = ap.parse_args()
    settings = [f"network.heartbeat.interval={args.interval}", f"network.heartbeat.timeout={args.timeout}",
                "namespaces.test.storage-engine.type=memory"]
    budget = args.interval * args.timeout / 1000
    kinds = cluster_kinds(asd_path(args.asd))
    agree: dict[str, dict[str, list[float]]] = {"principal": {}, "other": {}, "all": {}}
    migrate: dict[str, dict[str, list[float]]] = {"principal": {}, "other": {}, "all": {}}
    with ExitStack() as stack:
        clusters = {kind: stack.enter_context(factory(nodes=4, rf=2, settings=settings))
                    for kind, factory in kinds.items()}
        if args.records:
            for kind, lc in clusters.items():
                load_records(lc, args.records)
                wait_until(lambda lc=lc: migrations_done(lc.running()), 120, "quiet after loading", 0.2)
                print(f"{kind}: loaded {args.records} records of 1 KiB", flush=True)
        for i in range(args.trials):
            victim_kind = "principal" if i % 2 == 0 else "other"
            for kind in reversed(clusters):  # the real server first, when there is one
                lc = clusters[kind]
                principal = principal_name(lc)
                victim = principal if victim_kind == "principal" else next(n for n in lc.nodes if n != principal)
                took, migrated = trial(lc, victim, 10 * budget + 10, args.records)
                for case in (victim_kind, "all"):
                    agree[case].setdefault(kind, []).append(took)
                    if migrated is not None:
                        migrate[case].setdefault(kind, []).append(migrated)
                print(f"trial {i + 1:2} {kind:4}: killed {victim} ({victim_kind:9}) -> agreed in {took:.3f}s"
                      + (f", migrations done in {migrated:.3f}s" if migrated is not None else ""), flush=True)
    print(f"\nheartbeat budget interval x timeout = {budget:.2f}s; goal (ours) <= budget + 0.6s = {budget + 0.6:.2f}s")
    print("kill -> survivors agree")
    print_side_by_side("s", {f"victim {case}": v for case, v in agree.items()})
    if args.records:
        print(f"kill -> migrations done ({args.records} x 1 KiB, RF 2)")
        print_side_by_side("s", {f"victim {case}": v for case, v in migrate.items()})


if __name__ == "__main__":
    main()
