"""Proxying (after Aerospike's transaction/proxy.c), sans I/O: a client request forwarded to the node that serves it.

The proxying node sends the client's AS_MSG in a `ProxyRequest` carrying the hop count and
the time the client has left; the receiving node executes it against that deadline (its
replication wait, duplicate resolution and any further hop included), never a fresh one,
and answers with a `ProxyResponse`. A request already forwarded `MAX_HOPS` times is not
forwarded again: the caller answers PARTITION_UNAVAILABLE (11) and the client retries
with a fresher map. At the deadline the proxying node answers TIMEOUT (9) itself; a late
response is dropped.

What the runtime must do comes out as events in the outbox: `ServeProxied` (execute this
body, reply with `respond`), `ProxyDone` (relay this reply to the client).
"""

from dataclasses import dataclass

from cluster.wire.message import encode_header_only
from cluster.wire.result_codes import ResultCode

from .data_messages import ProxyRequest, ProxyResponse
from .effects import Outbox

MAX_HOPS = 3
TIMEOUT_REPLY = encode_header_only(ResultCode.TIMEOUT)


@dataclass(frozen=True, slots=True)
class ServeProxied:
    src: int
    tid: int
    hops: int
    deadline_ms: int  # on this node's clock
    body: bytes


@dataclass(frozen=True, slots=True)
class ProxyDone:
    tid: int
    reply: bytes
    timed_out: bool


class Proxies:
    def __init__(self, node_id: int, outbox: Outbox):
        self.node_id = node_id
        self.out = outbox
        self.pending: dict[int, int] = {}  # tid -> deadline (ms)
        self._next_tid = 1

    def forward(self, node: int, body: bytes, hops: int, deadline_ms: int, now_ms: int) -> int | None:
        """Send the request on; the tid its `ProxyDone` will carry, or None if its hops are spent."""
        if hops >= MAX_HOPS:
            return None
        tid = self._next_tid
        self._next_tid += 1
        self.pending[tid] = deadline_ms
        self.out.fabric(node, ProxyRequest(self.node_id, tid, hops + 1, max(0, deadline_ms - now_ms), body))
        return tid

    def on_request(self, msg: ProxyRequest, now_ms: int) -> None:
        self.out.emit(ServeProxied(msg.src, msg.tid, msg.hops, now_ms + msg.timeout_ms, msg.body))

    def respond(self, dst: int, tid: int, reply: bytes) -> None:
        self.out.fabric(dst, ProxyResponse(self.node_id, tid, reply))

    def on_response(self, msg: ProxyResponse) -> None:
        if self.pending.pop(msg.tid, None) is not None:
            self.out.emit(ProxyDone(msg.tid, msg.reply, False))

    def tick(self, now_ms: int) -> int | None:
        """Time out what is past its deadline; the next deadline (None: nothing pending)."""
        for tid in [tid for tid, deadline in self.pending.items() if deadline <= now_ms]:
            del self.pending[tid]
            self.out.emit(ProxyDone(tid, TIMEOUT_REPLY, True))
        return min(self.pending.values(), default=None)
