"""Duplicate resolution (after Aerospike's transaction/duplicate_resolve.c), sans I/O: before a write, fetch the record's other copies.

While a partition's duplicates (a healed split, a restarted node) are not merged in yet,
its working master asks each duplicate holder for its copy of the record (`DupRequest`,
resent every `transaction-retry-ms` until answered), merges each answer into its own store
by the namespace's conflict-resolution policy, and only then applies the write, so that
the write starts from the best copy rather than the local one. When every holder has
answered: `DupResolved(tid, True)`; at the deadline: `DupResolved(tid, False)` — the write
must not guess, the client gets TIMEOUT (9).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from cluster.storage.engine import StorageEngine

from .data_messages import DupRequest, DupResponse
from .effects import Outbox
from .migration import MigrationConfig
from .records import GENERATION, apply_if_better, image_of


@dataclass(frozen=True, slots=True)
class DupResolved:
    tid: int
    ok: bool


@dataclass(eq=False)
class _Pending:
    namespace: str
    digest: bytes
    waiting: list[int]  # holders yet to answer, in a stable order (they are resent to)
    deadline_ms: int
    resend_at: int
    images: list = field(default_factory=list)


@dataclass
class DupResStats:
    asked: int = 0  # dup_res_ask
    answered_with_copy: int = 0  # dup_res_respond_read
    answered_without: int = 0  # dup_res_respond_no_read


class DuplicateResolution:
    def __init__(self, node_id: int, outbox: Outbox, stores: Mapping[str, StorageEngine], config: MigrationConfig):
        self.node_id = node_id
        self.out = outbox
        self.stores = stores
        self.config = config  # conflict-resolution policy and transaction-retry-ms, read live
        self.stats = DupResStats()
        self.pending: dict[int, _Pending] = {}
        self._next_tid = 1

    def start(self, namespace: str, digest: bytes, holders: tuple[int, ...], deadline_ms: int, now_ms: int) -> int:
        tid = self._next_tid
        self._next_tid += 1
        self.pending[tid] = _Pending(namespace, digest, list(holders), deadline_ms,
                                     now_ms + self.config.transaction_retry_ms)
        self.stats.asked += len(holders)
        self._ask(tid, holders)
        return tid

    def _ask(self, tid: int, holders) -> None:
        p = self.pending[tid]
        for node in holders:
            self.out.fabric(node, DupRequest(self.node_id, tid, p.namespace, p.digest))

    def on_request(self, msg: DupRequest, now_s: int) -> None:
        store = self.stores.get(msg.namespace)
        image = image_of(store, msg.digest, now_s) if store is not None and len(msg.digest) == 20 else None
        if image is None:
            self.stats.answered_without += 1
        else:
            self.stats.answered_with_copy += 1
        self.out.fabric(msg.src, DupResponse(self.node_id, msg.tid, (image,) if image else ()))

    def on_response(self, msg: DupResponse, now_s: int) -> None:
        p = self.pending.get(msg.tid)
        if p is None or msg.src not in p.waiting:
            return
        p.waiting.remove(msg.src)
        p.images.extend(msg.images)
        if p.waiting:
            return
        del self.pending[msg.tid]
        policy = self.config.policy.get(p.namespace, GENERATION)
        for image in p.images:
            apply_if_better(self.stores[p.namespace], image, policy, now_s)
        self.out.emit(DupResolved(msg.tid, True))

    def tick(self, now_ms: int) -> int | None:
        """Give up on what is past its deadline, resend what is overdue; the next wake-up."""
        wake = None
        for tid, p in list(self.pending.items()):
            if p.deadline_ms <= now_ms:
                del self.pending[tid]
                self.out.emit(DupResolved(tid, False))
                continue
            if now_ms >= p.resend_at:
                p.resend_at = now_ms + self.config.transaction_retry_ms
                self._ask(tid, p.waiting)
            due = min(p.deadline_ms, p.resend_at)
            wake = due if wake is None else min(wake, due)
        return wake
