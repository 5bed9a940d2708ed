"""Loopback TCP peers for the proxy tests: an upstream server with a scripted behaviour per
connection, and a client that times what it receives."""

import socket
import threading
import time

TIMEOUT = 5.0  # no socket operation of a test waits longer


class Upstream:
    """A server on 127.0.0.1 running `behaviour(conn, self)` in a thread per connection;
    everything it reads is kept in `received` (one bytearray per connection)."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.received: list[bytearray] = []
        self.errors: list[BaseException] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._accepted = threading.Condition()
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> "Upstream":
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._listener.close()
        for conn in self._conns:
            conn.close()
        for t in self._threads:
            t.join(TIMEOUT)

    def join(self, connections: int = 1) -> None:
        """Wait until `connections` were accepted (the client may see its end close before
        the accept thread has run) and the behaviour of every one so far has finished."""
        with self._accepted:
            self._accepted.wait_for(lambda: len(self._threads) >= connections, TIMEOUT)
        for t in list(self._threads):
            t.join(TIMEOUT)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            conn.settimeout(TIMEOUT)
            self._conns.append(conn)
            self.received.append(bytearray())
            t = threading.Thread(target=self._serve, args=(conn, self.received[-1]), daemon=True)
            t.start()
            with self._accepted:
                self._threads.append(t)  # only once started: join() may run meanwhile
                self._accepted.notify_all()

    def _serve(self, conn: socket.socket, received: bytearray) -> None:
        try:
            self.behaviour(conn, received)
        except OSError as e:
            self.errors.append(e)


def read_all(conn: socket.socket, into: bytearray) -> None:
    while data := conn.recv(65536):
        into += data


def echo(conn: socket.socket, received: bytearray) -> None:
    while data := conn.recv(65536):
        received += data
        conn.sendall(data)


def sends(payload: bytes, then_close: bool = False):
    """Sends `payload` at once, then closes, or reads until the client closes."""
    def behaviour(conn: socket.socket, received: bytearray) -> None:
        conn.sendall(payload)
        if then_close:
            conn.close()
        else:
            read_all(conn, received)
    return behaviour


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def round_trip_ms(sock: socket.socket, payload: bytes = b"ping") -> float:
    t0 = time.perf_counter()
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        data = sock.recv(65536)
        assert data, "connection closed during a round trip"
        got += data
    assert got == payload
    return (time.perf_counter() - t0) * 1000


def receive_until_eof(sock: socket.socket) -> tuple[bytes, list[int], float]:
    """(the bytes, the size of each recv, ms until EOF)."""
    t0 = time.perf_counter()
    data, sizes = bytearray(), []
    while chunk := sock.recv(65536):
        data += chunk
        sizes.append(len(chunk))
    return bytes(data), sizes, (time.perf_counter() - t0) * 1000
