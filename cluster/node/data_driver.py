"""Runs the sans-I/O data plane (cluster/core/data_plane.py) on the node's event loop.

It moves the data plane's fabric messages, pumps it when something is due (migration
batches, retransmits, deadlines), and turns the plane's transaction protocols into
awaitables for the transaction layer (all deadlines in `monotonic_ms`):

* `start_replication(ns, image)` / `wait_replicated(fut, deadline_ms)`: ship the image the
  write stored to the partition's replicas and wait until all acked (OK), a replica failed
  (its result code) or the deadline passed (TIMEOUT, the master's copy staying, as on the real server);
* `resolve_duplicates(ns, digest, nodes, deadline_ms)`: core/dup_res.py;
* `proxy(node, body, hops, deadline_ms)`: core/proxy.py; requests proxied to
  this node are executed by `handle_proxied(body, hops, deadline_ms)` against the
  deadline they carry.
"""

import asyncio
import logging
from collections.abc import Callable

from cluster.core.data_plane import DataPlane
from cluster.core.dup_res import DupResolved
from cluster.core.effects import Outbox
from cluster.core.messages import encode
from cluster.core.migration import MigrationConfig
from cluster.core.proxy import ProxyDone, ServeProxied
from cluster.core.records import RecordImage
from cluster.core.replication import Replicated
from cluster.node.membership_driver import monotonic_ms
from cluster.storage.record import now_cl_seconds
from cluster.wire import message as wm
from cluster.wire.digest import partition_id
from cluster.wire.result_codes import ResultCode

log = logging.getLogger(__name__)

PUBLISH_DELAY_S = 0.05


