"""Runs the sans-I/O data plane (cluster/core/data_plane.py) on the node's event loop.

It moves the data plane's fabric messages, pumps it when something is due (migration
batches, retransmits), and gives the transaction layer three awaitable services:

* `replicated(ns, digest)`: send the record's current image to the partition's replicas and
  wait until all acked — or until the transaction's deadline, then TIMEOUT (9), the master's
  copy staying written (spec §7.3);
* `resolve_duplicates(ns, digest, nodes, deadline)`: before a write on a partition whose
  duplicates (a healed split, a restarted node) are not merged in yet, fetch their copies of
  the record and keep the best by the namespace's policy (spec §7.4);
* `proxy(node, body, hops, deadline)`: forward a client's AS_MSG to the node that serves
  its partition and wait for the reply it would have sent (spec §7.5);
* `route(ns, pid, write)`, straight from the data plane.
"""

import asyncio
import logging
import time
from collections.abc import Callable

from cluster.core.data_messages import DupRequest, DupResponse, ProxyRequest, ProxyResponse
from cluster.core.data_plane import DataPlane
from cluster.core.effects import Outbox
from cluster.core.messages import encode
from cluster.core.migration import MigrationConfig
from cluster.core.records import RecordImage, apply_if_better, image_of
from cluster.node.membership_driver import monotonic_ms
from cluster.storage.record import now_cl_seconds
from cluster.wire import message as wm
from cluster.wire.digest import partition_id
from cluster.wire.result_codes import ResultCode

log = logging.getLogger(__name__)

MAX_PROXY_HOPS = 3
PUBLISH_DELAY_S = 0.05


