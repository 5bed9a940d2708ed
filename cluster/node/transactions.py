"""Single-record transactions, batch and scan against the namespaces this node serves.

Each entry point takes a parsed AS_MSG and returns reply AS_MSG bytes, an iterator of reply
chunks (a scan streams instead of being built in memory), or a coroutine that produces the
reply bytes (a write waiting for its replicas, a request proxied to another node).
Result codes and flag semantics follow spec/aerospike-wire-protocol.md §3 and §5.

In a cluster every single-record request is first routed (spec §7.1): before the first
rebalance → PARTITION_UNAVAILABLE (11); a partition this node does not serve → proxied to
its working master; otherwise executed here, and a successful write is answered only once
every replica has it (TIMEOUT (9) at the deadline, the write staying on the master).
Client deletes are durable (tombstones), so a delete replicates, migrates and stays
deleted when copies merge.
"""

import asyncio
import logging
import time
from collections.abc import Coroutine, Iterator
from typing import TYPE_CHECKING

from cluster.core.data_plane import PROXY, UNAVAILABLE
from cluster.core.records import RecordImage
from cluster.node import bins as binops
from cluster.node.namespace import Namespace
from cluster.storage.engine import OutOfSpace, RecordTooBig
from cluster.storage.record import MAX_LUT, MAX_VOID_TIME, RecordMeta, unchecked_meta
from cluster.wire import message as wm
from cluster.wire.batch import parse_rows
from cluster.wire.digest import N_PARTITIONS, partition_id
from cluster.wire.message import FieldType, Info1, Info2, Info3, Message, Op, OpType
from cluster.wire.particles import ParticleType
from cluster.wire.result_codes import AerospikeError, ResultCode

if TYPE_CHECKING:
    from cluster.node.data_driver import DataDriver

log = logging.getLogger(__name__)

CITRUSLEAF_EPOCH = 1262304000
TTL_NEVER_EXPIRE = 0xFFFFFFFF
TTL_DONT_UPDATE = 0xFFFFFFFE
MAX_SET_NAME = 63
CHUNK_BYTES = 128 * 1024  # flush a batch/scan reply frame at about this size
UNSUPPORTED_OPS = frozenset({
    OpType.CDT_READ, OpType.CDT_MODIFY, OpType.EXP_READ, OpType.EXP_MODIFY,
    OpType.BIT_READ, OpType.BIT_MODIFY, OpType.HLL_READ, OpType.HLL_MODIFY,
})
# namespace counters by request kind and result, spelt once rather than per request
_RESULT_COUNTERS = {kind: {ResultCode.OK: f"client_{kind}_success", ResultCode.KEY_NOT_FOUND: f"client_{kind}_not_found"}
                    for kind in ("read", "write", "delete")}
_ERROR_COUNTERS = {kind: f"client_{kind}_error" for kind in ("read", "write", "delete")}


class Clock:
    """Wall time in the units records use: seconds / milliseconds since 2010-01-01 UTC."""

    def now_s(self) -> int:
        return int(time.time()) - CITRUSLEAF_EPOCH

    def now_ms(self) -> int:
        return int(time.time() * 1000) - CITRUSLEAF_EPOCH * 1000


class Outcome:
    """What one record operation produced: the reply header values and any bins to return,
    and for a write that changed the record, its new image (what replication ships)."""

    __slots__ = ("result", "generation", "void_time", "ops", "image")

    def __init__(self, result: int, generation: int = 0, void_time: int = 0, ops: list[Op] | None = None,
                 image: RecordImage | None = None):
        self.result = result
        self.generation = generation
        self.void_time = void_time
        self.ops = ops or []
        self.image = image

    def encode(self, transaction_ttl: int = 0) -> bytes:
        if not self.ops:
            return wm.encode_header_only(self.result, self.generation, self.void_time,
                                         transaction_ttl=transaction_ttl)
        return wm.encode(Message(result_code=self.result, generation=self.generation,
                                 record_ttl=self.void_time, transaction_ttl=transaction_ttl, ops=self.ops))


