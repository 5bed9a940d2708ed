"""A scripted fake node for the client's error-path tests (timeouts, retries, broken sockets).

It answers the tend info commands from its attributes and replies to each AS_MSG with
the next scripted action. Happy-path behaviour is tested against the real node in
tests/integration/test_our_client.py; this fake only exists to misbehave on cue.
"""

import base64
import socket
import threading
from collections import deque

from cluster.wire import info as winfo
from cluster.wire import message as wm
from cluster.wire import proto
from cluster.wire.digest import N_PARTITIONS
from cluster.wire.message import Info1, Message, OpType

ALL_PARTITIONS = range(N_PARTITIONS)


def bitmap_b64(pids) -> str:
    bitmap = bytearray(N_PARTITIONS // 8)
    for pid in pids:
        bitmap[pid >> 3] |= 0x80 >> (pid & 7)
    return base64.b64encode(bytes(bitmap)).decode()


def replicas_value(columns: list, ns: str = "test") -> str:
    """`replicas` value for one namespace, one pid collection per column."""
    return f"{ns}:0,{len(columns)}," + ",".join(bitmap_b64(c) for c in columns)


class FakeNode:
    """Actions for AS_MSG requests, consumed in order (default "ok" once the script is empty):
    ("ok",)            result 0 (a read gets bin "a" = 1)
    ("rc", code)       header-only reply with that result code
    ("close",)         close the connection without replying
    ("hold", event)    reply ok only once the event is set (at most 10 s: a stalled node)
    ("stray",)         reply ok followed by one extra unsolicited byte
    ("reply", message) reply with that Message, encoded as the node would (wm.encode_frame)
    ("raw", data)      send these bytes as they are: any number of frames, compressed or malformed
    With the script empty, `reply` (a Message), if set, answers instead of "ok". Every AS_MSG
    request is kept as parsed (`requests`) and as the exact bytes received (`frames`).
    """

    def __init__(self, name: str = "BB9000000000001", columns: list | None = None):
        self.name = name
        self.cluster_name = "fake"
        self.partition_generation = 1
        self.peers_generation = 1
        self.peers: list[tuple[str, int]] = []  # (node name, port) of the other nodes
        self.replicas = replicas_value(columns if columns is not None else [ALL_PARTITIONS])
        self.script: deque = deque()
        self.requests: list[Message] = []
        self.frames: list[bytes] = []  # AS_MSG requests as sent: proto header included, maybe compressed
        self.reply: Message | None = None
        self.info_requests: list[list[str]] = []
        self.accepted = 0
        self.answered = 0  # AS_MSG replies sent
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept_loop, daemon=True).start()

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self.port

    def stop(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked in another thread
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            for conn in self._conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            while True:
                header = _recv(conn, proto.HEADER_SIZE)
                msg_type, size = proto.unpack_header(header)
                body = _recv(conn, size)
                if msg_type != proto.TYPE_INFO:
                    self.frames.append(header + body)
                if msg_type == proto.TYPE_COMPRESSED:
                    msg_type, body = proto.decompress(body)
                if msg_type == proto.TYPE_INFO:
                    conn.sendall(self._info(body))
                elif not self._as_msg(conn, wm.parse(body)[0]):
                    return
        except OSError:
            return
        finally:
            conn.close()

    def _info(self, body: bytes) -> bytes:
        commands = winfo.split_request(body)
        self.info_requests.append(commands)
        peers = ",".join(f"[{name},,[127.0.0.1:{port}]]" for name, port in self.peers)
        values = {
            "node": self.name,
            "build": "7.2.0.0",
            "cluster-name": self.cluster_name,
            "partition-generation": str(self.partition_generation),
            "peers-generation": str(self.peers_generation),
            "peers-clear-std": f"{self.peers_generation},3000,[{peers}]",
            "replicas": self.replicas,
        }
        return winfo.build_response([(c, values.get(c, "ERROR:4:unrecognized command")) for c in commands])

    def _as_msg(self, conn: socket.socket, msg: Message) -> bool:
        self.requests.append(msg)
        action = self.script.popleft() if self.script else ("ok",) if self.reply is None else ("reply", self.reply)
        if action[0] == "close":
            return False
        if action[0] in ("reply", "raw"):
            conn.sendall(wm.encode_frame(action[1]) if action[0] == "reply" else action[1])
            self.answered += 1
            return True
        if action[0] == "hold":
            action[1].wait(10)
        reply = Message(result_code=action[1] if action[0] == "rc" else 0, generation=1)
        if reply.result_code == 0 and msg.info1 & Info1.READ:
            reply.ops = [wm.value_op(OpType.READ, "a", 1)]
        data = wm.encode_frame(reply)
        conn.sendall(data + b"\x00" if action[0] == "stray" else data)
        self.answered += 1
        return True


def _recv(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise OSError("peer closed")
        buf += chunk
    return buf
