"""Single-node throughput and CPU per operation, against the Python floor in the same run.

For each case a load of pre-encoded 1 KiB-record requests (one bin "v" of 1024 bytes) is
driven over several connections by separate loader processes, one request in flight per
connection; we report operations/s and the server process's CPU microseconds per
operation (user + system, from /proc via psutil, over the loaded interval only). Every
reply is checked (result code 0; a read must return the bin). The floor is
bench/floor_server.py: the same framing, a canned reply of the node's reply size, no work.
Ratio = node CPU per op / floor CPU per op for the same kind of request.

Cases: the floor (read-sized and write-sized replies), then for storage-engine memory and
device (a file): reads of preloaded records and writes (updates of `--records` keys).

    python bench/node_throughput.py [--seconds 3] [--conns 4] [--records 10000] [--repeat 1]
    python bench/node_throughput.py --profile cprofile --profile-dir /tmp/prof   # one .prof per node case
    python bench/node_throughput.py --profile py-spy --profile-dir /tmp/prof     # raw collapsed stacks
    python bench/node_throughput.py --inproc 6000     # the node's Python µs/op, no sockets (below)

--inproc N runs a node inside this process and feeds N requests of each case straight to
`ServiceProtocol.data_received` with a null transport: process CPU µs per request (best of 3
passes), i.e. the node's own Python work without the socket and event-loop costs the floor
also pays. Less noisy than the end-to-end figures on a shared machine; compare runs with it.

With --profile the figures are inflated by the profiler; use them only to see where the
time goes. With --repeat N the table shows medians over N rounds (ratios taken per round).
"""

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.raw_load import RESULT_AT, exchange, run_loaders, wait_listening  # noqa: E402
from bench.real_server import RealNode, add_asd_argument, asd_path  # noqa: E402
from cluster.deploy.local import LocalNode, free_port_block  # noqa: E402
from cluster.wire import message as wm  # noqa: E402
from cluster.wire.digest import compute_digest  # noqa: E402
from cluster.wire.message import FieldType, Info1, Info2, Message, OpType, value_op  # noqa: E402

VALUE = b"v" * 1024
READ_REPLY = 8 + 22 + 8 + 1 + len(VALUE)  # what the node answers a read of one 1 KiB bin "v"
WRITE_REPLY = 8 + 22


def request(kind: str, i: int) -> bytes:
    fields = {FieldType.NAMESPACE: b"test", FieldType.SET: b"bench",
              FieldType.DIGEST: compute_digest("bench", i)}
    if kind == "read":
        return wm.encode_frame(Message(info1=Info1.READ | Info1.GET_ALL, fields=fields))
    return wm.encode_frame(Message(info2=Info2.WRITE, fields=fields,
                                   ops=[value_op(OpType.WRITE, "v", VALUE)]))


def drive(port: int, pid: int, frames: list[bytes], reply_size: int, conns: int,
          seconds: float) -> tuple[float, float]:
    """(ops per second, server CPU µs per op) with `conns` loaders, one request in flight each."""
    load = run_loaders([(port, frames[i::conns]) for i in range(conns)], seconds, [pid], reply_size)
    return load.ops_per_s, load.cpu_us_per_op()


def floor_case(reply_size: int, frames: list[bytes], args) -> tuple[float, float]:
    port = free_port_block(1)
    body = reply_size - 8
    srv = subprocess.Popen([sys.executable, str(Path(__file__).with_name("floor_server.py")), str(port), str(body)])
    try:
        wait_listening(port)
        return drive(port, srv.pid, frames, reply_size, args.conns, args.seconds)
    finally:
        srv.kill()
        srv.wait()


class ProfiledNode(LocalNode):
    """A node run under a profiler: cProfile (a .prof written at exit) or py-spy (raw stacks)."""

    def __init__(self, *a, profiler: str, out: Path, **kw):
        super().__init__(*a, **kw)
        self.profiler, self.out = profiler, out

    def command(self) -> list[str]:
        cmd = super().command()
        if self.profiler == "cprofile":
            return [cmd[0], "-m", "cProfile", "-o", str(self.out)] + cmd[1:]
        spy = shutil.which("py-spy") or os.environ.get("PY_SPY", "py-spy")
        return [spy, "record", "--rate", "250", "-f", "raw", "-o", str(self.out), "--"] + cmd

    @property
    def python_pid(self) -> int:
        if self.profiler == "cprofile":
            return self.proc.pid
        return psutil.Process(self.proc.pid).children()[0].pid

    def stop(self, timeout: float = 10.0) -> None:
        if self.profiler == "py-spy" and self.is_running():
            os.kill(self.python_pid, signal.SIGTERM)  # py-spy writes its output once the node exits
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        super().stop(timeout)


def node_case(engine: str, kind: str, frames, reply_size: int | None, preload, args, work: Path,
              real: bool = False) -> tuple[float, float]:
    settings = [f"namespaces.test.storage-engine.type={engine}", "namespaces.test.storage-engine.filesize=512M",
                "namespaces.test.storage-engine.data-size=512M", "namespaces.test.replication-factor=1"]
    port = free_port_block(3)
    if real:
        node = RealNode(args.asd, work / f"real-{engine}-{kind}", port, settings)
    elif args.profile:
        suffix = "prof" if args.profile == "cprofile" else "txt"
        out = Path(args.profile_dir).resolve() / f"{engine}-{kind}.{suffix}"
        out.parent.mkdir(parents=True, exist_ok=True)
        node = ProfiledNode(work / f"{engine}-{kind}", port, settings, profiler=args.profile, out=out)
    else:
        node = LocalNode(work / f"{engine}-{kind}", port, settings)
    node.start()
    try:
        pid = node.python_pid if args.profile and not real else node.proc.pid
        with socket.create_connection(("127.0.0.1", port)) as s:
            for f in preload:
                if exchange(s, f)[RESULT_AT] != 0:
                    raise RuntimeError("preload write failed")
        return drive(port, pid, frames, reply_size, args.conns, args.seconds)
    finally:
        node.stop()


