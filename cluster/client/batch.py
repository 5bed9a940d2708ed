"""batch_read: keys grouped by node, one batch-index command (field 41) per node.

A node that gets a single key is sent a plain read instead, as the official client does.
Replies come back per row in any order, the row index in transaction_ttl. Rows whose
node failed or answered a retryable code are regrouped with the current partition map
and retried within the batch policy.
"""

from cluster.wire import message as wm
from cluster.wire.batch import encode_read_rows
from cluster.wire.message import FieldType, Info1, Message, Op, OpType
from cluster.wire.particles import ParticleType
from cluster.wire.result_codes import AerospikeError

from .command import Deadline, frame_request, key_fields, read_stream, roundtrip
from .errors import RETRYABLE, ClientError, error_for, is_retryable
from .keys import Key
from .policies import Policy


def read_shape(bins: list[str] | None) -> tuple[int, list[Op]]:
    """info1 and ops for reading all bins (None), no bins ([]) or the named bins."""
    if bins is None:
        return Info1.READ | Info1.GET_ALL, []
    if not bins:
        return Info1.READ | Info1.NOBINDATA, []
    return Info1.READ, [Op(OpType.READ, ParticleType.NULL, name) for name in bins]


def read_message(key: Key, bins: list[str] | None, policy: Policy) -> Message:
    info1, ops = read_shape(bins)
    if policy.compress:
        info1 |= Info1.COMPRESS_RESPONSE
    return Message(info1=info1, fields=key_fields(key, policy), ops=ops)


def batch_read(cluster, keys: list[Key], bins: list[str] | None, policy: Policy) -> list[Message]:
    """One reply per key, in key order; result codes are left to the caller."""
    replies: list[Message | None] = [None] * len(keys)
    pending = list(range(len(keys)))
    deadline = Deadline(policy)
    sequence = policy.replica == "sequence"
    attempt = 0
    while True:
        timeout = deadline.attempt_timeout()
        last_error = None
        groups: dict = {}
        for index in pending:
            key = keys[index]
            try:
                node = cluster.node_for(key.namespace, key.partition_id, attempt, sequence)
            except AerospikeError as exc:
                if not is_retryable(exc):
                    raise
                last_error = exc
                continue
            groups.setdefault(node, []).append(index)
        for node, indexes in groups.items():
            try:
                _read_from_node(node, keys, indexes, bins, policy, timeout, replies)
            except AerospikeError as exc:
                if not is_retryable(exc):
                    raise
                last_error = exc
        pending = [i for i in pending if replies[i] is None or replies[i].result_code in RETRYABLE]
        if not pending:
            return replies
        if attempt >= policy.max_retries:
            code = last_error.code if last_error else replies[pending[0]].result_code
            raise error_for(code, f"{len(pending)} of {len(keys)} batch keys failed")
        attempt += 1
        deadline.pause()


def _read_from_node(node, keys: list[Key], indexes: list[int], bins, policy: Policy,
                    timeout: float | None, replies: list) -> None:
    if len(indexes) == 1:
        index = indexes[0]
        replies[index] = roundtrip(node, frame_request(read_message(keys[index], bins, policy), policy), timeout)
        return
    info1, ops = read_shape(bins)
    rows = [(i, keys[i].digest, info1, {FieldType.NAMESPACE: keys[i].namespace.encode(),
                                        FieldType.SET: keys[i].set_name.encode()}, ops)
            for i in indexes]
    flags = Info1.BATCH | (Info1.COMPRESS_RESPONSE if policy.compress else 0)
    request = frame_request(wm.Message(info1=flags, fields={FieldType.BATCH_INDEX: encode_read_rows(rows)}), policy)
    asked = set(indexes)
    with node.connection() as conn:
        conn.set_timeout(timeout)
        conn.send(request)
        for msg in read_stream(conn):
            if msg.transaction_ttl not in asked:
                raise ClientError(f"batch reply for row {msg.transaction_ttl} not asked")
            replies[msg.transaction_ttl] = msg
