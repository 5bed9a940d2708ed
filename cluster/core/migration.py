"""Partition migration (rebalance) between nodes: the protocol of Aerospike's fabric/migrate.c, sans I/O.

An *emigration* sends one partition of one namespace to one node:

    START (retransmitted every second until acked; EAGAIN → retry a second later)
    RECORDS batches (a window of them in flight, each retransmitted if unacked for
            migrate-retransmit-ms; the receiver applies them by conflict resolution)
    DONE (retransmitted every second until acked)

An *immigration* is the receiving side. It is valid only if the rebalance told this node to
expect that partition from that sender (START gets FAIL otherwise), and is refused with
EAGAIN while the cluster key differs or `migrate-max-num-incoming` immigrations are active.
Every message carries the cluster key; anything from another cluster is ignored, and a
rebalance abandons every migration in flight (the next plan starts over from versions).

Throttles, read on every pump so `set-config` acts at once: `threads` emigrations run at a
time (0 stops outgoing migration, including the ones under way); after each record an
emigration waits `sleep_us` microseconds (spread over a batch: a batch of n records is
followed by n × sleep_us).

The engine reads and writes records through the storage engines it is given, and tells
its owner about completions through two callbacks; it never looks at the clock itself.
"""

import heapq
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cluster.storage.engine import StorageEngine, StorageError

from .data_messages import (
    START_EAGAIN,
    START_FAIL,
    START_OK,
    MigrateDone,
    MigrateDoneAck,
    MigrateRecords,
    MigrateRecordsAck,
    MigrateStart,
    MigrateStartAck,
)
from .effects import Outbox
from .rebalance import ACTING_MASTER, CONTINGENT, DUPLICATE
from .records import apply_if_better, image_of

CONTROL_RETRANSMIT_MS = 1000  # START and DONE, as the real server
EAGAIN_RETRY_MS = 1000
BATCH_RECORDS = 128
BATCH_BYTES = 256 * 1024
WINDOW = 4  # record batches in flight per emigration
KIND_ORDER = {ACTING_MASTER: 0, DUPLICATE: 0, CONTINGENT: 1}  # "lead" migrations first

QUEUED, STARTING, SENDING, DONE_SENT, FINISHED = "queued", "starting", "sending", "done-sent", "finished"


RETRANSMIT_MS = 5000  # migrate-retransmit-ms's default
TRANSACTION_RETRY_MS = 1002  # transaction-retry-ms's default


@dataclass
class MigrationConfig:
    """The data plane's live settings: the runtime updates them, the protocols read them."""

    threads: int = 1
    max_incoming: int = 4
    sleep_us: Mapping[str, int] = field(default_factory=dict)  # per namespace, default 1
    retransmit_ms: Mapping[str, int] = field(default_factory=dict)  # migrate-retransmit-ms per namespace
    transaction_retry_ms: int = TRANSACTION_RETRY_MS  # replica-write and duplicate-resolution resends
    policy: Mapping[str, str] = field(default_factory=dict)  # conflict-resolution-policy per namespace


@dataclass(eq=False)
class Emigration:
    emig_id: int
    namespace: str
    pid: int
    dst: int
    kind: str
    size: int  # records when queued, to send small partitions first
    state: str = QUEUED
    retry_at: int = 0
    sent_at: int = 0  # of the last START or DONE
    digests: list[bytes] = field(default_factory=list)
    cursor: int = 0
    next_seq: int = 0
    unacked: dict[int, tuple[int, MigrateRecords]] = field(default_factory=dict)
    next_send_at: int = 0
    sleep_owed_us: int = 0


@dataclass(eq=False)
class Immigration:
    src: int
    emig_id: int
    namespace: str
    pid: int
    done: bool = False


@dataclass
class MigrationStats:
    records_transmitted: int = 0
    records_received: int = 0
    records_skipped: int = 0  # incoming copies that lost conflict resolution
    record_retransmits: int = 0
    tx_imbalance: int = 0  # START refused as invalid
    tx_initial: int = 0
    rx_initial: int = 0