class RawOutcome(Outcome):
    """A successful read of every bin, its ops already in wire form (bins.read_all_ops):
    encodes to the same bytes as an Outcome holding those ops."""

    __slots__ = ("n_ops", "raw_ops")

    def __init__(self, generation: int, void_time: int, n_ops: int, raw_ops: bytes):
        self.result, self.generation, self.void_time, self.ops, self.image = ResultCode.OK, generation, void_time, [], None
        self.n_ops, self.raw_ops = n_ops, raw_ops

    def encode(self, transaction_ttl: int = 0) -> bytes:
        return wm.encode_header_only(ResultCode.OK, self.generation, self.void_time,
                                     transaction_ttl=transaction_ttl, n_ops=self.n_ops) + self.raw_ops


def _digest(fields: dict[int, bytes]) -> bytes:
    digest = fields.get(FieldType.DIGEST)
    if digest is None or len(digest) != 20:
        raise AerospikeError(ResultCode.PARAMETER, "missing or malformed digest field")
    return digest


async def _as_row(reply: Coroutine[None, None, bytes], index: int) -> bytes:
    """A batch row's reply carries the row's index in the transaction-ttl field."""
    body = await reply
    try:
        msg, _end = wm.parse(body)
    except AerospikeError:
        return Outcome(ResultCode.SERVER_ERROR).encode(transaction_ttl=index)
    msg.transaction_ttl = index
    return wm.encode(msg)


async def _gather(replies: list) -> bytes:
    done = await asyncio.gather(*(r for r in replies if not isinstance(r, bytes)))
    it = iter(done)
    return b"".join(r if isinstance(r, bytes) else next(it) for r in replies)


def _tombstone_meta(ns: Namespace, digest: bytes) -> RecordMeta | None:
    found = ns.storage.lookup(digest)
    return found[0] if found is not None and found[1] else None


def _all_bins(record_bins: binops.Bins) -> list[Op]:
    return [Op(OpType.READ, ptype, name, value) for name, (ptype, value) in record_bins.items()]


Reply = bytes | Iterator[bytes] | Coroutine[None, None, bytes]


