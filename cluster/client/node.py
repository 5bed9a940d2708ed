"""A cluster node as the client sees it: its name, address, tend state and a socket pool.

The tend socket (the one that validated the node) belongs to the tend thread; commands
borrow sockets from a bounded LIFO pool so hot sockets stay warm and idle ones age out
of use rather than being reopened.
"""

import threading
from collections import deque
from contextlib import contextmanager

from .connection import Connection
from .errors import NoMoreConnections


class Node:
    def __init__(self, name: str, host: str, port: int, tend_conn: Connection,
                 max_conns: int = 100, connect_timeout: float = 1.0):
        self.name = name
        self.host = host
        self.port = port
        self.max_conns = max_conns
        self.connect_timeout = connect_timeout
        # Tend state, touched only by the tend thread.
        self.tend_conn: Connection | None = tend_conn
        self.failures = 0
        self.peers_generation: int | None = None
        self.partition_generation: int | None = None  # of the replicas we loaded; None = load them
        self.seen_partition_generation: int | None = None  # as last reported by the node
        self.peers: list[tuple[str, list[tuple[str, int]]]] = []
        # Pool state, shared by every caller thread.
        self._lock = threading.Lock()
        self._idle: deque[Connection] = deque()
        self._open = 0
        self.closed = False

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def __repr__(self) -> str:
        return f"Node({self.name} {self.host}:{self.port})"

    # -- command sockets ------------------------------------------------------------------

    @contextmanager
    def connection(self):
        """Borrow a pooled socket; it goes back on success and is closed if anything raised.

        Closing on any exception is deliberate: after a failure part of a reply may still
        be unread, and the next borrower would read it as its own.
        """
        conn = self._acquire()
        try:
            yield conn
        except BaseException:
            self._discard(conn)
            raise
        self._release(conn)

    def _acquire(self) -> Connection:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if conn.is_idle_clean():
                    return conn
                conn.close()
                self._open -= 1
            if self._open >= self.max_conns:
                raise NoMoreConnections(f"{self.name}: all {self.max_conns} connections in use")
            self._open += 1
        try:
            return Connection(self.host, self.port, self.connect_timeout)
        except BaseException:
            with self._lock:
                self._open -= 1
            raise

    def _release(self, conn: Connection) -> None:
        with self._lock:
            if not self.closed:
                self._idle.append(conn)
                return
            self._open -= 1
        conn.close()

    def _discard(self, conn: Connection) -> None:
        conn.close()
        with self._lock:
            self._open -= 1

    def close(self) -> None:
        with self._lock:
            self.closed = True
            idle, self._idle = list(self._idle), deque()
            self._open -= len(idle)
        for conn in idle:
            conn.close()
        if self.tend_conn is not None:
            self.tend_conn.close()
            self.tend_conn = None

    # -- tend socket ------------------------------------------------------------------------

    def tend_info(self, commands: list[str], timeout: float) -> dict[str, str]:
        """Info on the dedicated tend socket, reopened after a failure."""
        if self.tend_conn is None:
            self.tend_conn = Connection(self.host, self.port, timeout)
        self.tend_conn.set_timeout(timeout)
        try:
            return self.tend_conn.info(commands)
        except BaseException:
            self.tend_conn.close()
            self.tend_conn = None
            raise
