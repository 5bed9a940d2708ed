"""The byte path: one proxied connection, its two links, and the stages of their toxics.

A client accepted on a proxy's listener gets a `Connection`: the proxy dials the upstream,
then bytes flow in two `Link`s, upstream (client → server) and downstream (server → client).
A link with no toxics writes what it reads straight to the other socket. Otherwise every
chunk goes through one `Stage` per toxic of that direction, in the order the toxics were
added; each stage runs its toxic's `pipe` coroutine (toxics.py) and hands chunks on to the
next stage, the last one to the socket. The end of the stream (None) travels the same way,
behind the data, and closes the socket it reaches.

Toxics added, changed or removed through the API apply to live links: a stage is appended,
restarted (what it held is queued again, so it obeys the new settings) or detached (what
it held or queued goes on at once, as Toxiproxy flushes, except for `timeout`, whose removal
ends the stream). Everything runs on one event loop, so rewiring a chain is atomic.

Back-pressure: a link stops reading its source while the bytes queued in its stages pass
`HIGH_WATER`, or while the socket it writes to has a full buffer.
"""

import asyncio
import logging
import socket
import struct
import time
from collections import deque
from dataclasses import dataclass

from chaos.proxy.metrics import ByteCounter
from chaos.proxy.toxics import Toxic, noop

log = logging.getLogger("refproxy")

HIGH_WATER = 4 * 1024 * 1024
_LINGER_0 = struct.pack("ii", 1, 0)  # close() then sends a TCP RST instead of a FIN
_NOTHING = object()  # a stage holds no item (None would be the end of the stream)


@dataclass(slots=True)
class Chunk:
    data: bytes
    arrived: float  # time.monotonic() when it was read, or when the previous toxic let it go

    def split(self, n: int) -> tuple["Chunk", "Chunk"]:
        return Chunk(self.data[:n], self.arrived), Chunk(self.data[n:], self.arrived)