class DataDriver:
    def __init__(self, node, send_fabric: Callable[[int, bytes], bool]):
        self.node = node
        self.send_fabric = send_fabric
        self.outbox = Outbox(node.node_id)
        self.config = MigrationConfig()
        self.plane = DataPlane(node.node_id, self.outbox, {n: ns.storage for n, ns in node.namespaces.items()},
                               {}, self.config, on_write_replicated=self._replicated)
        self._waiting: dict[int, asyncio.Future] = {}  # replication tid -> future
        self._proxies: dict[int, asyncio.Future] = {}  # proxy tid -> future
        self._next_tid = 1  # proxy and duplicate-resolution requests
        self._dup_requests: dict[int, tuple[set[int], list, asyncio.Future]] = {}  # tid -> (waiting, images, done)
        self._published = -1  # the data plane's map_version the node last published
        self._publish_timer: asyncio.TimerHandle | None = None
        self._waiter: asyncio.Future | None = None  # the idle pump waits on it
        self._poked = False
        self._task: asyncio.Task | None = None
        self.handle_proxied: Callable | None = None  # set by the node: (body, hops, deadline) -> reply
        self.apply_config()

    def apply_config(self) -> None:
        cfg = self.node.cfg
        self.config.threads = cfg.service["migrate-threads"]
        self.config.max_incoming = cfg.service["migrate-max-num-incoming"]
        namespaces = cfg.namespaces
        self.config.sleep_us = {n: p["migrate-sleep"] for n, p in namespaces.items()}
        self.config.policy = {n: p["conflict-resolution-policy"] for n, p in namespaces.items()}
        self.plane.replication_factor = {n: p["replication-factor"] for n, p in namespaces.items()}
        self.poke()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._pump_forever())

    def close(self) -> None:
        if self._task:
            self._task.cancel()
        for fut in [*self._waiting.values(), *self._proxies.values()]:
            fut.cancel()

    def poke(self) -> None:
        self._poked = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- membership events and fabric messages ------------------------------------------

    def on_message(self, msg) -> None:
        if type(msg) is ProxyRequest:
            asyncio.get_running_loop().create_task(self._serve_proxy(msg))
        elif type(msg) is ProxyResponse:
            fut = self._proxies.pop(msg.tid, None)
            if fut is not None and not fut.done():
                fut.set_result(msg.reply)
        elif type(msg) is DupRequest:
            self._answer_duplicate(msg)
        elif type(msg) is DupResponse:
            self._on_duplicate(msg)
        else:
            self.plane.step(msg, monotonic_ms(), now_cl_seconds())
            self.flush()

    def flush(self, poke: bool = True) -> None:
        """Send what the data plane queued; messages to ourselves are stepped at once."""
        while True:
            sends, _events = self.outbox.take()
            for send in sends:
                self.send_fabric(send.node, encode(send.msg))
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

    # -- replication ---------------------------------------------------------------------

    def _replicated(self, tid: int) -> None:
        fut = self._waiting.pop(tid, None)
        if fut is not None and not fut.done():
            fut.set_result(True)

    def start_replication(self, ns: str, image: RecordImage) -> asyncio.Future | None:
        """Ship a record's new copy (as the write just stored it) to the replicas; None if there are none."""
        pid = partition_id(image.digest)
        tid = self.plane.replication.start(ns, pid, image, self.plane.replica_targets(ns, pid), monotonic_ms())
        if tid is None:
            return None
        fut = asyncio.get_running_loop().create_future()
        self._waiting[tid] = fut
        fut.tid = tid
        self.flush()
        return fut

    async def wait_replicated(self, fut: asyncio.Future, deadline: float) -> bool:
        """True once every replica acked; False at the deadline (the write stays on the master)."""
        timer = asyncio.get_running_loop().call_later(max(0.0, deadline - time.monotonic()), self._expire, fut)
        try:
            return await fut
        finally:
            timer.cancel()

    def _expire(self, fut: asyncio.Future) -> None:
        if not fut.done():
            self.plane.replication.abandon(fut.tid)
            self._waiting.pop(fut.tid, None)
            fut.set_result(False)

    # -- duplicate resolution --------------------------------------------------------------

    async def resolve_duplicates(self, ns: str, digest: bytes, nodes: tuple[int, ...], deadline: float) -> bool:
        """Merge the duplicates' copies of one record into ours; False if one did not answer in time."""
        tid = self._next_tid
        self._next_tid += 1
        done = asyncio.get_running_loop().create_future()
        waiting = {n for n in nodes if self.send_fabric(n, encode(DupRequest(self.node.node_id, tid, ns, digest)))}
        if len(waiting) < len(nodes):
            return False  # a duplicate we cannot reach: the write must not guess
        images: list = []
        self._dup_requests[tid] = (waiting, images, done)
        self.node.counters["dup_res_ask"] += len(nodes)
        try:
            await asyncio.wait_for(done, max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            return False
        finally:
            self._dup_requests.pop(tid, None)
        store, policy = self.node.namespaces[ns].storage, self.config.policy.get(ns, "generation")
        for image in images:
            apply_if_better(store, image, policy, now_cl_seconds())
        return True

    def _answer_duplicate(self, msg: DupRequest) -> None:
        ns = self.node.namespaces.get(msg.namespace)
        image = image_of(ns.storage, msg.digest, now_cl_seconds()) if ns is not None and len(msg.digest) == 20 else None
        self.node.counters["dup_res_respond_read" if image else "dup_res_respond_no_read"] += 1
        self.send_fabric(msg.src, encode(DupResponse(self.node.node_id, msg.tid, (image,) if image else ())))

    def _on_duplicate(self, msg: DupResponse) -> None:
        entry = self._dup_requests.get(msg.tid)
        if entry is None:
            return
        waiting, images, done = entry
        if msg.src in waiting:
            waiting.discard(msg.src)
            images.extend(msg.images)
            if not waiting and not done.done():
                done.set_result(True)

    # -- proxying ------------------------------------------------------------------------

    async def proxy(self, node: int, body: bytes, hops: int, deadline: float) -> bytes:
        if hops >= MAX_PROXY_HOPS:
            return wm.encode_header_only(ResultCode.PARTITION_UNAVAILABLE)
        tid = self._next_tid
        self._next_tid += 1
        timeout_ms = max(1, int((deadline - time.monotonic()) * 1000))
        if not self.send_fabric(node, encode(ProxyRequest(self.node.node_id, tid, hops + 1, timeout_ms, body))):
            return wm.encode_header_only(ResultCode.PARTITION_UNAVAILABLE)  # no route to it: the client retries
        fut = asyncio.get_running_loop().create_future()
        self._proxies[tid] = fut
        self.node.counters["proxy_in_progress"] += 1
        try:
            reply = await asyncio.wait_for(fut, timeout_ms / 1000)
            self.node.counters["client_proxy_complete"] += 1
            return reply
        except TimeoutError:
            self.node.counters["client_proxy_timeout"] += 1
            return wm.encode_header_only(ResultCode.TIMEOUT)
        finally:
            self._proxies.pop(tid, None)
            self.node.counters["proxy_in_progress"] -= 1

    async def _serve_proxy(self, msg: ProxyRequest) -> None:
        deadline = time.monotonic() + msg.timeout_ms / 1000
        try:
            reply = await self.handle_proxied(msg.body, msg.hops, deadline)
        except Exception:
            log.exception("proxied request from %X failed", msg.src)
            reply = wm.encode_header_only(ResultCode.SERVER_ERROR)
        self.node.counters["from_proxy_complete"] += 1
        self.send_fabric(msg.src, encode(ProxyResponse(self.node.node_id, msg.tid, reply)))

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
