"""The client-facing service port: proto framing, dispatch by message type, error policy.

One `ServiceProtocol` per client connection. Requests on a connection are answered strictly
in order, one at a time (clients may pipeline): while a reply is streaming (scan) or
deferred (a write waiting for its replicas or for its group commit, a proxied request),
later requests wait in the input buffer, unparsed. A frame whose header is unacceptable
(bad version or type, absurd length) closes the connection; a well-framed but malformed
AS_MSG gets a PARAMETER (4) reply and the connection stays usable. Nothing a client sends
can stop the node: every handler failure is logged and answered.

Back-pressure: a connection holds at most one reply in progress, the replies the transport
has not sent yet, and HIGH_WATER bytes of requests. Reading pauses while the client does
not read its replies (the transport's pause_writing) and while requests pile up behind a
reply in progress; it resumes when the client reads again and the backlog is below
LOW_WATER. A request larger than HIGH_WATER is still read whole: it is what we work on.

Durability: a request that wrote to a commit-to-device namespace is answered only once the
group commit that covers its write is done (`storage.group_commit`).
"""

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from typing import TYPE_CHECKING

from cluster.wire import info as winfo
from cluster.wire import message as wm
from cluster.wire import proto
from cluster.wire.result_codes import AerospikeError, ResultCode

if TYPE_CHECKING:
    from cluster.node.server import Node

log = logging.getLogger(__name__)

ADMIN_HEADER_SIZE = 16
# Security is off: answer any admin (login) request with SECURITY_NOT_ENABLED so clients
# configured with a user still connect.
ADMIN_REPLY = proto.frame(proto.TYPE_ADMIN, bytes((0, ResultCode.SECURITY_NOT_ENABLED)) + bytes(14))
HIGH_WATER = 1 << 20  # unprocessed request bytes at which reading pauses behind a busy reply ...
LOW_WATER = HIGH_WATER // 4  # ... and below which it resumes


