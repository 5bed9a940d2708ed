"""Replicated write cost: replication-factor 2 against 1, throughput and node CPU per write.

Two local clusters of 2 nodes each (memory storage by default), one with
replication-factor 1 and one with 2, both up for the whole run. The same write load is
driven against each in turn, alternating RF 1 / RF 2 for `--repeat` rounds: `--conns`
loader processes, each with one connection to one node (half of them per node) and one
request in flight, writing one 1 KiB bin to keys that node masters (routed from the
nodes' `replicas` maps, as a smart client does: no proxying). Every reply is checked
(result 0). Reported per case: writes/s, and node CPU µs per client write = the user +
system CPU of *both* nodes' processes (psutil) over the loaded interval / writes. The
RF 2 / RF 1 ratios are taken within each round; the table shows medians.

    python bench/replicated_writes.py                       # ~1 min
    python bench/replicated_writes.py --seconds 5 --repeat 3 --conns 4
    python bench/replicated_writes.py --profile /tmp/rwprof   # nodes under cProfile (inflated)
"""

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.raw_load import ProfiledCluster, run_loaders  # noqa: E402
from cluster.client.partitions import bitmap_partitions, parse_replicas  # noqa: E402
from cluster.deploy.local_cluster import LocalCluster  # noqa: E402
from cluster.wire import message as wm  # noqa: E402
from cluster.wire.digest import compute_digest, partition_id  # noqa: E402
from cluster.wire.message import FieldType, Info2, Message, OpType, value_op  # noqa: E402

VALUE = b"v" * 1024


def write_frame(digest: bytes) -> bytes:
    fields = {FieldType.NAMESPACE: b"test", FieldType.SET: b"rw", FieldType.DIGEST: digest}
    return wm.encode_frame(Message(info2=Info2.WRITE, fields=fields, ops=[value_op(OpType.WRITE, "v", VALUE)]))


def cluster(rf: int, settings: list[str], profile: str | None) -> LocalCluster:
    if not profile:
        return LocalCluster(nodes=2, rf=rf, settings=settings)
    out = Path(profile).resolve() / f"rf{rf}"
    out.mkdir(parents=True, exist_ok=True)
    return ProfiledCluster(nodes=2, rf=rf, settings=settings, profile_dir=out)


def masters(lc: LocalCluster) -> dict[int, str]:
    """pid -> name of the node that masters it."""
    owner = {}
    for name, node in lc.nodes.items():
        for pid in bitmap_partitions(parse_replicas(node.info("replicas"))["test"].bitmaps[0]):
            owner[pid] = name
    if len(owner) != 4096:
        raise RuntimeError(f"only {len(owner)} partitions have a master")
    return owner


def frames_by_node(lc: LocalCluster, keys: int) -> dict[str, list[bytes]]:
    owner = masters(lc)
    out: dict[str, list[bytes]] = {name: [] for name in lc.nodes}
    for i in range(keys):
        digest = compute_digest("rw", i)
        out[owner[partition_id(digest)]].append(write_frame(digest))
    return out


def drive(lc: LocalCluster, frames: dict[str, list[bytes]], conns: int,
          seconds: float) -> tuple[float, float, float]:
    """(writes/s, CPU µs of both nodes per write, of which system µs)."""
    names = sorted(frames)
    jobs = []
    for k, name in enumerate(names):
        mine = range(k, conns, len(names))  # loaders on this node, each with its own slice of keys
        jobs += [(lc[name].port, frames[name][j::len(mine)]) for j in range(len(mine))]
    load = run_loaders(jobs, seconds, [lc[name].pid for name in names])
    return load.ops_per_s, load.cpu_us_per_op(), load.cpu_system_s * 1e6 / max(load.ops, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0, help="load duration of each case")
    ap.add_argument("--conns", type=int, default=4, help="loader processes (one connection, one request in flight each)")
    ap.add_argument("--keys", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3, help="rounds of RF 1 then RF 2; the table shows medians")
    ap.add_argument("--engine", choices=["memory", "device"], default="memory")
    ap.add_argument("--profile", metavar="DIR", help="run the nodes under cProfile: DIR/rf<N>/<node>.prof")
    args = ap.parse_args()
    settings = [f"namespaces.test.storage-engine.type={args.engine}"]
    rows: dict[int, list[tuple[float, float, float]]] = {1: [], 2: []}
    with cluster(1, settings, args.profile) as rf1, cluster(2, settings, args.profile) as rf2:
        clusters = {1: rf1, 2: rf2}
        frames = {rf: frames_by_node(lc, args.keys) for rf, lc in clusters.items()}
        for rf, lc in clusters.items():  # the keys exist before the measured updates
            drive(lc, frames[rf], args.conns, 1.0)
        for r in range(args.repeat):
            for rf, lc in clusters.items():
                rows[rf].append(drive(lc, frames[rf], args.conns, args.seconds))
                ops, us, sys_us = rows[rf][-1]
                print(f"round {r + 1} RF {rf}: {ops:.0f} writes/s, {us:.1f} node CPU µs/write "
                      f"({sys_us:.1f} system)", flush=True)
    print(f"\n2-node clusters, {args.engine} storage, {args.conns} connections (one in flight), 1 KiB writes, "
          f"{args.seconds:g} s per case, median of {args.repeat} rounds")
    print(f"{'case':<8}{'writes/s':>10}{'node CPU µs/write':>19}{'of which system':>17}")
    for rf in (1, 2):
        print(f"{'RF ' + str(rf):<8}{statistics.median(r[0] for r in rows[rf]):>10.0f}"
              f"{statistics.median(r[1] for r in rows[rf]):>19.1f}{statistics.median(r[2] for r in rows[rf]):>17.1f}")
    tput = statistics.median(b[0] / a[0] for a, b in zip(rows[1], rows[2], strict=True))
    cpu = statistics.median(b[1] / a[1] for a, b in zip(rows[1], rows[2], strict=True))
    print(f"{'RF2/RF1':<8}{tput:>9.2f}x{cpu:>18.2f}x")


if __name__ == "__main__":
    main()
