"""What refproxy costs a request: a node (and the Python floor) driven directly and through a
proxy without toxics, interleaved in the same run.

For each upstream — a real node (memory engine, 1 KiB reads) and bench/floor_server.py (the
same framing, a canned reply, no work: the proxy is then the bottleneck) — and each path,
direct or proxied:
  latency     one connection, one request at a time: p50/p99 µs; "added" = proxied − direct
  throughput  --conns loader processes (raw_load.run_loaders), one request in flight each:
              requests/s, and the proxy's CPU µs per request (user + system, from /proc)
Goal (issue #10): the proxy adds ≤ 60 µs p50 per request on loopback and sustains ≥ 20k
requests/s per link. With --rounds N the table shows medians over N rounds.

    python bench/proxy_overhead.py [--seconds 3] [--conns 4] [--requests 3000] [--rounds 3]
"""

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.failover import pct  # noqa: E402
from bench.node_throughput import READ_REPLY, request  # noqa: E402
from bench.raw_load import RESULT_AT, exchange, run_loaders, wait_listening  # noqa: E402
from chaos.proxy.process import ProxyServer  # noqa: E402
from cluster.deploy.local import LocalNode, free_port_block  # noqa: E402

RECORDS = 1000


def latencies_us(port: int, frames: list[bytes], n: int) -> list[float]:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for f in frames[:100]:  # warm up
            exchange(sock, f)
        out = []
        for i in range(n):
            t0 = time.perf_counter_ns()
            reply = exchange(sock, frames[i % len(frames)])
            out.append((time.perf_counter_ns() - t0) / 1000)
            assert reply[RESULT_AT] == 0 and len(reply) == READ_REPLY
    return out


def measure(port: int, frames, args, proxy_pid: int | None) -> dict:
    lat = latencies_us(port, frames, args.requests)
    load = run_loaders([(port, frames[i::args.conns]) for i in range(args.conns)], args.seconds,
                       [proxy_pid] if proxy_pid else [], READ_REPLY)
    return {"p50": pct(lat, 0.5), "p99": pct(lat, 0.99), "rps": load.ops_per_s,
            "cpu": load.cpu_us_per_op() if proxy_pid else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    reads = [request("read", i) for i in range(RECORDS)]
    rows: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp, ProxyServer(log_path=Path(tmp) / "refproxy.log") as proxy_server:
        node = LocalNode(Path(tmp) / "node", free_port_block(3), [
            "namespaces.test.storage-engine.type=memory", "namespaces.test.replication-factor=1"]).start()
        floor_port = free_port_block(1)
        floor = subprocess.Popen([sys.executable, str(Path(__file__).with_name("floor_server.py")),
                                  str(floor_port), str(READ_REPLY - 8)])
        try:
            wait_listening(floor_port)
            with socket.create_connection(("127.0.0.1", node.port)) as s:
                for i in range(RECORDS):
                    assert exchange(s, request("write", i))[RESULT_AT] == 0
            api = proxy_server.client()
            targets = {"node": node.port, "floor": floor_port}
            proxied = {name: api.create_proxy(name, upstream=f"127.0.0.1:{port}").port
                       for name, port in targets.items()}
            for _ in range(args.rounds):
                for name in targets:
                    rows.setdefault((name, "direct"), []).append(measure(targets[name], reads, args, None))
                    rows.setdefault((name, "proxied"), []).append(
                        measure(proxied[name], reads, args, proxy_server.proc.pid))
        finally:
            floor.kill()
            floor.wait()
            node.stop()

    print(f"{args.conns} loaders x {args.seconds:g} s, {args.requests} timed requests, "
          f"median of {args.rounds} rounds")
    print("| upstream | path | p50 µs | p99 µs | added p50 µs | added p99 µs | requests/s | proxy CPU µs/request |")
    print("|---|---|---|---|---|---|---|---|")
    for (name, path), runs in rows.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        direct = {k: statistics.median(r[k] for r in rows[(name, "direct")]) for k in ("p50", "p99")}
        added = ("", "") if path == "direct" else (f"{med['p50'] - direct['p50']:.0f}",
                                                    f"{med['p99'] - direct['p99']:.0f}")
        cpu = "" if path == "direct" else f"{med['cpu']:.1f}"
        print(f"| {name} | {path} | {med['p50']:.0f} | {med['p99']:.0f} | {added[0]} | {added[1]} "
              f"| {med['rps']:.0f} | {cpu} |")


if __name__ == "__main__":
    main()