class DataDriver:
    def __init__(self, node, send_fabric: Callable[[int, bytes], bool]):
        self.node = node
        self.send_fabric = send_fabric
        self.outbox = Outbox(node.node_id)
        self.config = MigrationConfig()
        self.plane = DataPlane(node.node_id, self.outbox, {n: ns.storage for n, ns in node.namespaces.items()},
                               {}, self.config)
        self._waiting: dict[int, asyncio.Future] = {}  # replication tid -> future of the result code
        self._proxies: dict[int, asyncio.Future] = {}  # proxy tid -> future of the reply
        self._dup_res: dict[int, asyncio.Future] = {}  # duplicate-resolution tid -> future of ok
        self._published = -1  # the data plane's map_version the node last published
        self._publish_timer: asyncio.TimerHandle | None = None
        self._waiter: asyncio.Future | None = None  # the idle pump waits on it
        self._poked = False
        self._task: asyncio.Task | None = None
        self.handle_proxied: Callable | None = None  # set by the node: (body, hops, deadline_ms) -> reply
        self.apply_config()

    def apply_config(self) -> None:
        cfg = self.node.cfg
        self.config.threads = cfg.service["migrate-threads"]
        self.config.max_incoming = cfg.service["migrate-max-num-incoming"]
        self.config.transaction_retry_ms = cfg.service["transaction-retry-ms"]
        namespaces = cfg.namespaces
        self.config.sleep_us = {n: p["migrate-sleep"] for n, p in namespaces.items()}
        self.config.retransmit_ms = {n: p["migrate-retransmit-ms"] for n, p in namespaces.items()}
        self.config.policy = {n: p["conflict-resolution-policy"] for n, p in namespaces.items()}
        self.plane.replication_factor = {n: p["replication-factor"] for n, p in namespaces.items()}
        self.poke()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._pump_forever())

    def close(self) -> None:
        if self._task:
            self._task.cancel()
        for fut in [*self._waiting.values(), *self._proxies.values(), *self._dup_res.values()]:
            fut.cancel()

    def poke(self) -> None:
        self._poked = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- membership events and fabric messages ------------------------------------------

    def on_message(self, msg) -> None:
        self.plane.step(msg, monotonic_ms(), now_cl_seconds())
        self.flush()

    def flush(self, poke: bool = True) -> None:
        """Send what the data plane queued and act on its events; messages to ourselves are
        stepped at once."""
        while True:
            sends, events = self.outbox.take()
            for send in sends:
                self.send_fabric(send.node, encode(send.msg))
            for event in events:
                self._on_event(event)
            if not self.outbox.loopback:
                break
            while self.outbox.loopback:
                self.plane.step(self.outbox.loopback.popleft(), monotonic_ms(), now_cl_seconds())
        if self.plane.map_version != self._published and self._publish_timer is None:
            # a migration finishes a partition every few ms; republishing 4096 partitions each
            # time would cost more than the migration itself, so changes are batched
            self._publish_timer = asyncio.get_running_loop().call_later(PUBLISH_DELAY_S, self.publish)
        if poke:
            self.poke()

    def _on_event(self, event) -> None:
        kind = type(event)
        if kind is Replicated:
            _resolve(self._waiting.pop(event.tid, None), event.result)
        elif kind is ProxyDone:
            self.node.counters["client_proxy_timeout" if event.timed_out else "client_proxy_complete"] += 1
            _resolve(self._proxies.pop(event.tid, None), event.reply)
        elif kind is DupResolved:
            _resolve(self._dup_res.pop(event.tid, None), event.ok)
        elif kind is ServeProxied:
            asyncio.get_running_loop().create_task(self._serve_proxy(event))

    def publish(self) -> None:
        """The client map and the versions the next exchange reports, from the current state."""
        if self._publish_timer is not None:
            self._publish_timer.cancel()
            self._publish_timer = None
        self._published = self.plane.map_version
        self.node.publish_partitions()

    async def _pump_forever(self) -> None:
        """Pump when poked or when the data plane said something falls due.

        A plain future and timer rather than `wait_for` on an event: the pump is poked on
        every replicated write, and `wait_for` would cost a task each time.
        """
        loop = asyncio.get_running_loop()
        while True:
            self._poked = False
            try:
                wake = self.plane.pump(monotonic_ms(), now_cl_seconds())
                self.flush(poke=False)
            except Exception:  # one bad pump must not stop migration for good
                log.exception("data plane pump failed")
                wake = monotonic_ms() + 1000
            if self._poked or (wake is not None and wake <= monotonic_ms()):
                await asyncio.sleep(0)  # more to do at once: let client requests in first
                continue
            self._waiter = loop.create_future()
            timer = None if wake is None else loop.call_later((wake - monotonic_ms()) / 1000, self.poke)
            await self._waiter
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _future(self, table: dict[int, asyncio.Future], tid: int) -> asyncio.Future:
        fut = table[tid] = asyncio.get_running_loop().create_future()
        fut.tid = tid
        self.flush()
        return fut

    # -- replication ---------------------------------------------------------------------

    def start_replication(self, ns: str, image: RecordImage) -> asyncio.Future | None:
        """Ship a record's new copy (as the write just stored it) to the replicas; None if there are none."""
        pid = partition_id(image.digest)
        targets = self.plane.replica_targets(ns, pid)
        if not targets:  # replication-factor 1: nothing to ship, nobody to wait for
            return None
        tid = self.plane.replication.start(ns, pid, image, targets, monotonic_ms())
        return None if tid is None else self._future(self._waiting, tid)

    async def wait_replicated(self, fut: asyncio.Future, deadline_ms: int) -> int:
        """OK once every replica acked, a replica's failure code, or TIMEOUT at the deadline
        (the write stays on the master)."""
        timer = asyncio.get_running_loop().call_later(max(0, deadline_ms - monotonic_ms()) / 1000, self._expire, fut)
        try:
            return await fut
        finally:
            timer.cancel()

    def _expire(self, fut: asyncio.Future) -> None:
        if not fut.done():
            self.plane.replication.abandon(fut.tid)
            self._waiting.pop(fut.tid, None)
            fut.set_result(ResultCode.TIMEOUT)

    # -- duplicate resolution and proxying ---------------------------------------------------

    async def resolve_duplicates(self, ns: str, digest: bytes, nodes: tuple[int, ...], deadline_ms: int) -> bool:
        """Merge the duplicates' copies of one record into ours; False if one did not answer in time."""
        tid = self.plane.dup_res.start(ns, digest, nodes, deadline_ms, monotonic_ms())
        return await self._future(self._dup_res, tid)

    async def proxy(self, node: int, body: bytes, hops: int, deadline_ms: int) -> bytes:
        tid = self.plane.proxies.forward(node, body, hops, deadline_ms, monotonic_ms())
        if tid is None:  # its hops are spent: the client retries with a fresher map
            return wm.encode_header_only(ResultCode.PARTITION_UNAVAILABLE)
        self.node.counters["proxy_in_progress"] += 1
        try:
            return await self._future(self._proxies, tid)
        finally:
            self.node.counters["proxy_in_progress"] -= 1

    async def _serve_proxy(self, req: ServeProxied) -> None:
        try:
            reply = await self.handle_proxied(req.body, req.hops, req.deadline_ms)
        except Exception:
            log.exception("proxied request from %X failed", req.src)
            reply = wm.encode_header_only(ResultCode.SERVER_ERROR)
        self.node.counters["from_proxy_complete"] += 1
        self.plane.proxies.respond(req.src, req.tid, reply)
        self.flush()

    # -- metrics -------------------------------------------------------------------------

    def namespace_statistics(self, ns: str) -> dict[str, int]:
        tx, rx, signals = self.plane.remaining(ns)
        m, me = self.plane.migrations.stats, self.node.node_id
        states = self.plane.partitions[ns]
        return {
            "effective_replication_factor": max((len(st.replicas) for st in states), default=0),
            "migrate_tx_partitions_remaining": tx,
            "migrate_rx_partitions_remaining": rx,
            "migrate_signals_remaining": signals,
            "migrate_tx_partitions_initial": m.tx_initial,
            "migrate_rx_partitions_initial": m.rx_initial,
            "migrate_tx_partitions_imbalance": m.tx_imbalance,
            # node-wide counters, as this engine is shared by the namespaces
            "migrate_records_transmitted": m.records_transmitted,
            "migrate_record_receives": m.records_received,
            "migrate_records_skipped": m.records_skipped,
            "migrate_record_retransmits": m.record_retransmits,
            "dup_res_ask": self.plane.dup_res.stats.asked,
            "dup_res_respond_read": self.plane.dup_res.stats.answered_with_copy,
            "dup_res_respond_no_read": self.plane.dup_res.stats.answered_without,
            "master_partitions": sum(st.working_master == me for st in states),
            "prole_partitions": sum(me in st.replicas[1:] for st in states),
        }

    def partition_info(self, ns: str | None = None) -> list[str]:
        """One line per partition this node holds or serves (asinfo `partition-info`, our columns)."""
        me = self.node.node_id
        lines = []
        for name, states in self.plane.partitions.items():
            if ns and name != ns:
                continue
            store = self.node.namespaces[name].storage
            for pid, st in enumerate(states):
                if me not in st.replicas and not st.version.has_data:
                    continue
                replica = st.replicas.index(me) if me in st.replicas else -1
                lines.append(f"{name}:{pid}:{replica}:{st.working_master:X}:{st.version}:"
                             f"{len(st.immigrating)}:{store.partition_count(pid)}")
        return lines


def _resolve(fut: asyncio.Future | None, value) -> None:
    if fut is not None and not fut.done():
        fut.set_result(value)
