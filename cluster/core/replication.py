"""Synchronous replication, master side: a write is done when every replica has acked it.

After applying a client write the master sends the whole record image (or its tombstone)
to every other node of the partition's replica list, immigrating replicas included, and
answers the client once all of them acked (as Aerospike's transaction/write.c and repl_write.c): `Replicated(tid, OK)` in the
outbox. Unacked replica writes are resent after `transaction-retry-ms` (service config,
1002 ms, read live; doubling), each time to the *current* replica list, so a write that
straddles a rebalance reaches the new replicas. A replica that is no longer one answers
CLUSTER_KEY_MISMATCH, which is not an ack: the resend goes to the current list.

A replica that answers with any other failure (it could not store the record: out of
space, no such namespace...) is not an ack either. The real CE server counts it as one
(`repl_write_handle_ack` marks the destination complete whatever the result, so the
client is told OK with fewer copies than promised); we do not lie: `Replicated(tid, code)`
carries that replica's result code, which the client gets instead of OK. The master's copy
stays, as after a TIMEOUT: the write is in doubt. The client's deadline is the owner's
business: it calls `abandon` and answers TIMEOUT.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from cluster.wire.result_codes import ResultCode

from .data_messages import ReplWrite, ReplWriteAck
from .effects import Outbox
from .migration import MigrationConfig
from .records import RecordImage


@dataclass(frozen=True, slots=True)
class Replicated:
    """A replicated write is over: OK once every replica acked, else a replica's failure."""

    tid: int
    result: int


@dataclass(eq=False)
class PendingWrite:
    namespace: str
    pid: int
    image: RecordImage
    waiting: set[int]
    resend_at: int
    retry_ms: int
    acked: set[int] = field(default_factory=set)


class Replication:
    def __init__(self, node_id: int, outbox: Outbox, config: MigrationConfig):
        self.node_id = node_id
        self.out = outbox
        self.config = config  # transaction-retry-ms, read live
        self.cluster_key = 0
        self.pending: dict[int, PendingWrite] = {}
        self._next_tid = 1

    def start(self, namespace: str, pid: int, image: RecordImage, targets: tuple[int, ...], now_ms: int) -> int | None:
        """Send the image to `targets`; the tid to wait for, or None when there is nobody to wait for."""
        targets_set = set(targets) - {self.node_id}
        if not targets_set:
            return None
        tid = self._next_tid
        self._next_tid += 1
        retry_ms = self.config.transaction_retry_ms
        self.pending[tid] = PendingWrite(namespace, pid, image, targets_set, now_ms + retry_ms, retry_ms)
        msg = ReplWrite(self.node_id, self.cluster_key, namespace, tid, image)
        for node in targets_set:
            self.out.fabric(node, msg)
        return tid

    def on_ack(self, msg: ReplWriteAck) -> None:
        write = self.pending.get(msg.tid)
        if write is None or msg.src not in write.waiting or msg.result == ResultCode.CLUSTER_KEY_MISMATCH:
            return
        if msg.result != ResultCode.OK:
            del self.pending[msg.tid]
            self.out.emit(Replicated(msg.tid, msg.result))
            return
        write.waiting.discard(msg.src)
        write.acked.add(msg.src)
        if not write.waiting:
            del self.pending[msg.tid]
            self.out.emit(Replicated(msg.tid, ResultCode.OK))

    def abandon(self, tid: int) -> None:
        self.pending.pop(tid, None)

    def retarget(self, targets_of: Callable[[str, int], tuple[int, ...]], now_ms: int) -> None:
        """After a rebalance: wait for the new replica lists; resend to nodes new in them."""
        for tid, write in list(self.pending.items()):
            targets = set(targets_of(write.namespace, write.pid)) - {self.node_id}
            new = targets - write.waiting - write.acked
            write.waiting = (write.waiting & targets) | new
            if not write.waiting:
                del self.pending[tid]
                self.out.emit(Replicated(tid, ResultCode.OK))
                continue
            msg = ReplWrite(self.node_id, self.cluster_key, write.namespace, tid, write.image)
            for node in new:
                self.out.fabric(node, msg)

    def tick(self, now_ms: int) -> int | None:
        """Resend what is overdue; returns the next resend time (None: nothing pending)."""
        wake = None
        for tid, write in self.pending.items():
            if now_ms >= write.resend_at:
                write.retry_ms *= 2
                write.resend_at = now_ms + write.retry_ms
                msg = ReplWrite(self.node_id, self.cluster_key, write.namespace, tid, write.image)
                for node in write.waiting:
                    self.out.fabric(node, msg)
            wake = write.resend_at if wake is None else min(wake, write.resend_at)
        return wake
