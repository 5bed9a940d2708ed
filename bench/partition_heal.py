"""Partition heal (issue #16): how long after a real network partition heals until the
nodes are one cluster again, and until the migrations that merge the two sides are done.

3 nodes, RF 2, each on its own loopback address, heartbeat 150 ms × 10; client writers
(from 127.0.0.1) keep writing throughout. Each trial cuts n1 off from n2 and n3 with
iptables (packets dropped, or refused with --reject) for --split seconds, removes the
rules, then polls every node's `statistics` every 20 ms: "one cluster" = all report the
same cluster key and size 3, "migrations done" = also migrate_partitions_remaining=0 on
all. Needs root.

    sudo .venv/bin/python bench/partition_heal.py --trials 3 --policy generation
"""

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import aerospike

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cluster.deploy import iptables  # noqa: E402
from cluster.deploy.local_cluster import LocalCluster, parse_info_kv  # noqa: E402


def stats(nodes) -> list[dict[str, str]]:
    return [parse_info_kv(node.info("statistics")) for node in nodes]


def one_cluster(rows) -> bool:
    return len({(r["cluster_key"], r["cluster_size"]) for r in rows}) == 1 and rows[0]["cluster_size"] == "3"


def migrations_done(rows) -> bool:
    return one_cluster(rows) and all(r["migrate_partitions_remaining"] == "0" for r in rows)


def wait(nodes, predicate, timeout: float) -> float:
    start = time.monotonic()
    while not predicate(stats(nodes)):
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"not reached within {timeout}s: {stats(nodes)}")
        time.sleep(0.02)
    return time.monotonic() - start


def split_seen(rows) -> bool:
    return rows[0]["cluster_size"] == "1" and rows[1]["cluster_size"] == rows[2]["cluster_size"] == "2"


class Writers:
    """Client threads writing as fast as one request in flight each allows; errors (timeouts,
    a partition unavailable for a moment) are counted and the thread goes on."""

    def __init__(self, hosts, threads: int):
        policy = {"total_timeout": 500}
        self.client = aerospike.client({"hosts": hosts, "policies": {"write": policy}}).connect()
        self.stop = threading.Event()
        self.written = self.failed = 0
        self.threads = [threading.Thread(target=self._run, args=(t,), daemon=True) for t in range(threads)]

    def _run(self, t: int) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            try:
                self.client.put(("test", "heal", f"{t}-{i % 5000}"), {"i": i})
                self.written += 1
            except aerospike.exception.AerospikeError:
                self.failed += 1

    def __enter__(self) -> "Writers":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()
        self.client.close()


def trial(nodes, split_s: float, reject: bool) -> tuple[float, float]:
    with iptables.Partition([nodes[0].host], [n.host for n in nodes[1:]], reject=reject):
        cut = time.monotonic()
        wait(nodes, split_seen, split_s)
        time.sleep(max(0.0, cut + split_s - time.monotonic()))
    one = wait(nodes, one_cluster, 60)
    done = one + wait(nodes, migrations_done, 300)
    return one, done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--split", type=float, default=15.0, help="seconds the partition lasts")
    ap.add_argument("--policy", default="generation", choices=("generation", "last-update-time"))
    ap.add_argument("--reject", action="store_true", help="refuse (TCP reset) instead of dropping")
    ap.add_argument("--writers", type=int, default=4, help="client writer threads")
    args = ap.parse_args()
    if reason := iptables.unavailable():
        sys.exit(f"cannot partition: {reason}")
    settings = [f"namespaces.test.conflict-resolution-policy={args.policy}"]
    ones, dones = [], []
    with LocalCluster(nodes=3, rf=2, settings=settings, address_per_node=True) as lc:
        nodes = [lc["n1"], lc["n2"], lc["n3"]]
        with Writers(lc.seeds(), args.writers) as writers:
            wait(nodes, migrations_done, 60)
            for i in range(args.trials):
                one, done = trial(nodes, args.split, args.reject)
                ones.append(one)
                dones.append(done)
                print(f"trial {i + 1}: heal -> one cluster {one:.2f}s, -> migrations done {done:.2f}s", flush=True)
        print(f"writes: {writers.written} acknowledged, {writers.failed} failed")
    kind = "refused" if args.reject else "dropped"
    print(f"\n{args.split:.0f} s split ({kind}), {args.policy}, {args.trials} trials, 3 nodes RF 2, hb 150 ms x 10")
    for name, values in (("heal -> one cluster", ones), ("heal -> migrations done", dones)):
        print(f"{name:24} min {min(values):6.2f}s  median {statistics.median(values):6.2f}s  max {max(values):6.2f}s")


if __name__ == "__main__":
    main()