class Transactions:
    def __init__(self, namespaces: dict[str, Namespace], cluster: "DataDriver", max_ms: int = 1000,
                 clock: Clock | None = None):
        self.namespaces = namespaces
        self.cluster = cluster
        self.max_ms = max_ms  # transaction-max-ms: the deadline when the client sets none
        self.clock = clock or Clock()

    # -- dispatch -------------------------------------------------------------------

    def handle(self, msg: Message, body: bytes, hops: int = 0) -> Reply:
        """The reply to one AS_MSG request (`body` is its raw form, forwarded if proxied)."""
        try:
            if msg.info1 & Info1.BATCH:
                return self.batch(msg)
            if FieldType.DIGEST not in msg.fields:
                return self.scan(msg)
            return self.single(msg, body, hops)
        except AerospikeError as exc:
            return wm.encode_header_only(exc.code)

    def deadline(self, transaction_ttl: int) -> float:
        return time.monotonic() + (transaction_ttl or self.max_ms) / 1000

    def single(self, msg: Message, body: bytes, hops: int, transaction_ttl: int = 0) -> Reply:
        """Route one record request: execute here, proxy it, or refuse it (spec §7.1)."""
        ns = self._namespace(msg.fields)
        digest = _digest(msg.fields)
        write, pid = bool(msg.info2 & Info2.WRITE), partition_id(digest)
        where, node = self.cluster.plane.route(ns.name, pid, write)
        if where == UNAVAILABLE:
            return wm.encode_header_only(ResultCode.PARTITION_UNAVAILABLE, transaction_ttl=transaction_ttl)
        deadline = self.deadline(msg.transaction_ttl)
        if where == PROXY:
            ns.counters["client_proxied"] += 1
            return self.cluster.proxy(node, body or wm.encode(msg), hops, deadline)
        if write:
            duplicates = self.cluster.plane.dup_sources(ns.name, pid)
            if duplicates:
                return self._write_after_dup_res(ns, msg, digest, duplicates, deadline, transaction_ttl)
        return self._execute(ns, msg, deadline, transaction_ttl)

    def _execute(self, ns: Namespace, msg: Message, deadline: float, transaction_ttl: int) -> Reply:
        outcome = self.record(ns, msg.fields, msg.info1, msg.info2, msg.info3,
                              msg.generation, msg.record_ttl, msg.ops)
        if outcome.image is not None:
            replication = self.cluster.start_replication(ns.name, outcome.image)
            if replication is not None:
                return self._after_replication(ns, replication, outcome, deadline, transaction_ttl)
        return outcome.encode(transaction_ttl)

    async def _write_after_dup_res(self, ns: Namespace, msg: Message, digest: bytes, duplicates: tuple[int, ...],
                                   deadline: float, transaction_ttl: int) -> bytes:
        """A write on a partition still merging duplicates first takes their best copy (spec §7.4)."""
        if not await self.cluster.resolve_duplicates(ns.name, digest, duplicates, deadline):
            ns.counters["client_write_timeout"] += 1
            return wm.encode_header_only(ResultCode.TIMEOUT, transaction_ttl=transaction_ttl)
        try:
            reply = self._execute(ns, msg, deadline, transaction_ttl)
        except AerospikeError as exc:
            return wm.encode_header_only(exc.code, transaction_ttl=transaction_ttl)
        return reply if isinstance(reply, bytes) else await reply

    async def _after_replication(self, ns: Namespace, replication: asyncio.Future, outcome: "Outcome",
                                 deadline: float, transaction_ttl: int) -> bytes:
        if await self.cluster.wait_replicated(replication, deadline):
            return outcome.encode(transaction_ttl)
        ns.counters["client_write_timeout"] += 1
        return wm.encode_header_only(ResultCode.TIMEOUT, transaction_ttl=transaction_ttl)

    async def proxied(self, body: bytes, hops: int, deadline: float) -> bytes:
        """Execute a request another node forwarded to us (a FROM_PROXY transaction)."""
        try:
            msg, _end = wm.parse(body)
            reply = self.single(msg, body, hops)
        except AerospikeError as exc:
            return wm.encode_header_only(exc.code)
        return reply if isinstance(reply, bytes) else await reply

    def _namespace(self, fields: dict[int, bytes]) -> Namespace:
        raw = fields.get(FieldType.NAMESPACE)
        if raw is None:
            raise AerospikeError(ResultCode.PARAMETER, "no namespace field")
        ns = self.namespaces.get(raw.decode("utf-8", errors="replace"))
        if ns is None:
            raise AerospikeError(ResultCode.NAMESPACE_NOT_FOUND, f"namespace {raw!r} not found")
        return ns

    def record(self, ns: Namespace, fields: dict[int, bytes], info1: int, info2: int, info3: int,
               generation: int, record_ttl: int, ops: list[Op]) -> Outcome:
        digest = _digest(fields)
        set_name = fields.get(FieldType.SET, b"").decode("utf-8", errors="replace")
        if len(set_name) > MAX_SET_NAME:
            raise AerospikeError(ResultCode.PARAMETER, "set name longer than 63 bytes")
        kind = "write" if info2 & Info2.WRITE else "read"
        if kind == "write" and info2 & Info2.DELETE and not ops:
            kind = "delete"
        try:
            if kind == "read":
                outcome = self._read(ns, digest, info1, ops)
            elif kind == "delete":
                outcome = self._delete(ns, digest, info2, generation)
            else:
                key = fields.get(FieldType.KEY)
                outcome = self._write(ns, digest, set_name, (key[0], key[1:]) if key else None,
                                      info2, info3, generation, record_ttl, ops)
        except AerospikeError:
            ns.counters[_ERROR_COUNTERS[kind]] += 1
            raise
        ns.counters[_RESULT_COUNTERS[kind].get(outcome.result) or _ERROR_COUNTERS[kind]] += 1
        return outcome

    # -- reads ----------------------------------------------------------------------

    def _read(self, ns: Namespace, digest: bytes, info1: int, ops: list[Op]) -> Outcome:
        if not info1 & Info1.READ:
            raise AerospikeError(ResultCode.PARAMETER, "request neither reads nor writes")
        now = self.clock.now_s()
        if info1 & Info1.NOBINDATA:
            meta = ns.storage.get_meta(digest, now)
            if meta is None:
                return Outcome(ResultCode.KEY_NOT_FOUND)
            return Outcome(ResultCode.OK, meta.generation, meta.void_time)
        found = ns.storage.get(digest, now)
        if found is None:
            return Outcome(ResultCode.KEY_NOT_FOUND)
        meta, payload = found
        if info1 & Info1.GET_ALL or not ops:
            # every bin, straight from the stored payload to wire form
            return RawOutcome(meta.generation, meta.void_time, *binops.read_all_ops(payload))
        record_bins, _key = binops.decode_payload(payload)
        out = []
        for op in ops:
            out.extend(self._read_op(record_bins, op))
        return Outcome(ResultCode.OK, meta.generation, meta.void_time, out)

    @staticmethod
    def _read_op(record_bins: binops.Bins, op: Op) -> list[Op]:
        if op.op in UNSUPPORTED_OPS:
            raise AerospikeError(ResultCode.UNSUPPORTED_FEATURE, f"op {op.op} is not implemented")
        if op.op != OpType.READ:
            raise AerospikeError(ResultCode.PARAMETER, f"op {op.op} in a read request")
        if not op.name:
            return _all_bins(record_bins)
        found = record_bins.get(op.name)
        return [Op(OpType.READ, found[0], op.name, found[1])] if found else []

    # -- deletes --------------------------------------------------------------------

    def _delete(self, ns: Namespace, digest: bytes, info2: int, generation: int) -> Outcome:
        meta = ns.storage.get_meta(digest, self.clock.now_s())
        if meta is None:
            return Outcome(ResultCode.KEY_NOT_FOUND)
        self._check_generation(ns, meta, info2, generation)
        return Outcome(ResultCode.OK, image=self._bury(ns, digest, meta))

    def _bury(self, ns: Namespace, digest: bytes, meta: RecordMeta) -> RecordImage:
        """A durable delete: a tombstone one generation on, so it wins over older copies elsewhere."""
        tomb = RecordMeta(meta.generation % 0xFFFF + 1, 0, max(self.clock.now_ms(), meta.lut + 1), meta.set_name)
        try:
            ns.storage.bury(digest, tomb)  # deletes are allowed under stop-writes ...
        except OutOfSpace as exc:  # ... unless not even a tombstone fits
            raise AerospikeError(ResultCode.OUT_OF_SPACE, str(exc)) from exc
        return RecordImage(digest, tomb.generation, 0, tomb.lut, tomb.set_name, b"", 1)

    # -- writes ---------------------------------------------------------------------

    @staticmethod
    def _check_generation(ns: Namespace, meta: RecordMeta, info2: int, generation: int) -> None:
        if info2 & Info2.GENERATION and meta.generation != generation:
            ns.counters["fail_generation"] += 1
            raise AerospikeError(ResultCode.GENERATION, f"generation is {meta.generation}, not {generation}")
        if info2 & Info2.GENERATION_GT and generation <= meta.generation:
            ns.counters["fail_generation"] += 1
            raise AerospikeError(ResultCode.GENERATION, f"generation {generation} is not above {meta.generation}")

    def _void_time(self, ns: Namespace, record_ttl: int, existing: RecordMeta | None, now: int) -> int:
        if record_ttl == TTL_NEVER_EXPIRE:
            return 0
        if record_ttl == TTL_DONT_UPDATE and existing is not None:
            return existing.void_time
        ttl = record_ttl if record_ttl not in (0, TTL_DONT_UPDATE) else ns.params["default-ttl"]
        return now + ttl if ttl else 0

    def _write(self, ns: Namespace, digest: bytes, set_name: str, key: tuple[int, bytes] | None,
               info2: int, info3: int, generation: int, record_ttl: int, ops: list[Op]) -> Outcome:
        if ns.stop_writes:
            ns.counters["fail_out_of_space"] += 1
            raise AerospikeError(ResultCode.OUT_OF_SPACE, f"namespace {ns.name} is in stop-writes")
        now = self.clock.now_s()
        found = ns.storage.get(digest, now)
        meta = found[0] if found else None
        if meta is not None:
            if info2 & (Info2.GENERATION | Info2.GENERATION_GT):
                self._check_generation(ns, meta, info2, generation)
            if info2 & Info2.CREATE_ONLY:
                raise AerospikeError(ResultCode.RECORD_EXISTS, "record exists")
        elif info3 & (Info3.UPDATE_ONLY | Info3.REPLACE_ONLY):
            return Outcome(ResultCode.KEY_NOT_FOUND)

        if found and not info3 & (Info3.CREATE_OR_REPLACE | Info3.REPLACE_ONLY):
            record_bins, stored_key = binops.decode_payload(found[1])
        else:
            record_bins, stored_key = {}, (binops.decode_payload(found[1])[1] if found else None)
        respond_all = bool(info2 & Info2.RESPOND_ALL_OPS)
        out: list[Op] = []
        touched = False
        for op in ops:
            code = op.op
            if code == OpType.READ:
                out.extend(self._read_op(record_bins, op))
                continue
            if code == OpType.WRITE:
                binops.write(record_bins, op.name, op.ptype, op.value)
            elif code == OpType.INCR:
                binops.incr(record_bins, op.name, op.ptype, op.value)
            elif code in (OpType.APPEND, OpType.PREPEND):
                binops.concat(record_bins, op.name, op.ptype, op.value, prepend=code == OpType.PREPEND)
            elif code == OpType.TOUCH:
                touched = True
            elif code == OpType.DELETE:
                record_bins.clear()
            elif code in UNSUPPORTED_OPS:
                raise AerospikeError(ResultCode.UNSUPPORTED_FEATURE, f"op {code} is not implemented")
            else:
                raise AerospikeError(ResultCode.PARAMETER, f"unknown op {code}")
            if respond_all and code != OpType.TOUCH:
                out.append(Op(code, ParticleType.NULL, op.name))

        if not record_bins:
            # A write that leaves no bins deletes the record (touch alone needs a record).
            if meta is None:
                return Outcome(ResultCode.KEY_NOT_FOUND if touched or not ops else ResultCode.OK)
            return Outcome(ResultCode.OK, 0, 0, out, self._bury(ns, digest, meta))

        # a record re-created over its tombstone continues its generations, so that it wins
        # over the tombstone (and the tombstone over older copies) wherever copies merge
        previous = meta or _tombstone_meta(ns, digest)
        new_gen = 1 if previous is None else previous.generation % 0xFFFF + 1
        void_time = self._void_time(ns, record_ttl, meta, now)
        payload = binops.encode_payload(record_bins, key or stored_key)
        if len(payload) > ns.params["max-record-size"]:
            ns.counters["fail_record_too_big"] += 1
            raise AerospikeError(ResultCode.RECORD_TOO_BIG, f"record of {len(payload)} bytes")
        lut = max(self.clock.now_ms(), previous.lut + 1 if previous else 0)  # a record's LUT never goes back
        if void_time <= MAX_VOID_TIME and lut <= MAX_LUT and set_name.isascii():
            # new_gen is in range and record() kept the set name to 63 characters: 63 bytes if ASCII
            new_meta = unchecked_meta(new_gen, void_time, lut, set_name)
        else:
            new_meta = RecordMeta(new_gen, void_time, lut, set_name)  # may refuse (ValueError) as always
        try:
            ns.storage.put(digest, new_meta, payload)
        except OutOfSpace as exc:
            ns.counters["fail_out_of_space"] += 1
            raise AerospikeError(ResultCode.OUT_OF_SPACE, str(exc)) from None
        except RecordTooBig as exc:
            ns.counters["fail_record_too_big"] += 1
            raise AerospikeError(ResultCode.RECORD_TOO_BIG, str(exc)) from None
        return Outcome(ResultCode.OK, new_gen, void_time, out,
                       RecordImage(digest, new_gen, void_time, lut, set_name, payload, 0))

    # -- batch ----------------------------------------------------------------------

    def batch(self, msg: Message) -> Reply:
        """Each row is a single-record transaction (routed, proxied, replicated like one)."""
        data = msg.fields.get(FieldType.BATCH_INDEX)
        if data is None:
            raise AerospikeError(ResultCode.PARAMETER, "batch request without field 41")
        replies: list = []
        for row in parse_rows(data):
            fields = dict(row.fields)
            fields[FieldType.DIGEST] = row.digest
            row_msg = Message(info1=row.info1, info2=row.info2, info3=row.info3, generation=row.generation,
                              record_ttl=row.record_ttl, transaction_ttl=msg.transaction_ttl, fields=fields,
                              ops=row.ops)
            try:
                reply = self.single(row_msg, b"", 0, transaction_ttl=row.index)
            except AerospikeError as exc:
                reply = Outcome(exc.code).encode(transaction_ttl=row.index)
            replies.append(reply if isinstance(reply, bytes) else _as_row(reply, row.index))
        replies.append(wm.encode_header_only(ResultCode.OK, info3=Info3.LAST))
        if all(isinstance(r, bytes) for r in replies):
            return b"".join(replies)
        return _gather(replies)

    # -- scan / query (no secondary index) --------------------------------------------

    def scan(self, msg: Message) -> Iterator[bytes]:
        if not msg.info1 & Info1.READ:
            raise AerospikeError(ResultCode.UNSUPPORTED_FEATURE, "background scans/queries are not implemented")
        ns = self._namespace(msg.fields)
        if 22 in msg.fields or 21 in msg.fields:
            raise AerospikeError(ResultCode.UNSUPPORTED_FEATURE, "secondary-index queries are not implemented")
        for op in msg.ops:
            if op.op != OpType.READ:
                raise AerospikeError(ResultCode.UNSUPPORTED_FEATURE, f"op {op.op} in a scan")
        return self._scan_stream(ns, msg)

    @staticmethod
    def _scan_plan(fields: dict[int, bytes]) -> list[tuple[int, bytes | None]]:
        """(pid, resume-after digest) for each partition the client asked for."""
        pids_raw = fields.get(FieldType.PID_ARRAY)
        plan: dict[int, bytes | None] = {}
        if pids_raw is not None:
            if len(pids_raw) % 2:
                raise AerospikeError(ResultCode.PARAMETER, "odd-length partition id array")
            for i in range(0, len(pids_raw), 2):
                pid = int.from_bytes(pids_raw[i:i + 2], "little")
                if pid >= N_PARTITIONS:
                    raise AerospikeError(ResultCode.PARAMETER, f"partition id {pid}")
                plan[pid] = None
        digests_raw = fields.get(FieldType.DIGEST_ARRAY, b"")
        if len(digests_raw) % 20:
            raise AerospikeError(ResultCode.PARAMETER, "digest array not a multiple of 20 bytes")
        for i in range(0, len(digests_raw), 20):
            d = digests_raw[i:i + 20]
            plan[partition_id(d)] = d
        if pids_raw is None and not digests_raw:
            plan = dict.fromkeys(range(N_PARTITIONS))
        return list(plan.items())

    def _scan_stream(self, ns: Namespace, msg: Message) -> Iterator[bytes]:
        fields = msg.fields
        plan = self._scan_plan(fields)
        set_filter = fields.get(FieldType.SET, b"").decode("utf-8", errors="replace")
        max_raw = fields.get(FieldType.MAX_RECORDS)
        remaining = int.from_bytes(max_raw, "big") if max_raw else None
        no_bins = bool(msg.info1 & Info1.NOBINDATA)
        wanted = {op.name for op in msg.ops if op.name}
        report_done = bool(msg.info3 & Info3.PARTITION_DONE)
        ns_field = ns.name.encode()
        chunk: list[bytes] = []
        size = 0
        for pid, after in plan:
            if remaining == 0:
                break
            if not self.cluster.plane.is_master(ns.name, pid):  # the client retries it on its master
                if report_done:
                    chunk.append(wm.encode_header_only(ResultCode.PARTITION_UNAVAILABLE, generation=pid,
                                                       info3=Info3.PARTITION_DONE))
                continue
            now = self.clock.now_s()
            for digest in ns.storage.partition_digests(pid, now):
                if after is not None and digest <= after:
                    continue
                if remaining == 0:
                    break
                found = ns.storage.get(digest, now)
                if found is None or (set_filter and found[0].set_name != set_filter):
                    continue
                meta, payload = found
                record_bins, key = binops.decode_payload(payload)
                rfields = {FieldType.NAMESPACE: ns_field, FieldType.DIGEST: digest}
                if meta.set_name:
                    rfields[FieldType.SET] = meta.set_name.encode()
                if key:
                    rfields[FieldType.KEY] = bytes((key[0],)) + key[1]
                ops = [] if no_bins else [o for o in _all_bins(record_bins) if not wanted or o.name in wanted]
                piece = wm.encode(Message(generation=meta.generation, record_ttl=meta.void_time,
                                          fields=rfields, ops=ops))
                chunk.append(piece)
                size += len(piece)
                if remaining is not None:
                    remaining -= 1
                if size >= CHUNK_BYTES:
                    yield b"".join(chunk)
                    chunk, size = [], 0
            else:
                if report_done:
                    chunk.append(wm.encode_header_only(ResultCode.OK, generation=pid, info3=Info3.PARTITION_DONE))
        ns.counters["scan_complete"] += 1
        chunk.append(wm.encode_header_only(ResultCode.OK, info3=Info3.LAST))
        yield b"".join(chunk)
