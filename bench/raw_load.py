"""Load for the benchmarks in raw protocol frames: loader processes, one connection and one
request in flight each, and the CPU the server processes spend meanwhile.

Frames are pre-encoded, so a loader costs little besides its syscalls; every reply is
checked (result 0, and the expected size when one is given).
"""

import multiprocessing as mp
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from cluster.deploy.local import recv_exact
from cluster.deploy.local_cluster import LocalCluster

RESULT_AT = 8 + 5  # proto header, then AS_MSG header: size info1 info2 info3 info4 result_code
_U64 = struct.Struct(">Q")


def exchange(sock: socket.socket, frame: bytes) -> bytes:
    """Send one request frame, return the whole reply frame."""
    sock.sendall(frame)
    header = recv_exact(sock, 8)
    return header + recv_exact(sock, _U64.unpack(header)[0] & 0xFFFFFFFFFFFF)


def _loader(port: int, frames: list[bytes], reply_size: int | None, seconds: float, ready, go, out) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    count = errors = i = 0
    ready.put(None)
    go.wait()
    t0 = time.monotonic()
    deadline = t0 + seconds
    while time.monotonic() < deadline:
        for _ in range(20):
            reply = exchange(sock, frames[i])
            i = (i + 1) % len(frames)
            errors += reply[RESULT_AT] != 0 or (reply_size is not None and len(reply) != reply_size)
            count += 1
    elapsed = time.monotonic() - t0
    sock.close()
    out.put((count, errors, elapsed))


@dataclass
class Load:
    ops_per_s: float
    ops: int
    cpu_user_s: float  # of the watched server processes, over the loaded interval
    cpu_system_s: float

    def cpu_us_per_op(self) -> float:
        return (self.cpu_user_s + self.cpu_system_s) * 1e6 / max(self.ops, 1)


def run_loaders(jobs: list[tuple[int, list[bytes]]], seconds: float, server_pids: list[int],
                reply_size: int | None = None) -> Load:
    """One loader process per (port, frames) job, started together after all have connected."""
    procs = [psutil.Process(pid) for pid in server_pids]
    ready, out, go = mp.Queue(), mp.Queue(), mp.Event()
    loaders = [mp.Process(target=_loader, args=(port, frames, reply_size, seconds, ready, go, out))
               for port, frames in jobs]
    for p in loaders:
        p.start()
    for _ in loaders:
        ready.get(timeout=30)
    cpu0 = [p.cpu_times()[:2] for p in procs]
    go.set()
    results = [out.get(timeout=seconds + 60) for _ in loaders]
    cpu1 = [p.cpu_times()[:2] for p in procs]
    for p in loaders:
        p.join()
    total, errors = sum(r[0] for r in results), sum(r[1] for r in results)
    if errors:
        raise RuntimeError(f"{errors} of {total} replies were not a success" + (" of the expected size" if reply_size else ""))
    return Load(sum(r[0] / r[2] for r in results), total,
                sum(b[0] - a[0] for a, b in zip(cpu0, cpu1, strict=True)),
                sum(b[1] - a[1] for a, b in zip(cpu0, cpu1, strict=True)))


def wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class ProfiledCluster(LocalCluster):
    """Every node under cProfile; DIR/<name>.prof is written when the node stops (SIGTERM)."""

    def __init__(self, *a, profile_dir: Path, **kw):
        super().__init__(*a, **kw)
        self.profile_dir = profile_dir

    def _node(self, spec):
        node = super()._node(spec)
        out, plain = self.profile_dir / f"{spec.name}.prof", node.command
        node.command = lambda: [plain()[0], "-m", "cProfile", "-o", str(out)] + plain()[1:]
        return node
