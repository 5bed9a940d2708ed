"""One blocking TCP connection to a node: send a request, read proto frames back.

Plain blocking sockets and select() only, so gevent's monkey-patching makes every call
cooperative under Locust. I/O failures surface as ConnectionFailed (-10) or, when the
socket timed out, Timeout (9); either way the connection must then be discarded.
"""

import select
import socket

from cluster.wire import info as winfo
from cluster.wire import proto

from .errors import ClientError, ConnectionFailed, Timeout


class Connection:
    def __init__(self, host: str, port: int, timeout: float | None):
        self.address = (host, port)
        try:
            self.sock = socket.create_connection(self.address, timeout=timeout)
        except TimeoutError:
            raise Timeout(f"connecting to {host}:{port} timed out") from None
        except OSError as exc:
            raise ConnectionFailed(f"{host}:{port}: {exc}") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def set_timeout(self, seconds: float | None) -> None:
        self.sock.settimeout(seconds)

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise self._io_error(exc) from None

    def read_frame(self) -> tuple[int, bytes]:
        """(proto type, body) of the next frame; a compressed AS_MSG comes back inflated."""
        try:
            msg_type, size = proto.unpack_header(self._recv_exact(proto.HEADER_SIZE))
            body = self._recv_exact(size)
            if msg_type == proto.TYPE_COMPRESSED:
                msg_type, body = proto.decompress(body)
        except proto.ProtoError as exc:
            raise ClientError(f"{self.where()} sent a bad frame: {exc.message}") from None
        return msg_type, body

    def info(self, commands: list[str]) -> dict[str, str]:
        self.send(winfo.build_request(commands))
        msg_type, body = self.read_frame()
        if msg_type != proto.TYPE_INFO:
            raise ConnectionFailed(f"info reply of proto type {msg_type}")
        return winfo.parse_response(body)

    def is_idle_clean(self) -> bool:
        """True if nothing is waiting to be read: a readable idle socket holds stray bytes or EOF."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            try:
                count = self.sock.recv_into(view[got:])
            except OSError as exc:
                raise self._io_error(exc) from None
            if count == 0:
                raise ConnectionFailed(f"{self.where()} closed the connection")
            got += count
        return bytes(buf)

    def _io_error(self, exc: OSError) -> Exception:
        if isinstance(exc, TimeoutError):
            return Timeout(f"{self.where()} did not answer in time")
        return ConnectionFailed(f"{self.where()}: {exc}")

    def where(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"
