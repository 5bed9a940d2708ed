"""The Docker backend against the local one, in the same run: how long a 3-node cluster
takes to start (until every node is in one stable cluster), and YCSB workload A throughput
on it (chaos.load.Load: Locust, unthrottled, the same users and duration on both).

    .venv/bin/python bench/docker_vs_local.py --trials 3 --seconds 20 --users 8

The node image is built (or found) before any timing; containers are removed after each
trial. Needs a Docker engine (tools/docker-setup.sh).
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from chaos.load import Load  # noqa: E402
from cluster.deploy.docker_cluster import DockerCluster, _client  # noqa: E402
from cluster.deploy.docker_image import ensure_image  # noqa: E402
from cluster.deploy.local_cluster import LocalCluster  # noqa: E402


def throughput(cluster, seconds: int, users: int) -> float:
    """Operations per second of the load's whole seconds, the first and last cut off."""
    with tempfile.TemporaryDirectory(prefix="bench-ycsb-") as out:
        load = Load(cluster.direct_seeds(), out, workload="a", users=users, duration=seconds, recordcount=1000, seed=1)
        load.preload()
        load.start()
        load.proc.wait(seconds + 60)
        load.stop()
        rows = pd.read_csv(Path(out) / "timeseries.csv")
    per_second = rows[rows["kind"] == "service"].groupby("timestamp")["count"].sum().sort_index().iloc[1:-1]
    return float(per_second.mean())


def trial(make, seconds: int, users: int, load: bool) -> tuple[float, float | None]:
    cluster = make()
    try:
        start = time.monotonic()
        cluster.start()
        started = time.monotonic() - start
        return started, throughput(cluster, seconds, users) if load else None
    finally:
        cluster.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3, help="cluster starts per backend (the load runs in the first)")
    parser.add_argument("--seconds", type=int, default=20, help="YCSB run phase length")
    parser.add_argument("--users", type=int, default=8)
    args = parser.parse_args()
    image = ensure_image(_client())
    backends = {"local": lambda: LocalCluster(nodes=3, rf=2),
                "docker": lambda: DockerCluster(nodes=3, rf=2, image=image)}
    results = {name: [trial(make, args.seconds, args.users, load=i == 0) for i in range(args.trials)]
               for name, make in backends.items()}
    print(f"3 nodes, RF 2; YCSB A, {args.users} users, {args.seconds} s, unthrottled; {args.trials} starts each")
    print("| backend | start: median (min-max) | YCSB A ops/s |")
    print("|---|---|---|")
    for name, rows in results.items():
        starts = [s for s, _ in rows]
        print(f"| {name} | {statistics.median(starts):.2f} s ({min(starts):.2f}-{max(starts):.2f}) | {rows[0][1]:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
