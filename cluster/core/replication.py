"""Synchronous replication, master side: a write is done when every replica has acked it.

After applying a client write the master sends the whole record image (or its tombstone)
to every other node of the partition's replica list, immigrating replicas included, and
answers the client once all of them acked (spec §7.2). Unacked replica writes are resent
after `transaction-retry-ms` (1002 ms, doubling), each time to the *current* replica list,
so a write that straddles a rebalance reaches the new replicas. A replica that is no
longer one answers CLUSTER_KEY_MISMATCH, which is not an ack. The client's deadline is the
owner's business: it calls `abandon` and answers TIMEOUT; the master's copy stays.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from cluster.wire.result_codes import ResultCode

from .data_messages import ReplWrite, ReplWriteAck
from .effects import Outbox
from .records import RecordImage

RETRY_MS = 1002


@dataclass(eq=False)
class PendingWrite:
    namespace: str
    pid: int
    image: RecordImage
    waiting: set[int]
    resend_at: int
    retry_ms: int = RETRY_MS
    acked: set[int] = field(default_factory=set)


class Replication:
    def __init__(self, node_id: int, outbox: Outbox, on_complete: Callable[[int], None]):
        self.node_id = node_id
        self.out = outbox
        self.on_complete = on_complete  # tid -> None
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
        self.pending[tid] = PendingWrite(namespace, pid, image, targets_set, now_ms + RETRY_MS)
        msg = ReplWrite(self.node_id, self.cluster_key, namespace, tid, image)
        for node in targets_set:
            self.out.fabric(node, msg)
        return tid

    def on_ack(self, msg: ReplWriteAck) -> None:
        write = self.pending.get(msg.tid)
        if write is None or msg.result == ResultCode.CLUSTER_KEY_MISMATCH:
            return
        write.waiting.discard(msg.src)
        write.acked.add(msg.src)
        if not write.waiting:
            del self.pending[msg.tid]
            self.on_complete(msg.tid)

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
                self.on_complete(tid)
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