class Stage:
    """One toxic running on one link: its inbox, the task running its `pipe`, its per-link
    state, and `output` (the next stage's `push`, or the link's `deliver`)."""

    def __init__(self, link: "Link", toxic: Toxic, output):
        self.link, self.toxic, self.output = link, toxic, output
        self.rng = link.connection.proxy.rng
        self.state: dict = {}
        self.inbox: deque = deque()
        self.held = _NOTHING
        self.closed = False
        self._waiter: asyncio.Future | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Run the toxic, or pass everything through: toxicity is drawn here, so once per link
        (and again when the toxic is changed)."""
        active = self.rng.random() < self.toxic.toxicity
        coro = self.toxic.kind.pipe(self) if active else noop(self)
        self._task = asyncio.get_running_loop().create_task(coro)
        self._task.add_done_callback(self._ended)

    def push(self, item: Chunk | None) -> None:
        if not self.closed:
            self._enqueue(item, self.inbox.append)

    async def receive(self) -> Chunk | None:
        while not self.inbox:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        item = self.inbox.popleft()
        if item is not None:
            self.link.account(-len(item.data))
        return item

    async def hold(self, item: Chunk | None, seconds: float) -> None:
        """Hold `item` for at least `seconds` of real time (a loop timer may fire a little early)."""
        self.held = item
        end = time.monotonic() + seconds
        await asyncio.sleep(max(seconds, 0))
        while (left := end - time.monotonic()) > 0:
            await asyncio.sleep(left)
        self.held = _NOTHING

    def send(self, item: Chunk | None) -> None:
        self.output(item)

    def close(self) -> None:
        """End the stream here: what is queued is dropped, the end goes on."""
        if not self.closed:
            self.closed = True
            self.link.account(-sum(len(item.data) for item in self.inbox if item is not None))
            self.inbox.clear()
            self.output(None)

    def reset(self) -> None:
        self.link.connection.reset()

    def restart(self) -> None:
        """The toxic changed: run it again, on what it held first."""
        if not self.closed:
            held = self.interrupt()
            if held is not _NOTHING:
                self._enqueue(held, self.inbox.appendleft)
            self.start()

    def detach(self) -> None:
        """The toxic is removed: hand on what it holds and what is queued, in order."""
        held = self.interrupt()
        if self.closed:
            return
        if self.toxic.kind.closes_on_removal:
            self.close()
            return
        if held is not _NOTHING:
            self.output(held)
        while self.inbox:
            item = self.inbox.popleft()
            if item is not None:
                self.link.account(-len(item.data))
            self.output(item)

    def interrupt(self):
        """Stop the running toxic; returns the item it held (or _NOTHING)."""
        if self._task is not None:
            self._task.cancel()
        held, self.held = self.held, _NOTHING
        return held

    def _enqueue(self, item: Chunk | None, put) -> None:
        put(item)
        if item is not None:
            self.link.account(len(item.data))
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _ended(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("toxic %s failed on a link of proxy %s", self.toxic.name, self.link.connection.proxy.name,
                      exc_info=task.exception())
            self.link.connection.abort()


class Link:
    """One direction of a connection: what `source` reads, through the stages, to `dest`."""

    def __init__(self, connection: "Connection", direction: str, source: "_Side", dest: "_Side",
                 toxics: list[Toxic], counter: ByteCounter):
        self.connection, self.direction = connection, direction
        self.source, self.dest = source, dest
        self.counter = counter
        self.stages: list[Stage] = []
        self.buffered = 0  # bytes queued in the stages
        self.dest_full = False
        self.reading = True
        self.source_ended = False
        self.finished = False  # the end of the stream reached dest
        for toxic in toxics:
            self.add(toxic)

    # -- fed by the source socket
    def feed(self, data: bytes) -> None:
        self.counter.received += len(data)
        if self.stages:
            self.stages[0].push(Chunk(data, time.monotonic()))  # uvloop's loop.time() lags by up to 1 ms
        else:
            self._write(data)

    def feed_eof(self) -> None:
        if not self.source_ended:
            self.source_ended = True
            if self.stages:
                self.stages[0].push(None)
            else:
                self.deliver(None)

    # -- the end of the chain
    def deliver(self, item: Chunk | None) -> None:
        if self.finished:
            return
        if item is None:
            self.finished = True
            self.dest.transport.close()  # a full close, after the buffered bytes, as Toxiproxy
        elif item.data:
            self._write(item.data)

    def _write(self, data: bytes) -> None:
        self.dest.transport.write(data)
        self.counter.sent += len(data)

    # -- back-pressure
    def account(self, n: int) -> None:
        self.buffered += n
        self._update_reading()

    def set_dest_full(self, full: bool) -> None:
        self.dest_full = full
        self._update_reading()

    def _update_reading(self) -> None:
        want = not self.dest_full and self.buffered < HIGH_WATER
        transport = self.source.transport
        if want != self.reading and not transport.is_closing():
            self.reading = want
            if want:
                transport.resume_reading()
            else:
                transport.pause_reading()

    # -- the toxics of this direction, changed under live traffic
    def add(self, toxic: Toxic) -> None:
        stage = Stage(self, toxic, self.deliver)
        if self.stages:
            self.stages[-1].output = stage.push
        self.stages.append(stage)
        stage.start()

    def update(self, toxic: Toxic) -> None:
        self._stage(toxic).restart()

    def remove(self, toxic: Toxic) -> None:
        stage = self._stage(toxic)
        i = self.stages.index(stage)
        if i > 0:
            self.stages[i - 1].output = stage.output
        del self.stages[i]
        stage.detach()

    def stop(self) -> None:
        for stage in self.stages:
            stage.interrupt()

    def _stage(self, toxic: Toxic) -> Stage:
        return next(stage for stage in self.stages if stage.toxic is toxic)


class _Side(asyncio.Protocol):
    """One of a connection's two sockets. Until both are connected, the upstream socket is
    not read (uvloop may deliver a first read before the pause takes: it is kept for the
    link), and the client's is read only to hold its bytes and to see it leave: a client that
    closes while the proxy still dials takes its bytes with it, as a closed socket's connect
    and unsent data die in the kernel. Held on, they would reach a node that comes back at
    the dial's next SYN, seconds after the client gave the request up (a docker-killed node
    leaves the dial unanswered, not refused)."""

    def __init__(self, connection: "Connection"):
        self.connection = connection
        self.transport: asyncio.Transport | None = None
        self.reads_into: Link | None = None  # the link whose source this socket is
        self.written_by: Link | None = None
        self.early = bytearray()
        self.lost = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        if self is not self.connection.client:
            transport.pause_reading()
        self.connection.side_made(self)

    def data_received(self, data: bytes) -> None:
        if self.reads_into is None:
            self.early += data
            if self is not self.connection.client or len(self.early) >= HIGH_WATER:
                self.transport.pause_reading()
        else:
            self.reads_into.feed(data)

    def start_reading(self, link: "Link") -> None:
        self.reads_into = link
        if self.early:
            link.feed(bytes(self.early))
        self.transport.resume_reading()

    def eof_received(self) -> bool:
        if self.reads_into is None:  # the client left while the proxy dialed
            self.connection.abort()
            return False
        self.reads_into.feed_eof()
        return True  # keep the socket open for what the other link still has to write

    def connection_lost(self, exc) -> None:
        self.lost = True
        if self.reads_into is not None:
            self.reads_into.feed_eof()
        self.connection.side_lost()

    def pause_writing(self) -> None:
        self.written_by.set_dest_full(True)

    def resume_writing(self) -> None:
        self.written_by.set_dest_full(False)


class Connection:
    """A client of a proxy, the proxy's connection to the upstream, and the links between."""

    def __init__(self, proxy):
        self.proxy = proxy
        self.client = _Side(self)
        self.upstream = _Side(self)
        self.links: dict[str, Link] = {}
        self._dialing: asyncio.Task | None = None

    def side_made(self, side: _Side) -> None:
        if side is self.client:
            self.proxy.connections.add(self)
            self._dialing = asyncio.get_running_loop().create_task(self._dial())

    async def _dial(self) -> None:
        host, _, port = self.proxy.upstream.rpartition(":")
        try:
            await asyncio.get_running_loop().create_connection(lambda: self.upstream, host.strip("[]"), int(port))
        except (OSError, ValueError) as e:
            log.warning("proxy %s: cannot connect to upstream %s: %s", self.proxy.name, self.proxy.upstream, e)
            self.client.transport.close()
            return
        for direction, source, dest in (("upstream", self.client, self.upstream),
                                        ("downstream", self.upstream, self.client)):
            link = Link(self, direction, source, dest, self.proxy.toxics_of(direction),
                        self.proxy.counter(direction))
            dest.written_by = self.links[direction] = link
        for direction, side in (("upstream", self.client), ("downstream", self.upstream)):
            side.start_reading(self.links[direction])

    def side_lost(self) -> None:
        if self.client.lost and (self.upstream.lost or self.upstream.transport is None):
            self._end()

    def abort(self) -> None:
        """Close both sockets now (the proxy is disabled or gone)."""
        self._end()
        for side in (self.client, self.upstream):
            if side.transport is not None:
                side.transport.abort()

    def reset(self) -> None:
        """Both peers get a TCP RST (reset_peer)."""
        for side in (self.client, self.upstream):
            if side.transport is not None and not side.transport.is_closing():
                side.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_0)
        self.abort()

    def _end(self) -> None:
        if self._dialing is not None:
            self._dialing.cancel()
        for link in self.links.values():
            link.stop()
        self.proxy.connections.discard(self)
