"""Sending AS_MSG commands: framing, the retry loop, multi-message replies, reply decoding.

Retry rules (as the official clients'): result codes 9, 11, 18 and client-side socket/routing failures
are retried while `max_retries` and `total_timeout` allow. Reads move to the next
replica column on each retry when the policy replica is "sequence"; writes always go
to the master.
"""

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from cluster.wire import message as wm
from cluster.wire import particles, proto
from cluster.wire.message import FieldType, Info3, Message
from cluster.wire.result_codes import AerospikeError

from .errors import RETRYABLE, ClientError, Timeout, error_for, is_retryable
from .keys import Key
from .node import Node
from .policies import Policy

T = TypeVar("T")

COMPRESS_THRESHOLD = 128  # the official clients leave smaller commands uncompressed
CITRUSLEAF_EPOCH = 1262304000  # 2010-01-01 UTC: void times count seconds from here
NEVER_EXPIRES = 0xFFFFFFFF


# -- building requests -------------------------------------------------------------------------

def key_fields(key: Key, policy: Policy) -> dict[int, bytes]:
    """Namespace, set (always sent, maybe empty), user key if policy key=send, digest."""
    fields = {FieldType.NAMESPACE: key.namespace.encode(), FieldType.SET: key.set_name.encode()}
    if policy.key == "send" and key.user_key is not None:
        fields[FieldType.KEY] = key.key_field()
    fields[FieldType.DIGEST] = key.digest
    return fields


def frame_request(msg: Message, policy: Policy) -> bytes:
    msg.transaction_ttl = policy.server_timeout
    body = wm.encode(msg)
    if policy.compress and len(body) + proto.HEADER_SIZE > COMPRESS_THRESHOLD:
        return proto.compress(proto.TYPE_MSG, body)
    return proto.frame(proto.TYPE_MSG, body)


# -- decoding replies --------------------------------------------------------------------------

def ttl_from_void_time(void_time: int, now: float | None = None) -> int:
    """Seconds left, as the official client reports it: never-expiring records say 0xFFFFFFFF."""
    if void_time == 0:
        return NEVER_EXPIRES
    since_epoch = int(time.time() if now is None else now) - CITRUSLEAF_EPOCH
    return void_time - since_epoch if void_time > since_epoch else 1


def meta_of(msg: Message) -> dict:
    return {"gen": msg.generation, "ttl": ttl_from_void_time(msg.record_ttl)}


def bins_of(msg: Message) -> dict:
    """Reply ops folded into a dict; a bin read twice keeps its last value, as the official client does."""
    return {op.name: particles.decode(op.ptype, op.value) for op in msg.ops}


def check(msg: Message, node: Node) -> Message:
    if msg.result_code:
        raise error_for(msg.result_code, f"{node.host}:{node.port}")
    return msg


# -- the retry loop ----------------------------------------------------------------------------

class Deadline:
    """The total_timeout budget of one command across its attempts."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.expires = time.monotonic() + policy.total_timeout / 1000 if policy.total_timeout else None

    def attempt_timeout(self) -> float | None:
        """Socket timeout (s) for the next attempt; raises Timeout when the budget is spent."""
        socket_timeout = self.policy.socket_timeout / 1000 if self.policy.socket_timeout else None
        if self.expires is None:
            return socket_timeout
        remaining = self.expires - time.monotonic()
        if remaining <= 0:
            raise Timeout(f"client timeout after {self.policy.total_timeout} ms")
        return remaining if socket_timeout is None else min(remaining, socket_timeout)

    def pause(self) -> None:
        if self.policy.sleep_between_retries:
            delay = self.policy.sleep_between_retries / 1000
            if self.expires is not None:
                delay = min(delay, max(0.0, self.expires - time.monotonic()))
            time.sleep(delay)


def with_retries(policy: Policy, attempt: Callable[[int, float | None], T]) -> T:
    """Call attempt(n, socket timeout) until it returns or fails in a way not worth retrying."""
    deadline = Deadline(policy)
    n = 0
    while True:
        timeout = deadline.attempt_timeout()
        try:
            return attempt(n, timeout)
        except AerospikeError as exc:
            if not is_retryable(exc) or n >= policy.max_retries:
                raise
        n += 1
        deadline.pause()


# -- one request, one reply --------------------------------------------------------------------

def roundtrip(node: Node, request: bytes, timeout: float | None) -> Message:
    with node.connection() as conn:
        conn.set_timeout(timeout)
        conn.send(request)
        msg_type, body = conn.read_frame()
    if msg_type != proto.TYPE_MSG or not body:
        raise ClientError(f"unexpected reply (type {msg_type}, {len(body)} bytes)")
    return parse_reply(body)[0]


def parse_reply(body: bytes, pos: int = 0) -> tuple[Message, int]:
    """wm.parse, with a malformed reply reported as the client error it is (not code 4)."""
    try:
        return wm.parse(body, pos)
    except AerospikeError as exc:
        raise ClientError(f"malformed reply: {exc.message}") from None


def execute(cluster, key: Key, msg: Message, policy: Policy, write: bool) -> tuple[Message, Node]:
    """Send a single-record command; return the reply (any non-retryable result) and its node."""
    request = frame_request(msg, policy)
    sequence = not write and policy.replica == "sequence"

    def attempt(n: int, timeout: float | None) -> tuple[Message, Node]:
        node = cluster.node_for(key.namespace, key.partition_id, n, sequence)
        reply = roundtrip(node, request, timeout)
        if reply.result_code in RETRYABLE:
            raise error_for(reply.result_code, f"{node.host}:{node.port}")
        return reply, node

    return with_retries(policy, attempt)


# -- multi-message replies (batch, scan) -------------------------------------------------------

def read_stream(conn) -> Iterator[Message]:
    """Every AS_MSG of a multi-frame reply up to, not including, the one marked LAST.

    A LAST message with a non-zero result fails the whole command, as in the official client.
    """
    while True:
        msg_type, body = conn.read_frame()
        if msg_type != proto.TYPE_MSG:
            raise ClientError(f"unexpected proto type {msg_type} in a stream")
        pos = 0
        while pos < len(body):
            msg, pos = parse_reply(body, pos)
            if msg.info3 & Info3.LAST:
                if msg.result_code:
                    raise error_for(msg.result_code, conn.where())
                return
            yield msg
