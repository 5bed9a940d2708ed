"""Single-node throughput and CPU per operation, against the Python floor in the same run.

For each case a load of pre-encoded 1 KiB-record requests is driven over several
connections by separate loader processes; we report operations/s and the server
process's CPU microseconds per operation (user + system, from /proc via psutil).
The floor is bench/floor_server.py: the same framing, no work. Ratios = node / floor.

    python bench/node_throughput.py [--seconds 5] [--conns 4] [--records 10000]
"""

import argparse
import multiprocessing as mp
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster.deploy.local import LocalNode, free_port_block  # noqa: E402
from cluster.wire import message as wm  # noqa: E402
from cluster.wire.digest import compute_digest  # noqa: E402
from cluster.wire.message import FieldType, Info1, Info2, Message, OpType, value_op  # noqa: E402

VALUE = b"v" * 1024


def request(kind: str, i: int) -> bytes:
    fields = {FieldType.NAMESPACE: b"test", FieldType.SET: b"bench",
              FieldType.DIGEST: compute_digest("bench", i)}
    if kind == "read":
        return wm.encode_frame(Message(info1=Info1.READ | Info1.GET_ALL, fields=fields))
    return wm.encode_frame(Message(info2=Info2.WRITE, fields=fields,
                                   ops=[value_op(OpType.WRITE, "v", VALUE)]))


def _recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def _loader(port: int, frames: list[bytes], seconds: float, out: mp.Queue) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    count, i, deadline = 0, 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(50):
            sock.sendall(frames[i])
            i = (i + 1) % len(frames)
            header = _recv_exact(sock, 8)
            _recv_exact(sock, struct.unpack(">Q", header)[0] & 0xFFFFFFFFFFFF)
            count += 1
    sock.close()
    out.put(count)


def drive(port: int, pid: int, frames: list[bytes], conns: int, seconds: float) -> tuple[float, float]:
    """(ops per second, server CPU µs per op)."""
    proc = psutil.Process(pid)
    out: mp.Queue = mp.Queue()
    loaders = [mp.Process(target=_loader, args=(port, frames[i::conns], seconds, out)) for i in range(conns)]
    cpu0 = sum(proc.cpu_times()[:2])
    t0 = time.monotonic()
    for p in loaders:
        p.start()
    total = sum(out.get() for _ in loaders)
    for p in loaders:
        p.join()
    elapsed = time.monotonic() - t0
    cpu = sum(proc.cpu_times()[:2]) - cpu0
    return total / elapsed, cpu * 1e6 / max(total, 1)


def floor_case(reply_bytes: int, frames, args) -> tuple[float, float]:
    port = free_port_block(1)
    srv = subprocess.Popen([sys.executable, str(Path(__file__).with_name("floor_server.py")), str(port), str(reply_bytes)])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        return drive(port, srv.pid, frames, args.conns, args.seconds)
    finally:
        srv.kill()
        srv.wait()


def node_case(engine: str, kind: str, frames, preload, args, work: Path) -> tuple[float, float]:
    settings = [f"namespaces.test.storage-engine.type={engine}", "namespaces.test.storage-engine.filesize=512M",
                "namespaces.test.storage-engine.data-size=512M"]
    node = LocalNode(work / f"{engine}-{kind}", free_port_block(3), settings).start()
    try:
        _preload(node.port, preload)
        return drive(node.port, node.proc.pid, frames, args.conns, args.seconds)
    finally:
        node.stop()


def _preload(port: int, frames: list[bytes]) -> None:
    with socket.create_connection(("127.0.0.1", port)) as s:
        for f in frames:
            s.sendall(f)
            header = _recv_exact(s, 8)
            _recv_exact(s, struct.unpack(">Q", header)[0] & 0xFFFFFFFFFFFF)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--records", type=int, default=10_000)
    args = ap.parse_args()
    reads = [request("read", i) for i in range(args.records)]
    writes = [request("write", i) for i in range(args.records)]
    read_reply = 8 + 22 + 8 + 1 + len(VALUE)  # header + one 1 KiB bin, like the node's reply
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        floor_read = floor_case(read_reply, reads, args)
        floor_write = floor_case(22, writes, args)
        rows.append(("floor", "read", *floor_read, 1.0))
        rows.append(("floor", "write", *floor_write, 1.0))
        for engine in ("memory", "device"):
            ops, us = node_case(engine, "read", reads, writes, args, work)
            rows.append((f"node/{engine}", "read", ops, us, us / floor_read[1]))
            ops, us = node_case(engine, "write", writes, [], args, work)
            rows.append((f"node/{engine}", "write", ops, us, us / floor_write[1]))
    print(f"{'server':<14}{'op':<7}{'ops/s':>10}{'cpu µs/op':>12}{'× floor':>9}")
    for server, op, ops, us, ratio in rows:
        print(f"{server:<14}{op:<7}{ops:>10.0f}{us:>12.1f}{ratio:>9.2f}")


if __name__ == "__main__":
    main()
