"""Partition scans: each node is asked for the partitions it masters (field 11, PID_ARRAY).

The request sets info3 PARTITION_DONE, so the node reports each partition as finished
(generation = partition id, result 0) or unavailable (non-zero). Partitions not reported
done are asked again in the next round, resuming after the last digest received
(field 12, DIGEST_ARRAY) so no record is delivered twice.
"""

import random
import struct

from cluster.wire.digest import N_PARTITIONS, partition_id
from cluster.wire.message import FieldType, Info1, Info3, Message, Op, OpType
from cluster.wire.particles import ParticleType, decode
from cluster.wire.result_codes import AerospikeError

from .command import Deadline, bins_of, frame_request, meta_of, read_stream
from .errors import ClusterError, error_for, is_retryable
from .policies import Policy


class _Stopped(Exception):
    """The callback asked to stop; raised inside the connection so the socket is discarded."""


class Scan:
    def __init__(self, cluster, namespace: str, set_name: str | None, policy: Policy):
        self.cluster = cluster
        self.namespace = namespace
        self.set_name = set_name or ""
        self.policy = policy
        self.bins: list[str] | None = None

    def select(self, *bins: str) -> "Scan":
        self.bins = list(bins)
        return self

    def results(self) -> list[tuple]:
        out: list[tuple] = []
        self.foreach(out.append)
        return out

    def foreach(self, callback) -> None:
        """Call callback((key, meta, bins)) per record; a callback returning False stops the scan."""
        done: set[int] = set()
        resume_after: dict[int, bytes] = {}
        deadline = Deadline(self.policy)
        attempt = 0
        while True:
            timeout = deadline.attempt_timeout()
            last_error = None
            pending = [pid for pid in range(N_PARTITIONS) if pid not in done]
            owners = _group_by_master(self.cluster.require_namespace(self.namespace), self.namespace, pending)
            for node, pids in owners.items():
                try:
                    self._scan_node(node, pids, resume_after, done, callback, timeout)
                except _Stopped:
                    return
                except AerospikeError as exc:
                    if not is_retryable(exc):
                        raise
                    last_error = exc
            if len(done) == N_PARTITIONS:
                return
            if attempt >= self.policy.max_retries:
                if last_error is not None:
                    raise last_error
                raise ClusterError(f"{N_PARTITIONS - len(done)} partitions of {self.namespace} not scanned")
            attempt += 1
            deadline.pause()

    def _request(self, pids: list[int], resume_after: dict[int, bytes]) -> Message:
        fields = {FieldType.NAMESPACE: self.namespace.encode()}
        if self.set_name:
            fields[FieldType.SET] = self.set_name.encode()
        fields[FieldType.SOCKET_TIMEOUT] = struct.pack(">I", self.policy.socket_timeout)
        fields[FieldType.TASK_ID] = struct.pack(">Q", random.getrandbits(64))
        fresh = [pid for pid in pids if pid not in resume_after]
        if fresh:
            fields[FieldType.PID_ARRAY] = struct.pack(f"<{len(fresh)}H", *fresh)
        resumed = [resume_after[pid] for pid in pids if pid in resume_after]
        if resumed:
            fields[FieldType.DIGEST_ARRAY] = b"".join(resumed)
        info1 = Info1.READ
        ops: list[Op] = []
        if self.bins is not None:
            info1 |= 0 if self.bins else Info1.NOBINDATA
            ops = [Op(OpType.READ, ParticleType.NULL, name) for name in self.bins]
        # record_ttl 0xFFFFFFFF: scans never touch the records they read.
        return Message(info1=info1, info3=Info3.PARTITION_DONE, record_ttl=0xFFFFFFFF, fields=fields, ops=ops)

    def _scan_node(self, node, pids, resume_after, done, callback, timeout) -> None:
        asked = set(pids)
        request = frame_request(self._request(pids, resume_after), self.policy)
        with node.connection() as conn:
            conn.set_timeout(timeout)
            conn.send(request)
            for msg in read_stream(conn):
                if msg.info3 & Info3.PARTITION_DONE:
                    if msg.result_code == 0 and msg.generation in asked:
                        done.add(msg.generation)
                    continue
                if msg.result_code:
                    raise error_for(msg.result_code, f"{node.host}:{node.port} during scan")
                digest = msg.fields[FieldType.DIGEST]
                resume_after[partition_id(digest)] = digest
                if callback(self._record(msg, digest)) is False:
                    raise _Stopped

    def _record(self, msg: Message, digest: bytes) -> tuple:
        set_name = msg.fields.get(FieldType.SET, b"").decode() or None
        raw_key = msg.fields.get(FieldType.KEY)
        user_key = decode(raw_key[0], raw_key[1:]) if raw_key else None
        return (self.namespace, set_name, user_key, bytearray(digest)), meta_of(msg), bins_of(msg)


def _group_by_master(pmap, namespace: str, pids: list[int]) -> dict:
    """{node: [pid, ...]}; partitions with no known master wait for the next round."""
    owners: dict = {}
    for pid in pids:
        node = pmap.node(namespace, pid, 0)
        if node is not None:
            owners.setdefault(node, []).append(pid)
    return owners
