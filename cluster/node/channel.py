"""Node-to-node messaging over TCP: the transport under heartbeat (3002) and fabric (3001).

A `Channel` listens on one port and keeps at most one outgoing connection per remote
endpoint, dialled from its own address (so a peer, and a firewall, see which node it is).
Frames are a u32 big-endian length and an opaque payload (the protocol cores encode their
own messages). Sending is fire-and-forget: a message to an unreachable peer is dropped,
because every protocol above retransmits on its own schedule, as Aerospike's heartbeat,
Paxos and migration do.

A connection is never trusted to recover by itself: after a network partition heals, the
kernel would resend on an old connection only at its next retransmission, seconds of
exponential backoff later. Like Aerospike, the driver throws away connections to a peer it
no longer hears from (`close_silent`, `disconnect`); the next send dials a fresh one.
"""

import asyncio
import logging
import socket
import struct
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

_LEN = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024
SEND_QUEUE_LIMIT = 8 * 1024 * 1024  # bytes buffered toward one peer before we drop
_WILDCARDS = ("", "0.0.0.0", "::")
# An incoming connection whose peer vanished (its close lost in a partition) would otherwise
# stay open for ever: probe after 1 s of quiet, every 1 s, 10 times (Aerospike's fabric
# keepalive defaults).
_KEEPALIVE = ((socket.SO_KEEPALIVE, socket.SOL_SOCKET, 1), (socket.TCP_KEEPIDLE, socket.IPPROTO_TCP, 1),
              (socket.TCP_KEEPINTVL, socket.IPPROTO_TCP, 1), (socket.TCP_KEEPCNT, socket.IPPROTO_TCP, 10))


class _Inbound(asyncio.Protocol):
    def __init__(self, channel: "Channel"):
        self.channel = channel
        self.buf = bytearray()
        self.last_received = time.monotonic()

    def connection_made(self, transport):
        self.transport = transport
        self.channel._inbound.add(self)
        sock = transport.get_extra_info("socket")
        for option, level, value in _KEEPALIVE:
            sock.setsockopt(level, option, value)

    def connection_lost(self, exc):
        self.channel._inbound.discard(self)

    def data_received(self, data):
        self.last_received = time.monotonic()
        buf = self.buf
        buf += data
        while len(buf) >= 4:
            (size,) = _LEN.unpack_from(buf)
            if size > MAX_FRAME:
                log.warning("%s: dropping connection announcing a %d-byte frame", self.channel.name, size)
                self.transport.close()
                return
            if len(buf) < 4 + size:
                return
            payload = bytes(buf[4 : 4 + size])
            del buf[: 4 + size]
            self.channel.deliver(payload)


class Channel:
    def __init__(self, name: str, address: str, port: int, on_message: Callable[[bytes], None],
                 connect_timeout: float = 0.5,
                 route: Callable[[tuple[str, int]], tuple[str, int]] | None = None):
        self.name = name
        self.route = route  # where to dial a peer's endpoint (config dial-via); None: the endpoint itself
        self.address = address
        self.port = port
        self.on_message = on_message
        self.connect_timeout = connect_timeout
        self._server: asyncio.AbstractServer | None = None
        self._out: dict[tuple[str, int], asyncio.Transport] = {}
        self._connecting: dict[tuple[str, int], list[bytes]] = {}
        self._heard: dict[tuple[str, int], float] = {}  # endpoint -> connected or last heard from
        self._inbound: set[_Inbound] = set()
        self._dialling: set[asyncio.Task] = set()  # held so that close() can cancel them
        self._closed = False
        self.sent = 0
        self.received = 0
        self.dropped = 0
        self.connections_opened = 0
        self.connections_closed = 0  # by us: the peer went silent or departed

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Inbound(self), self.address, self.port,
                                                reuse_address=True)

    def close(self) -> None:
        self._closed = True
        if self._server:
            self._server.close()
        for task in self._dialling:
            task.cancel()
        self.dropped += sum(map(len, self._connecting.values()))  # a dial cancelled before it ran drops nothing
        self._connecting.clear()
        for transport in self._out.values():
            transport.close()
        self._out.clear()

    def deliver(self, payload: bytes) -> None:
        self.received += 1
        try:
            self.on_message(payload)
        except Exception:
            log.exception("%s: failed to handle a message", self.name)

    def send(self, endpoint: tuple[str, int], payload: bytes) -> None:
        if self._closed:
            self.dropped += 1
            return
        frame = _LEN.pack(len(payload)) + payload
        transport = self._out.get(endpoint)
        if transport is not None and not transport.is_closing():
            if transport.get_write_buffer_size() > SEND_QUEUE_LIMIT:
                self.dropped += 1
                return
            transport.write(frame)
            self.sent += 1
            return
        pending = self._connecting.get(endpoint)
        if pending is not None:
            pending.append(frame)
            return
        self._connecting[endpoint] = [frame]
        task = asyncio.get_running_loop().create_task(self._connect(endpoint))
        self._dialling.add(task)
        task.add_done_callback(self._dialled)

    def _dialled(self, task: asyncio.Task) -> None:
        # retrieve what _connect did not expect, or asyncio logs "Task exception was never retrieved"
        self._dialling.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("%s: connecting failed: %r", self.name, task.exception())

    async def _connect(self, endpoint: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        local = None if self.address in _WILDCARDS else (self.address, 0)
        transport = None
        try:
            target = self.route(endpoint) if self.route else endpoint
            transport, _ = await asyncio.wait_for(
                loop.create_connection(asyncio.Protocol, *target, local_addr=local), self.connect_timeout)
        except (TimeoutError, OSError):
            pass
        finally:  # whatever happened (also cancelled, or failed unexpectedly), the next send dials anew
            frames = self._connecting.pop(endpoint, [])
        if transport is None or self._closed or transport.is_closing():
            # refused or timed out, the channel closed meanwhile, or the peer hung up at once
            self.dropped += len(frames)
            if transport is not None:
                transport.close()
            return
        self.connections_opened += 1
        self._out[endpoint] = transport
        self._heard[endpoint] = time.monotonic()  # a new connection gets a full idle period
        for frame in frames:
            transport.write(frame)
            self.sent += 1

    def heard_from(self, endpoint: tuple[str, int]) -> None:
        """The peer listening at `endpoint` just showed it is alive (it sent us something)."""
        self._heard[endpoint] = time.monotonic()

    def close_silent(self, idle: float) -> None:
        """Drop every connection on which we have not heard the peer for `idle` seconds:
        outgoing ones by `heard_from`, incoming ones by bytes received (Aerospike's
        heartbeat channel idle timeout). Only for channels whose peers talk continuously."""
        since = time.monotonic() - idle
        for endpoint in [e for e in self._out if self._heard.get(e, 0.0) < since]:
            self.disconnect(endpoint)
        for inbound in [i for i in self._inbound if i.last_received < since]:
            self.connections_closed += 1
            inbound.transport.abort()

    def disconnect(self, endpoint: tuple[str, int]) -> None:
        """Drop the connection to `endpoint` and whatever it still buffers; the next send redials."""
        transport = self._out.pop(endpoint, None)
        if transport is not None:
            self.connections_closed += 1
            transport.abort()