class ServiceProtocol(asyncio.Protocol):
    def __init__(self, node: "Node"):
        self.node = node
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.busy = False  # a reply is streaming or deferred; later requests wait
        self.can_write = asyncio.Event()  # the client reads its replies (transport flow control)
        self.can_write.set()
        self.reading_paused = False
        self.refused = False
        self.peer = "?"

    # -- asyncio callbacks ----------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        if not self.node.connection_opened():
            self.refused = True  # proto-fd-max: closed at once, as the real server does
            transport.close()

    def connection_lost(self, exc):
        if not self.refused:
            self.node.connection_closed()
        self.can_write.set()

    def pause_writing(self):
        self.can_write.clear()
        self.regulate_reading()

    def resume_writing(self):
        self.can_write.set()
        # not from inside the transport's callback: process() writes replies
        asyncio.get_running_loop().call_soon(self.process)

    def data_received(self, data: bytes):
        if self.refused:
            return
        if (not self.buffer and not self.busy and self.can_write.is_set()
                and proto.is_one_msg_frame(data)):
            # The common case, one whole AS_MSG per read: handled without going through the
            # buffer. Anything else (partial, pipelined, other types, bad) takes the buffer path.
            self.handle(proto.TYPE_MSG, bytes(data[proto.HEADER_SIZE :]))
            if self.busy or self.reading_paused or not self.can_write.is_set():
                self.regulate_reading()  # else it has nothing to change
            return
        self.buffer += data
        self.process()

    def regulate_reading(self) -> None:
        """Pause reading while the client does not read or requests pile up behind a busy reply."""
        if self.transport.is_closing():
            return
        writable = self.can_write.is_set()
        if not self.reading_paused:
            if not writable or (self.busy and len(self.buffer) >= HIGH_WATER):
                self.reading_paused = True
                self.transport.pause_reading()
        elif writable and (not self.busy or len(self.buffer) < LOW_WATER):
            self.reading_paused = False
            self.transport.resume_reading()

    # -- request loop ---------------------------------------------------------------

    def process(self) -> None:
        """Handle the buffered requests in order while nothing holds them back."""
        buf = self.buffer
        while len(buf) >= proto.HEADER_SIZE and not self.busy and self.can_write.is_set():
            try:
                msg_type, size = proto.unpack_header(bytes(buf[: proto.HEADER_SIZE]))
            except proto.ProtoError as exc:
                self.reject(str(exc))
                return
            if len(buf) < proto.HEADER_SIZE + size:
                break
            body = bytes(buf[proto.HEADER_SIZE : proto.HEADER_SIZE + size])
            del buf[: proto.HEADER_SIZE + size]
            self.handle(msg_type, body)
        self.regulate_reading()

    def reject(self, why: str) -> None:
        self.node.counters["client_proto_errors"] += 1
        log.warning("closing connection from %s: %s", self.peer, why)
        self.buffer.clear()
        self.transport.close()

    def handle(self, msg_type: int, body: bytes) -> None:
        try:
            if msg_type == proto.TYPE_MSG:
                self.handle_msg(body)
                return
            if msg_type == proto.TYPE_INFO:
                pairs = [(line, self.node.info.answer(line)) for line in winfo.split_request(body)]
                self.transport.write(winfo.build_response(pairs))
                return
            if msg_type == proto.TYPE_ADMIN:
                if len(body) < ADMIN_HEADER_SIZE:
                    self.reject("short admin message")
                    return
                self.transport.write(ADMIN_REPLY)
                return
            if msg_type == proto.TYPE_COMPRESSED:
                msg_type, body = proto.decompress(body)
            self.handle_msg(body)
        except proto.ProtoError as exc:
            self.reject(str(exc))
        except Exception:
            log.exception("unexpected failure serving %s", self.peer)
            self.transport.write(wm.encode_frame(wm.Message(result_code=ResultCode.SERVER_ERROR)))

    def handle_msg(self, body: bytes) -> None:
        commit = self.node.group_commit
        # without commit-to-device stores no reply ever waits for a flush: skip the marks
        marks = commit.marks() if commit.stores else ()
        try:
            msg, end = wm.parse(body)
            if end != len(body):
                raise AerospikeError(ResultCode.PARAMETER, f"{len(body) - end} stray bytes after the AS_MSG")
            reply = self.node.transactions.handle(msg, body)
        except AerospikeError as exc:
            self.node.counters["client_bad_requests"] += 1
            log.debug("bad request from %s: %s", self.peer, exc)
            reply = wm.encode_header_only(exc.code)
        if isinstance(reply, bytes) and (not marks or commit.marks() == marks):
            self.transport.write(proto.frame(proto.TYPE_MSG, reply))
            return
        self.busy = True
        job = self.stream(reply) if isinstance(reply, Iterator) else self.deferred(reply, marks)
        asyncio.get_running_loop().create_task(job)

    async def deferred(self, reply: bytes | Coroutine[None, None, bytes], marks: tuple[int, ...]) -> None:
        """Answer once the reply is ready (replicas acked, proxy answered) and what the request
        wrote is on disk; later requests wait."""
        commit = self.node.group_commit
        try:
            body = reply if isinstance(reply, bytes) else await reply
            if commit.marks() != marks:
                await commit.barrier()  # covers the request's writes (and any made meanwhile)
        except Exception:
            log.exception("unexpected failure serving %s", self.peer)
            body = wm.encode_header_only(ResultCode.SERVER_ERROR)
        finally:
            self.busy = False
        if not self.transport.is_closing():
            self.transport.write(proto.frame(proto.TYPE_MSG, body))
            self.process()

    async def stream(self, chunks: Iterator[bytes]) -> None:
        """Write a multi-frame reply with back-pressure, then resume reading requests."""
        try:
            for chunk in chunks:
                if self.transport.is_closing():
                    return
                self.transport.write(proto.frame(proto.TYPE_MSG, chunk))
                await self.can_write.wait()
                await asyncio.sleep(0)  # let other connections run between chunks
        except AerospikeError as exc:
            self.transport.write(wm.encode_frame(wm.Message(result_code=exc.code, info3=wm.Info3.LAST)))
        except Exception:
            log.exception("scan failed for %s", self.peer)
            self.transport.write(wm.encode_frame(wm.Message(result_code=ResultCode.SERVER_ERROR,
                                                           info3=wm.Info3.LAST)))
        finally:
            self.busy = False
        self.process()
