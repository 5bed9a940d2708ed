"""Migration rate: records/s (1 KiB values) one node sends to a joining node, per throttle.

One node (replication-factor 2, so a second node needs a copy of every partition) is loaded
with `--records` records of one 1 KiB bin by pipelined raw writes. Then, for each throttle
case, outgoing migration on it is paused (`migrate-threads 0`), a fresh node is added and
the cluster of two forms; the case's throttles are set (`set-config`, which also starts the
migration) and we poll the sender's namespace statistics every 200 ms until nothing remains
to send or receive (or `--case-timeout`); then the receiving node is stopped, leaving the
sender alone with all the data for the next case. Only the loaded node sends, so its rate
is the per-node rate. Figures, all from the same run:

* records/s = delta of `migrate_records_transmitted` / time from `set-config` to done;
* the cost of a partition without records: the same for an *empty* namespace first (the
  4096 START/RECORDS-less/DONE handshakes alone), in ms per partition;
* "records-only" rate = records / (elapsed − partitions × empty ms per partition): what the
  record path alone sustains, with the per-partition handshakes taken out;
* CPU µs per record of the sender and of the receiver (psutil, process user + system).

    python bench/migration_rate.py                       # ≈ 75 s: 100k records, 3 cases
    python bench/migration_rate.py --records 50000 --cases 1:1,1:0,4:0,8:0
    python bench/migration_rate.py --profile /tmp/migprof   # nodes under cProfile (inflated)
    python bench/migration_rate.py --asd /work/asd/bin/asd --repeat 3   # real server too, interleaved
    python bench/migration_rate.py --nodes 3 --cases 1:1 --asd /work/asd/bin/asd   # 3 -> 4 nodes

With `--asd PATH` (or $ASD_BIN) a one-node cluster of the real server is loaded the same way
and every case runs on it right before ours; "tx CPU %" is the sender's CPU over the case
(100 % = one core busy).

With `--nodes N` the loaded node is first joined by N-1 others (migrations left to finish),
so each case times N -> N+1 nodes: records/s, partitions and CPU are summed over all the
senders, and after the new node is stopped the N nodes re-replicate before the next case.

Goal (issue: data in a cluster): >= 20k records/s per node at migrate-threads 1, sleep 0.
"""

import argparse
import socket
import struct
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.failover import migrations_done  # noqa: E402
from bench.raw_load import RESULT_AT, ProfiledCluster  # noqa: E402
from bench.real_server import add_asd_argument, asd_path, cluster_kinds, print_side_by_side  # noqa: E402
from cluster.deploy.local import LocalNode, info_request  # noqa: E402
from cluster.deploy.local_cluster import LocalCluster, parse_info_kv  # noqa: E402
from cluster.wire import message as wm  # noqa: E402
from cluster.wire.digest import compute_digest  # noqa: E402
from cluster.wire.message import FieldType, Info2, Message, OpType, value_op  # noqa: E402

GOAL = 20_000
VALUE = b"v" * 1024
_U64 = struct.Struct(">Q")
POLL_S = 0.2
FAST = ["network.heartbeat.interval=100", "service.quantum-interval-ms=200"]


def write_frame(i: int) -> bytes:
    fields = {FieldType.NAMESPACE: b"test", FieldType.SET: b"mig", FieldType.DIGEST: compute_digest("mig", i)}
    return wm.encode_frame(Message(info2=Info2.WRITE, fields=fields, ops=[value_op(OpType.WRITE, "v", VALUE)]))


