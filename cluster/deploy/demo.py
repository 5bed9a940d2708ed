"""The main job of `make demo`: start the embedded local cluster, run a short load, print figures.

Bounded by design: the load runs for `--seconds` and the cluster is torn down on exit
(including Ctrl-C), so nothing outlives the command.
"""

import argparse
import random
import threading
import time
from collections import Counter

from hdrh.histogram import HdrHistogram

from cluster.client import Client
from cluster.client.errors import AerospikeError
from cluster.deploy.local_cluster import LocalCluster


def run_load(client: Client, seconds: float, threads: int, records: int, read_pct: int,
             namespace: str = "test", set_name: str = "demo") -> tuple[dict[str, HdrHistogram], Counter]:
    """Closed-loop read/update mix over `records` keys of 1 KiB; returns latency (µs) and errors."""
    hists = {op: HdrHistogram(1, 60_000_000, 3) for op in ("read", "update")}
    errors: Counter[str] = Counter()
    lock = threading.Lock()
    value = "x" * 1024
    deadline = time.monotonic() + seconds

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        local = {op: HdrHistogram(1, 60_000_000, 3) for op in hists}
        while time.monotonic() < deadline:
            key = (namespace, set_name, rng.randrange(records))
            op = "read" if rng.randrange(100) < read_pct else "update"
            start = time.perf_counter()
            try:
                if op == "read":
                    client.get(key)
                else:
                    client.put(key, {"field0": value})
            except AerospikeError as exc:
                with lock:
                    errors[f"{op}:{exc.code}"] += 1
                continue
            local[op].record_value(max(1, int((time.perf_counter() - start) * 1e6)))
        with lock:
            for op, h in local.items():
                hists[op].add(h)

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return hists, errors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--rf", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--read-pct", type=int, default=50)
    ap.add_argument("--dir", default=None, help="run directory (default: a fresh one under run/)")
    args = ap.parse_args(argv)

    with LocalCluster(nodes=args.nodes, rf=args.rf, run_dir=args.dir) as lc:
        print(f"cluster up: {args.nodes} node(s), rf {args.rf}, run dir {lc.run_dir}")
        client = Client({"hosts": lc.seeds(), "max_conns_per_node": args.threads + 4}).connect()
        try:
            value = "x" * 1024
            t0 = time.monotonic()
            for i in range(args.records):
                client.put(("test", "demo", i), {"field0": value})
            load_s = time.monotonic() - t0
            print(f"loaded {args.records} records of 1 KiB in {load_s:.1f}s")
            hists, errors = run_load(client, args.seconds, args.threads, args.records, args.read_pct)
        finally:
            client.close()
        print(f"\n{'op':8}{'count':>9}{'ops/s':>9}{'p50 µs':>9}{'p99 µs':>9}{'max µs':>9}")
        for op, h in hists.items():
            n = h.get_total_count()
            print(f"{op:8}{n:>9}{n / args.seconds:>9.0f}{h.get_value_at_percentile(50):>9}"
                  f"{h.get_value_at_percentile(99):>9}{h.get_max_value():>9}")
        print(f"errors: {dict(errors) or 'none'}\n")
        for row in lc.status():
            print("  ".join(f"{k}={v}" for k, v in row.items()))
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