class Migrations:
    def __init__(self, node_id: int, outbox: Outbox, stores: Mapping[str, StorageEngine], config: MigrationConfig,
                 expects: Callable[[str, int, int], bool],
                 on_emigrated: Callable[[Emigration], None],
                 on_immigrated: Callable[[str, int, int], None]):
        self.node_id = node_id
        self.out = outbox
        self.stores = stores
        self.config = config
        self.expects = expects  # (namespace, pid, src) -> is an immigration from src expected?
        self.on_emigrated = on_emigrated
        self.on_immigrated = on_immigrated
        self.cluster_key = 0
        self.allowed = False
        self.stats = MigrationStats()
        self._queue: list[tuple[int, int, int, Emigration]] = []  # (kind order, size, id, emigration)
        self._active: dict[int, Emigration] = {}
        self._delayed: list[Emigration] = []  # EAGAIN'd, waiting for retry_at
        # migrate-sleep follows a record even when it was its partition's last, as a real
        # emigration thread sleeps before it moves on: a finished emigration leaves its
        # next-send time to the next one started
        self._sleep_until: list[int] = []
        self._immigrations: dict[tuple[int, int], Immigration] = {}
        self._rx_active = 0  # immigrations started and not done
        self._next_id = 1

    # -- plan ------------------------------------------------------------------------

    def reset(self, cluster_key: int) -> None:
        """A new cluster: abandon everything in flight; `allow` once the new plan is in."""
        self.cluster_key = cluster_key
        self.allowed = False
        self._queue, self._active, self._delayed, self._immigrations = [], {}, [], {}
        self._sleep_until = []
        self._rx_active = 0

    def allow(self) -> None:
        self.allowed = True

    def emigrate(self, namespace: str, pid: int, dst: int, kind: str) -> None:
        em = Emigration(self._next_id, namespace, pid, dst, kind, self.stores[namespace].partition_count(pid))
        self._next_id += 1
        self.stats.tx_initial += 1
        heapq.heappush(self._queue, (KIND_ORDER[kind], em.size, em.emig_id, em))

    @property
    def tx_remaining(self) -> int:
        return len(self._queue) + len(self._active) + len(self._delayed)

    def tx_remaining_in(self, namespace: str) -> int:
        ems = [e for *_, e in self._queue] + list(self._active.values()) + self._delayed
        return sum(e.namespace == namespace for e in ems)

    @property
    def rx_active(self) -> int:
        return self._rx_active

    # -- sending -----------------------------------------------------------------------

    def pump(self, now_ms: int, now_s: int) -> int | None:
        """Send whatever is due; returns when to pump again at the latest (None: idle)."""
        if not self.allowed:
            return None
        threads = self.config.threads
        if self._delayed:
            due = [e for e in self._delayed if e.retry_at <= now_ms]
            for em in due:
                self._delayed.remove(em)
                heapq.heappush(self._queue, (KIND_ORDER[em.kind], em.size, em.emig_id, em))
        while self._queue and len(self._active) < threads:
            em = heapq.heappop(self._queue)[-1]
            em.state = STARTING
            if self._sleep_until:  # the sleep owed by the "thread" that ran the last partition
                em.next_send_at = heapq.heappop(self._sleep_until)
            self._active[em.emig_id] = em
            self._send_start(em, now_ms)
        wake = [e.retry_at for e in self._delayed]
        if threads == 0:
            return min(wake, default=None)
        for em in list(self._active.values()):
            if em.state in (STARTING, DONE_SENT):
                if now_ms - em.sent_at >= CONTROL_RETRANSMIT_MS:
                    (self._send_start if em.state == STARTING else self._send_done)(em, now_ms)
                wake.append(em.sent_at + CONTROL_RETRANSMIT_MS)
            elif em.state == SENDING:
                wake.append(self._send_records(em, now_ms, now_s))
        return min(wake, default=None)

    def _send_start(self, em: Emigration, now_ms: int) -> None:
        em.sent_at = now_ms
        self.out.fabric(em.dst, MigrateStart(self.node_id, self.cluster_key, em.emig_id, em.namespace, em.pid,
                                             em.kind))

    def _send_done(self, em: Emigration, now_ms: int) -> None:
        em.state, em.sent_at = DONE_SENT, now_ms
        self.out.fabric(em.dst, MigrateDone(self.node_id, self.cluster_key, em.emig_id))

    def _send_records(self, em: Emigration, now_ms: int, now_s: int) -> int:
        retransmit_ms = self.config.retransmit_ms.get(em.namespace, RETRANSMIT_MS)
        for seq, (sent, msg) in list(em.unacked.items()):
            if now_ms - sent >= retransmit_ms:
                em.unacked[seq] = (now_ms, msg)
                self.stats.record_retransmits += len(msg.records)
                self.out.fabric(em.dst, msg)
        store = self.stores[em.namespace]
        sleep_us = self.config.sleep_us.get(em.namespace, 1)
        while len(em.unacked) < WINDOW and em.cursor < len(em.digests) and now_ms >= em.next_send_at:
            batch, size = [], 0
            while em.cursor < len(em.digests) and len(batch) < BATCH_RECORDS and size < BATCH_BYTES:
                image = image_of(store, em.digests[em.cursor], now_s)
                em.cursor += 1
                if image is not None:  # expired or dropped since the snapshot
                    batch.append(image)
                    size += len(image.payload) + 64
            if batch:
                msg = MigrateRecords(self.node_id, self.cluster_key, em.emig_id, em.next_seq, tuple(batch))
                em.unacked[em.next_seq] = (now_ms, msg)
                em.next_seq += 1
                self.stats.records_transmitted += len(batch)
                self.out.fabric(em.dst, msg)
            if sleep_us:  # owed in µs, slept in whole ms: the remainder carries to the next batch
                em.sleep_owed_us += len(batch) * sleep_us
                em.next_send_at = now_ms + em.sleep_owed_us // 1000
                em.sleep_owed_us %= 1000
        if em.cursor >= len(em.digests) and not em.unacked:
            self._send_done(em, now_ms)
            return now_ms + CONTROL_RETRANSMIT_MS
        wake = [sent + retransmit_ms for sent, _ in em.unacked.values()]
        if len(em.unacked) < WINDOW and em.cursor < len(em.digests):
            wake.append(max(em.next_send_at, now_ms))
        return min(wake)

    # -- receiving ---------------------------------------------------------------------

    def step(self, msg, now_ms: int, now_s: int) -> None:
        if msg.cluster_key != self.cluster_key:
            return
        kind = type(msg)
        if kind is MigrateRecords:
            self._on_records(msg, now_s)
        elif kind is MigrateRecordsAck:
            em = self._active.get(msg.emig_id)
            if em is not None and em.dst == msg.src:
                em.unacked.pop(msg.seq, None)
        elif kind is MigrateStart:
            self._on_start(msg, now_s)
        elif kind is MigrateStartAck:
            self._on_start_ack(msg, now_ms, now_s)
        elif kind is MigrateDone:
            self._on_done(msg)
        elif kind is MigrateDoneAck:
            em = self._active.get(msg.emig_id)
            if em is not None and em.dst == msg.src and em.state == DONE_SENT:
                em.state = FINISHED
                del self._active[msg.emig_id]
                heapq.heappush(self._sleep_until, em.next_send_at)
                self.on_emigrated(em)

    def _on_start(self, msg: MigrateStart, now_s: int) -> None:
        key = (msg.src, msg.emig_id)
        status = START_OK
        if key not in self._immigrations:
            if not self.allowed:
                status = START_EAGAIN
            elif msg.namespace not in self.stores or not self.expects(msg.namespace, msg.pid, msg.src):
                status = START_FAIL
            elif self.rx_active >= self.config.max_incoming:
                status = START_EAGAIN
            else:
                self._immigrations[key] = Immigration(msg.src, msg.emig_id, msg.namespace, msg.pid)
                self._rx_active += 1
                self.stats.rx_initial += 1
        self.out.fabric(msg.src, MigrateStartAck(self.node_id, self.cluster_key, msg.emig_id, status))

    def _on_start_ack(self, msg: MigrateStartAck, now_ms: int, now_s: int) -> None:
        em = self._active.get(msg.emig_id)
        if em is None or em.dst != msg.src or em.state != STARTING:
            return
        if msg.status == START_OK:
            em.state = SENDING
            em.digests = [d for d, _meta, _tomb in self.stores[em.namespace].partition_entries(em.pid, now_s)]
        elif msg.status == START_EAGAIN:
            del self._active[em.emig_id]
            em.state, em.retry_at = QUEUED, now_ms + EAGAIN_RETRY_MS
            self._delayed.append(em)
        else:
            del self._active[em.emig_id]
            em.state = FINISHED
            self.stats.tx_imbalance += 1

    def _on_records(self, msg: MigrateRecords, now_s: int) -> None:
        im = self._immigrations.get((msg.src, msg.emig_id))
        if im is None:
            return  # unknown or abandoned: no ack, the sender retransmits or gives up with its cluster
        if not im.done:
            store, policy = self.stores[im.namespace], self.config.policy.get(im.namespace, "generation")
            try:
                for image in msg.records:  # a batch applied twice is harmless: the copies tie
                    if not apply_if_better(store, image, policy, now_s):
                        self.stats.records_skipped += 1
            except StorageError:
                return  # no room even for migration writes: no ack, so the sender retransmits
            self.stats.records_received += len(msg.records)
        self.out.fabric(msg.src, MigrateRecordsAck(self.node_id, self.cluster_key, msg.emig_id, msg.seq))

    def _on_done(self, msg: MigrateDone) -> None:
        im = self._immigrations.get((msg.src, msg.emig_id))
        if im is None:
            return
        if not im.done:
            im.done = True  # kept (until the next cluster) to absorb retransmitted DONEs
            self._rx_active -= 1
            self.on_immigrated(im.namespace, im.pid, im.src)
        self.out.fabric(msg.src, MigrateDoneAck(self.node_id, self.cluster_key, msg.emig_id))
