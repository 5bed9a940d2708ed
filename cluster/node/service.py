"""The client-facing service port: proto framing, dispatch by message type, error policy.

One `ServiceProtocol` per client connection. Requests on a connection are answered strictly
in order (clients may pipeline): while a reply is streaming (scan) or deferred (a write
waiting for its replicas, a proxied request), later requests wait in the buffer. A frame whose header is unacceptable (bad version or
type, absurd length) closes the connection; a well-framed but malformed AS_MSG gets a
PARAMETER (4) reply and the connection stays usable. Nothing a client sends can stop the
node: every handler failure is logged and answered.
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
# configured with a user still connect (spec §7.3).
ADMIN_REPLY = proto.frame(proto.TYPE_ADMIN, bytes((0, ResultCode.SECURITY_NOT_ENABLED)) + bytes(14))
HIGH_WATER = 1 << 20


class ServiceProtocol(asyncio.Protocol):
    def __init__(self, node: "Node"):
        self.node = node
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.streaming = False  # a scan reply is being written; later requests wait
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.peer = "?"

    # -- asyncio callbacks ----------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.node.connection_opened()

    def connection_lost(self, exc):
        self.node.connection_closed()
        self.can_write.set()

    def pause_writing(self):
        self.can_write.clear()

    def resume_writing(self):
        self.can_write.set()

    def data_received(self, data: bytes):
        if not self.buffer and not self.streaming and len(data) >= proto.HEADER_SIZE:
            # The common case, one whole request per read: handled without going through
            # the buffer. Anything else (partial, pipelined, refused) takes the buffer path.
            try:
                msg_type, size = proto.unpack_header(data[: proto.HEADER_SIZE])
            except proto.ProtoError:
                pass
            else:
                if len(data) == proto.HEADER_SIZE + size:
                    self.handle(msg_type, bytes(data[proto.HEADER_SIZE :]))
                    return
        self.buffer += data
        if not self.streaming:
            self.process()

    # -- request loop ---------------------------------------------------------------

    def process(self) -> None:
        buf = self.buffer
        while len(buf) >= proto.HEADER_SIZE and not self.streaming:
            try:
                msg_type, size = proto.unpack_header(bytes(buf[: proto.HEADER_SIZE]))
            except proto.ProtoError as exc:
                self.reject(str(exc))
                return
            if len(buf) < proto.HEADER_SIZE + size:
                return
            body = bytes(buf[proto.HEADER_SIZE : proto.HEADER_SIZE + size])
            del buf[: proto.HEADER_SIZE + size]
            self.handle(msg_type, body)

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
        try:
            msg, end = wm.parse(body)
            if end != len(body):
                raise AerospikeError(ResultCode.PARAMETER, f"{len(body) - end} stray bytes after the AS_MSG")
            reply = self.node.transactions.handle(msg, body)
        except AerospikeError as exc:
            self.node.counters["client_bad_requests"] += 1
            log.debug("bad request from %s: %s", self.peer, exc)
            reply = wm.encode_header_only(exc.code)
        if isinstance(reply, bytes):
            self.transport.write(proto.frame(proto.TYPE_MSG, reply))
            return
        self.streaming = True
        job = self.stream(reply) if isinstance(reply, Iterator) else self.deferred(reply)
        asyncio.get_running_loop().create_task(job)

    async def deferred(self, reply: Coroutine[None, None, bytes]) -> None:
        """Answer once the reply is ready (replicas acked, proxy answered); later requests wait."""
        try:
            body = await reply
        except Exception:
            log.exception("unexpected failure serving %s", self.peer)
            body = wm.encode_header_only(ResultCode.SERVER_ERROR)
        finally:
            self.streaming = False
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
            self.streaming = False
        self.process()
