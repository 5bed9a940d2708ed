"""A client that pipelines without reading its replies cannot grow a node's memory without
bound, and the node keeps serving others meanwhile; proto-fd-max refuses connections.

Raw sockets speaking the wire protocol against real node processes; the node's RSS is read
with psutil. Without back-pressure the floods below grow a node by about 1 GB.
"""

import socket
import time

import psutil

from cluster.deploy.local import info_request, recv_exact
from cluster.deploy.local_cluster import LocalCluster, parse_info_kv
from cluster.wire import info as winfo
from cluster.wire import message as wm
from cluster.wire import proto
from cluster.wire.digest import compute_digest
from cluster.wire.message import FieldType, Info1, Info2, Message, OpType, value_op
from tests.conftest import SMALL_DEVICE

RSS_MARGIN = 150 * 1024 * 1024
RESULT_AT = proto.HEADER_SIZE + 5


def fields(i: int) -> dict[int, bytes]:
    return {FieldType.NAMESPACE: b"test", FieldType.SET: b"bp", FieldType.DIGEST: compute_digest("bp", i)}


def write_frame(i: int, value: bytes) -> bytes:
    return wm.encode_frame(Message(info2=Info2.WRITE, fields=fields(i), ops=[value_op(OpType.WRITE, "v", value)]))


def read_frame(i: int) -> bytes:
    return wm.encode_frame(Message(info1=Info1.READ | Info1.GET_ALL, fields=fields(i)))


def request(sock: socket.socket, frame: bytes) -> bytes:
    sock.sendall(frame)
    _type, size = proto.unpack_header(recv_exact(sock, proto.HEADER_SIZE))
    return recv_exact(sock, size)


def result_of(sock: socket.socket, frame: bytes) -> int:
    return request(sock, frame)[5]


def flood(address, frame: bytes, count: int) -> tuple[socket.socket, int]:
    """Send `count` copies of `frame` on one connection without reading a reply; stop when the
    node has stopped reading (a frame cannot be sent within 3 s) -> (socket, frames sent)."""
    sock = socket.create_connection(address)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.settimeout(3)
    for sent in range(count):
        try:
            sock.sendall(frame)
        except TimeoutError:
            return sock, sent
    return sock, count


def peak_rss(pid: int, seconds: float = 3.0) -> int:
    """The node's highest RSS while it works through what it read."""
    proc, peak = psutil.Process(pid), 0
    for _ in range(int(seconds / 0.1)):
        peak = max(peak, proc.memory_info().rss)
        time.sleep(0.1)
    return peak


def test_pipelined_writes_behind_a_stalled_replica_stay_bounded(tmp_path):
    # the paused replica must stay in the cluster for the whole test: a long heartbeat timeout
    with LocalCluster(nodes=2, rf=2, run_dir=tmp_path, settings=[*SMALL_DEVICE, "network.heartbeat.timeout=400"]) as lc:
        n1 = lc["n1"]
        with socket.create_connection(n1.address) as sock:
            assert result_of(sock, write_frame(-1, b"before")) == 0
        idle = psutil.Process(n1.pid).memory_info().rss
        lc.pause("n2")
        try:
            sock, sent = flood(n1.address, write_frame(0, b"w" * 100 * 1024), 10_000)
            with sock:
                rss = peak_rss(n1.pid)
                # another client is served meanwhile: info, and a read of a copy n1 holds
                assert "cluster_size=2" in n1.info("statistics")
                with socket.create_connection(n1.address, timeout=5) as other:
                    reply = request(other, read_frame(-1))
                    assert reply[5] == 0 and b"before" in reply
        finally:
            lc.resume("n2")
        print(f"writes sent {sent}, idle RSS {idle >> 20} MiB, peak {rss >> 20} MiB")
        assert rss < idle + RSS_MARGIN, f"RSS grew by {(rss - idle) >> 20} MiB"


def test_pipelined_reads_of_a_large_record_never_read_stay_bounded(start_node):
    node = start_node(SMALL_DEVICE)
    with socket.create_connection(node.address) as sock:
        assert result_of(sock, write_frame(1, b"r" * 768 * 1024)) == 0
    idle = psutil.Process(node.pid).memory_info().rss
    sock, sent = flood(node.address, read_frame(1), 2000)
    with sock:
        rss = peak_rss(node.pid)
        with socket.create_connection(node.address, timeout=5) as other:
            assert result_of(other, read_frame(1)) == 0  # served while the flood is stuck
        stats = parse_info_kv(node.info("statistics"))
        assert stats["client_connections"] == "2"  # the flood and the info request
    print(f"reads sent {sent}, idle RSS {idle >> 20} MiB, peak {rss >> 20} MiB")
    assert rss < idle + RSS_MARGIN, f"RSS grew by {(rss - idle) >> 20} MiB"


def info_on(sock: socket.socket, command: str) -> str:
    return winfo.parse_response(request(sock, winfo.build_request([command])))[command]


def refused(address) -> bool:
    """The node closes the connection at once rather than answer on it."""
    with socket.create_connection(address, timeout=5) as sock:
        try:
            sock.sendall(winfo.build_request(["status"]))
            return sock.recv(1) == b""
        except ConnectionResetError:
            return True


def test_proto_fd_max_refuses_connections_above_it_at_run_time(start_node):
    node = start_node(SMALL_DEVICE)
    held = [socket.create_connection(node.address, timeout=5) for _ in range(3)]
    try:
        assert all(info_on(s, "status") == "ok" for s in held)
        assert info_on(held[0], "set-config:context=service;proto-fd-max=3") == "ok"
        assert refused(node.address)
        assert refused(node.address)
        stats = parse_info_kv(info_on(held[1], "statistics"))
        assert (stats["client_connections"], stats["client_connections_refused"]) == ("3", "2")
        held.pop().close()
        deadline = time.monotonic() + 10
        while refused(node.address):  # admitted once the node has seen the close
            assert time.monotonic() < deadline, "a freed slot was never given to a new connection"
            time.sleep(0.05)
        assert info_on(held[0], "set-config:context=service;proto-fd-max=15000") == "ok"
        assert info_request(*node.address, ["status"])["status"] == "ok"
    finally:
        for s in held:
            s.close()