def load(port: int, records: int, window: int = 256) -> float:
    """Pipelined writes, `window` in flight; returns writes/s. Every reply must be a success."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray()
    t0 = time.monotonic()
    for start in range(0, records, window):
        n = min(window, records - start)
        sock.sendall(b"".join(write_frame(i) for i in range(start, start + n)))
        for _ in range(n):
            while len(buf) < 8:
                buf += sock.recv(1 << 20)
            size = 8 + (_U64.unpack_from(buf)[0] & 0xFFFFFFFFFFFF)
            while len(buf) < size:
                buf += sock.recv(1 << 20)
            if buf[RESULT_AT] != 0:
                raise RuntimeError(f"load write failed with result {buf[RESULT_AT]}")
            del buf[:size]
    sock.close()
    return records / (time.monotonic() - t0)


def ns_stats(node: LocalNode) -> dict[str, str]:
    return parse_info_kv(info_request(node.host, node.port, ["namespace/test"])["namespace/test"])


def set_config(node: LocalNode, command: str) -> None:
    reply = node.info(command)
    if reply != "ok":
        raise RuntimeError(f"{command}: {reply}")


def cpu_s(node: LocalNode) -> float:
    return sum(psutil.Process(node.pid).cpu_times()[:2])


def total(nodes, key: str) -> int:
    return sum(int(ns_stats(node)[key]) for node in nodes)


def settle(lc: LocalCluster, timeout: float = 120.0) -> None:
    """One cluster of the running nodes, no migration left anywhere."""
    lc.wait_converged()
    lc.wait_for(lambda: migrations_done(lc.running()), timeout, "migrations done", poll=POLL_S)


def run_case(lc: LocalCluster, threads: int, sleep_us: int, timeout: float) -> dict:
    """Add a node to the running ones (the senders, migration paused meanwhile), set the
    throttles on every node, time until no node has a partition left to send or receive;
    then stop the new node again and let the senders settle."""
    senders = lc.running()
    for node in senders:
        set_config(node, "set-config:context=service;migrate-threads=0")
    receiver = lc.add()
    lc.wait_converged()
    nodes = [*senders, receiver]
    sent0, todo0 = total(nodes, "migrate_records_transmitted"), total(nodes, "migrate_tx_partitions_remaining")
    cpu0 = (sum(map(cpu_s, senders)), cpu_s(receiver))
    for node in nodes:
        set_config(node, f"set-config:context=namespace;id=test;migrate-sleep={sleep_us}")
    t0 = time.monotonic()
    for node in nodes:
        set_config(node, f"set-config:context=service;migrate-threads={threads}")
    done = False
    while time.monotonic() - t0 < timeout:
        # `namespace/test` costs the node a few ms (sums over 4096 partitions): poll gently
        time.sleep(POLL_S)
        if total(nodes, "migrate_tx_partitions_remaining") == 0 and total(nodes, "migrate_rx_partitions_remaining") == 0:
            done = True
            break
    elapsed = time.monotonic() - t0
    cpu1 = (sum(map(cpu_s, senders)), cpu_s(receiver))
    records = total(nodes, "migrate_records_transmitted") - sent0
    partitions = todo0 - total(nodes, "migrate_tx_partitions_remaining")
    name = next(n for n, node in lc.nodes.items() if node is receiver)
    lc.stop_node(name)  # SIGTERM, so a profiled node writes its profile
    settle(lc)
    return {"threads": threads, "sleep": sleep_us, "done": done, "elapsed": elapsed, "records": records,
            "partitions": partitions, "senders": len(senders), "tx_cpu": cpu1[0] - cpu0[0], "rx_cpu": cpu1[1] - cpu0[1]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--cases", default="1:1,1:0,4:0", help="threads:sleep_us,... (default: defaults, full speed, 4 threads)")
    ap.add_argument("--nodes", type=int, default=1, help="senders: the loaded cluster grows to this size before the cases")
    ap.add_argument("--repeat", type=int, default=1, help="run the cases this many times (medians in the summary)")
    ap.add_argument("--case-timeout", type=float, default=30.0, help="stop measuring a case after this many s")
    ap.add_argument("--engine", choices=["memory", "device"], default="memory")
    ap.add_argument("--profile", metavar="DIR", help="run our nodes under cProfile, one .prof per node in DIR")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra node setting for every node of both kinds, e.g. service.migrate-max-num-incoming=16")
    add_asd_argument(ap)
    args = ap.parse_args()
    cases = [tuple(int(x) for x in c.split(":")) for c in args.cases.split(",")] * args.repeat
    mib = max(256, args.records * 2 // 1024 + 64)
    settings = [*FAST, f"namespaces.test.storage-engine.type={args.engine}",
                f"namespaces.test.storage-engine.data-size={mib}M", f"namespaces.test.storage-engine.filesize={mib}M",
                *args.set]
    kinds = cluster_kinds(asd_path(args.asd))
    if args.profile:
        profile_dir = Path(args.profile).resolve()
        profile_dir.mkdir(parents=True, exist_ok=True)
        kinds["ours"] = lambda **kw: ProfiledCluster(profile_dir=profile_dir, **kw)
    rows, empties = [], {}
    with ExitStack() as stack:
        clusters = {kind: stack.enter_context(make(nodes=1, rf=2, settings=settings)) for kind, make in kinds.items()}
        order = list(reversed(clusters))  # the real server first, when there is one
        for kind in order:
            lc = clusters[kind]
            print(f"{kind}: empty namespace, threads 1 sleep 0 (per-partition handshake cost) ...", flush=True)
            empty = empties[kind] = run_case(lc, 1, 0, args.case_timeout)
            print(f"  {empty['partitions']} partitions in {empty['elapsed']:.2f}s = "
                  f"{empty['elapsed'] * 1000 / max(empty['partitions'], 1):.2f} ms/partition", flush=True)
            rate = load(lc["n1"].port, args.records)
            print(f"{kind}: loaded {args.records} records of 1 KiB at {rate:.0f} writes/s", flush=True)
            for _ in range(args.nodes - 1):
                lc.add()
                settle(lc, 300)
        for threads, sleep_us in cases:
            for kind in order:
                print(f"{kind}: threads {threads} sleep {sleep_us} ...", flush=True)
                row = run_case(clusters[kind], threads, sleep_us, args.case_timeout)
                rows.append({**row, "kind": kind})
                print(f"  {row['records']} records, {row['partitions']} partitions in {row['elapsed']:.2f}s"
                      f"{'' if row['done'] else ' (TIMED OUT, partial)'}", flush=True)
    print(f"\n{args.records} records of 1 KiB ({args.records / 4096:.0f} per partition), {args.engine} storage")
    for kind, empty in empties.items():
        n = max(empty["partitions"], 1)
        print(f"{kind}: empty-partition handshake {empty['elapsed'] * 1e3 / n:.2f} ms at threads 1 "
              f"({empty['partitions']} partitions, {empty['elapsed']:.2f}s); CPU {empty['tx_cpu'] * 1e3 / n:.2f} ms "
              f"(sender) + {empty['rx_cpu'] * 1e3 / n:.2f} ms (receiver) per partition")
    print(f"{'server':<7}{'threads':>7}{'sleep':>6}{'s':>7}{'rec/s':>8}{'÷ goal':>8}{'rec-only/s':>11}"
          f"{'tx µs/rec':>10}{'rx µs/rec':>10}{'tx CPU %':>9}{'ms/part':>8}")
    summary: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        empty_ms = empties[r["kind"]]["elapsed"] * 1000 / max(empties[r["kind"]]["partitions"], 1)
        per_s = r["records"] / r["elapsed"]
        rest = r["elapsed"] - r["partitions"] * empty_ms / 1000 / (r["threads"] * r["senders"])
        only = r["records"] / rest if rest > 0 else float("inf")
        n = max(r["records"], 1)
        print(f"{r['kind']:<7}{r['threads']:>7}{r['sleep']:>6}{r['elapsed']:>7.2f}{per_s:>8.0f}{per_s / GOAL:>8.2f}"
              f"{only:>11.0f}{r['tx_cpu'] * 1e6 / n:>10.1f}{r['rx_cpu'] * 1e6 / n:>10.1f}"
              f"{r['tx_cpu'] * 100 / r['elapsed']:>9.0f}"
              f"{r['elapsed'] * 1000 / max(r['partitions'], 1):>8.2f}{'' if r['done'] else '  partial'}")
        summary.setdefault(f"threads {r['threads']} sleep {r['sleep']}", {}).setdefault(r["kind"], []).append(per_s)
    print("records/s")
    print_side_by_side("records/s", summary)
    full = [r for r in rows if r["threads"] == 1 and r["sleep"] == 0 and r["kind"] == "ours"]
    if full:
        per_s = full[0]["records"] / full[0]["elapsed"]
        print(f"goal (ours) >= {GOAL} records/s per node at threads 1 sleep 0: {'met' if per_s >= GOAL else 'NOT met'} "
              f"({per_s:.0f}, {per_s / GOAL:.2f}x)")

if __name__ == "__main__":
    main()