def one_round(args, reads, writes) -> list[tuple[str, str, float, float, float]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        floor_read = floor_case(READ_REPLY, reads, args)
        floor_write = floor_case(WRITE_REPLY, writes, args)
        rows.append(("floor", "read", *floor_read, 1.0))
        rows.append(("floor", "write", *floor_write, 1.0))
        servers = [("real", True), ("node", False)] if args.asd else [("node", False)]
        for engine in ("memory", "device"):
            for name, real in servers:  # the real server right before ours, same load
                ops, us = node_case(engine, "read", reads, READ_REPLY, writes, args, work, real)
                rows.append((f"{name}/{engine}", "read", ops, us, us / floor_read[1]))
                ops, us = node_case(engine, "write", writes, WRITE_REPLY, [], args, work, real)
                rows.append((f"{name}/{engine}", "write", ops, us, us / floor_write[1]))
    return rows


GOALS = {"read": 2.0, "write": 3.0}


class _NullTransport:
    def write(self, data) -> None:
        pass

    def get_extra_info(self, name):
        return None

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


async def _inproc_case(engine: str, work: Path, n: int, reads, writes) -> dict[str, float]:
    import asyncio
    import gc

    from cluster.node.config import NodeConfig
    from cluster.node.server import Node
    from cluster.node.service import ServiceProtocol

    port = free_port_block(3)
    cfg = NodeConfig.load(None, [
        f"network.service.port={port}", f"network.fabric.port={port + 1}", f"network.heartbeat.port={port + 2}",
        "network.service.address=127.0.0.1", f"service.work-directory={work / engine}",
        f"namespaces.test.storage-engine.type={engine}", "namespaces.test.storage-engine.filesize=512M",
        "namespaces.test.storage-engine.data-size=512M", "namespaces.test.replication-factor=1"])
    node = Node(cfg)
    await node.start()
    try:
        while node.rebalance_generation == 0:  # serving once its one-node cluster is balanced
            await asyncio.sleep(0.05)
        proto = ServiceProtocol(node)
        proto.connection_made(_NullTransport())
        for f in writes:
            proto.data_received(f)
        out = {}
        for kind, frames in (("read", reads), ("write", writes)):
            gc.collect()
            best = float("inf")
            for _ in range(3):
                t0 = time.process_time()
                for i in range(n):
                    proto.data_received(frames[i % len(frames)])
                best = min(best, (time.process_time() - t0) / n * 1e6)
                await asyncio.sleep(0.06)  # housekeeping runs between passes, not within
            out[kind] = best
        return out
    finally:
        await node.stop()


def inproc(n: int, reads, writes) -> None:
    import uvloop

    async def both():
        with tempfile.TemporaryDirectory() as tmp:
            return {e: await _inproc_case(e, Path(tmp), n, reads, writes) for e in ("memory", "device")}

    res = uvloop.run(both())
    print(f"in process, {n} requests per case, best of 3 passes: Python µs/op")
    print(f"{'engine':<10}{'read':>8}{'write':>8}")
    for engine, r in res.items():
        print(f"{engine:<10}{r['read']:>8.2f}{r['write']:>8.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="load duration of each case")
    ap.add_argument("--conns", type=int, default=4, help="concurrent connections (one loader process each)")
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=1, help="rounds; the table shows medians")
    ap.add_argument("--profile", choices=["cprofile", "py-spy"], help="run the node cases under a profiler")
    ap.add_argument("--profile-dir", default="bench-profiles")
    add_asd_argument(ap)
    ap.add_argument("--inproc", type=int, metavar="N", help="only the in-process µs/op of N requests per case")
    args = ap.parse_args()
    args.asd = asd_path(args.asd)
    reads = [request("read", i) for i in range(args.records)]
    writes = [request("write", i) for i in range(args.records)]
    if args.inproc:
        inproc(args.inproc, reads, writes)
        return
    rounds = [one_round(args, reads, writes) for _ in range(args.repeat)]
    print(f"{args.conns} connections, {args.seconds:g} s per case, {args.records} records of 1 KiB"
          f"{f', median of {args.repeat} rounds' if args.repeat > 1 else ''}"
          f"{f' (under {args.profile}: inflated)' if args.profile else ''}")
    print(f"{'server':<14}{'op':<7}{'ops/s':>10}{'cpu µs/op':>12}{'× floor':>9}{'goal':>7}")
    for i, (server, op, *_) in enumerate(rounds[0]):
        ops = statistics.median(r[i][2] for r in rounds)
        us = statistics.median(r[i][3] for r in rounds)
        ratio = statistics.median(r[i][4] for r in rounds)
        goal = "" if not server.startswith("node") else f"{'met' if ratio <= GOALS[op] else 'NOT'} ≤{GOALS[op]:g}"
        print(f"{server:<14}{op:<7}{ops:>10.0f}{us:>12.1f}{ratio:>9.2f}  {goal}")
    if args.asd:  # CPU per op, real / ours, taken per round
        at = {(server, op): i for i, (server, op, *_) in enumerate(rounds[0])}
        for engine in ("memory", "device"):
            for op in ("read", "write"):
                real, ours = at[(f"real/{engine}", op)], at[(f"node/{engine}", op)]
                ratio = statistics.median(r[real][3] / r[ours][3] for r in rounds)
                print(f"real / ours CPU µs per op, {engine} {op}: {ratio:.2f}")


if __name__ == "__main__":
    main()
