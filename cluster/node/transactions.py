"""Single-record transactions, batch and scan against the namespaces this node serves.

Each entry point takes a parsed AS_MSG and returns reply AS_MSG bytes, an iterator of reply
chunks (a scan streams instead of being built in memory), or a coroutine that produces the
reply bytes (a write waiting for its replicas, a request proxied to another node).
Result codes and flag semantics are Aerospike's (as/include/base/proto.h in its public source).

In a cluster every single-record request is first routed (as Aerospike's as_tsvc_process_transaction does): before the first
rebalance → PARTITION_UNAVAILABLE (11); a partition this node does not serve → proxied to
its working master, carrying the client's deadline; otherwise executed here, and a
successful write is answered OK only once every replica has it (TIMEOUT (9) at the
deadline, or a replica's failure code: the write staying on the master either way).
What a write does to the record is core/write.py's, shared with the simulator. A delete
with the client's durable-delete flag leaves a tombstone, so it replicates, migrates and
stays deleted when copies merge; without the flag the record just goes (on the replicas
too), as on the real server, and a stale copy may bring it back (docs/cluster.md).

A filter expression (field 43) is evaluated where the server evaluates it: a read, delete
or write of an existing record that fails it is answered FILTERED_OUT (27) and changes
nothing; a write that creates the record does not look at it (nor does a read of a missing
record: 2 as usual); a scan leaves out the records that fail it; a batch's filter applies
to every row without one of its own, each row answered on its own. It is compiled once
per request at most (core/expressions caches it), and requests without one do no extra work.

A scan with an index filter (fields 21-26) is a secondary-index query: cluster/core/sindex.py
says which records match and cluster/node/query.py in which order a partition yields them.

Never ignore a field the client sent: a request carrying one we do not implement (a UDF
aggregation) is refused with UNSUPPORTED_FEATURE (16). A record UDF (fields 30-33:
client.apply, a batch UDF row) runs in cluster/node/udf_modules.py and its change is
written by core/write.py like any other write.
"""

import asyncio
import logging
import time
from collections.abc import Coroutine, Iterator
from typing import TYPE_CHECKING

from cluster.core import bins as binops
from cluster.core import write as writes
from cluster.core.data_plane import PROXY, UNAVAILABLE
from cluster.core.records import LIVE, RecordImage, image_of, store
from cluster.core.sindex import FIELD_BVAL_ARRAY, IndexQuery, has_index_filter, parse_query
from cluster.core.write import Outcome, all_bins, read_answers
from cluster.lazy import lazy_import
from cluster.node.membership_driver import monotonic_ms
from cluster.node.namespace import Namespace
from cluster.node.query import query_partition, resume_bvals, scan_partition
from cluster.node.udf_jobs import BackgroundJobs
from cluster.storage.engine import OutOfSpace, RecordTooBig
from cluster.storage.record import RecordMeta
from cluster.wire import message as wm
from cluster.wire.batch import parse_rows
from cluster.wire.digest import N_PARTITIONS, partition_id
from cluster.wire.message import FieldType, Info1, Info2, Info3, Message, Op, OpType
from cluster.wire.result_codes import AerospikeError, ResultCode

if TYPE_CHECKING:
    from cluster.node.data_driver import DataDriver

expressions = lazy_import("cluster.core.expressions")  # only requests with a filter need it

log = logging.getLogger(__name__)

CITRUSLEAF_EPOCH = 1262304000
MAX_SET_NAME = 63
CHUNK_BYTES = 128 * 1024  # flush a batch/scan reply frame at about this size
# namespace counters by request kind and result, spelt once rather than per request
_RESULT_COUNTERS = {kind: {ResultCode.OK: f"client_{kind}_success",
                           ResultCode.KEY_NOT_FOUND: f"client_{kind}_not_found",
                           ResultCode.FILTERED_OUT: f"client_{kind}_filtered_out"}
                    for kind in ("read", "write", "delete")}
_ERROR_COUNTERS = {kind: f"client_{kind}_error" for kind in ("read", "write", "delete")}
# fields we do not evaluate, so a request carrying one is refused rather than run without it
_UNSUPPORTED_FIELDS: dict[int, str] = {}  # none left: record UDFs run, aggregations are refused by scan()
READ_TOUCH_NEVER = 0xFFFFFFFF  # a read's record_ttl: -1 never touches, 0 the namespace's default (0: never)
_FAILURE_COUNTERS = {ResultCode.GENERATION: "fail_generation", ResultCode.RECORD_TOO_BIG: "fail_record_too_big",
                     ResultCode.OUT_OF_SPACE: "fail_out_of_space"}


class Clock:
    """Wall time in the units records use: seconds / milliseconds since 2010-01-01 UTC."""

    def now_s(self) -> int:
        return int(time.time()) - CITRUSLEAF_EPOCH

    def now_ms(self) -> int:
        return int(time.time() * 1000) - CITRUSLEAF_EPOCH * 1000


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


def refuse_unsupported(fields: dict[int, bytes]) -> None:
    for field in fields:
        if field in _UNSUPPORTED_FIELDS:
            raise AerospikeError(ResultCode.UNSUPPORTED_FEATURE, f"{_UNSUPPORTED_FIELDS[field]} are not implemented")


def _in_memory(ns: Namespace) -> bool:
    """Whether the namespace stores no data on a device (what device_size/memory_size tell)."""
    return ns.params["storage-engine"]["type"] == "memory"


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


Reply = bytes | Iterator[bytes] | Coroutine[None, None, bytes]


class Transactions:
    def __init__(self, namespaces: dict[str, Namespace], cluster: "DataDriver", max_ms: int = 1000,
                 clock: Clock | None = None):
        self.namespaces = namespaces
        self.cluster = cluster
        self.max_ms = max_ms  # transaction-max-ms: the deadline when the client sets none
        self.clock = clock or Clock()
        self.latencies = None  # cluster.node.metrics.Latencies while the node serves metrics
        self.udf = None  # cluster.node.udf_modules.UdfModules: the node sets it
        self.jobs = BackgroundJobs(self)  # background scans and queries (query-show lists them)

    # -- dispatch -------------------------------------------------------------------

    def handle(self, msg: Message, body: bytes) -> Reply:
        """The reply to one AS_MSG request (`body` is its raw form, forwarded if proxied)."""
        try:
            if msg.info1 & Info1.BATCH:
                return self.batch(msg)
            if FieldType.DIGEST not in msg.fields:
                return self.scan(msg)
        except AerospikeError as exc:  # the client reads a batch or scan until a LAST reply
            return wm.encode_header_only(exc.code, info3=Info3.LAST)
        started = time.perf_counter()  # the latency clock starts before single() runs
        try:
            reply = self.single(msg, body, 0, self.deadline(msg.transaction_ttl))
        except AerospikeError as exc:
            return wm.encode_header_only(exc.code)
        return reply if self.latencies is None else self.latencies.timed(msg, started, reply)

    def deadline(self, transaction_ttl: int) -> int:
        """The client's deadline (ms, monotonic): its total timeout, else transaction-max-ms."""
        return monotonic_ms() + (transaction_ttl or self.max_ms)

    def single(self, msg: Message, body: bytes, hops: int, deadline: int, transaction_ttl: int = 0) -> Reply:
        """Route one record request: execute here, proxy it, or refuse it."""
        ns = self._namespace(msg.fields)
        digest = _digest(msg.fields)
        write, pid = bool(msg.info2 & Info2.WRITE), partition_id(digest)
        where, node = self.cluster.plane.route(ns.name, pid, write)
        if where == UNAVAILABLE:
            return wm.encode_header_only(ResultCode.PARTITION_UNAVAILABLE, transaction_ttl=transaction_ttl)
        if where == PROXY:
            ns.counters["client_proxied"] += 1
            return self.cluster.proxy(node, body or wm.encode(msg), hops, deadline)
        if write:
            duplicates = self.cluster.plane.dup_sources(ns.name, pid)
            if duplicates:
                return self._write_after_dup_res(ns, msg, digest, duplicates, deadline, transaction_ttl)
        return self._execute(ns, msg, deadline, transaction_ttl)

    def _execute(self, ns: Namespace, msg: Message, deadline: int, transaction_ttl: int) -> Reply:
        outcome = self.record(ns, msg.fields, msg.info1, msg.info2, msg.info3,
                              msg.generation, msg.record_ttl, msg.ops)
        if outcome.image is not None:
            replication = self.cluster.start_replication(ns.name, outcome.image)
            if replication is not None:
                return self._after_replication(ns, replication, outcome, deadline, transaction_ttl)
        return outcome.encode(transaction_ttl)

    async def _write_after_dup_res(self, ns: Namespace, msg: Message, digest: bytes, duplicates: tuple[int, ...],
                                   deadline: int, transaction_ttl: int) -> bytes:
        """A write on a partition still merging duplicates first takes their best copy (core/dup_res.py)."""
        if not await self.cluster.resolve_duplicates(ns.name, digest, duplicates, deadline):
            ns.counters["client_write_timeout"] += 1
            return wm.encode_header_only(ResultCode.TIMEOUT, transaction_ttl=transaction_ttl)
        try:
            reply = self._execute(ns, msg, deadline, transaction_ttl)
        except AerospikeError as exc:
            return wm.encode_header_only(exc.code, transaction_ttl=transaction_ttl)
        return reply if isinstance(reply, bytes) else await reply

    async def _after_replication(self, ns: Namespace, replication: asyncio.Future, outcome: Outcome,
                                 deadline: int, transaction_ttl: int) -> bytes:
        """OK only once every replica has the write. A replica that failed to store it (out of
        space...) answers with its code, which the client gets instead (replication.py says
        why we differ from the real server here); at the deadline, TIMEOUT."""
        result = await self.cluster.wait_replicated(replication, deadline)
        if result == ResultCode.OK:
            return outcome.encode(transaction_ttl)
        ns.counters["client_write_timeout" if result == ResultCode.TIMEOUT else "client_write_error"] += 1
        return wm.encode_header_only(result, transaction_ttl=transaction_ttl)

    async def proxied(self, body: bytes, hops: int, deadline: int) -> bytes:
        """Execute a request another node forwarded to us (a FROM_PROXY transaction), against
        the deadline it carries: the client's, not a fresh one."""
        try:
            msg, _end = wm.parse(body)
            reply = self.single(msg, body, hops, deadline)
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
        refuse_unsupported(fields)
        digest = _digest(fields)
        set_name = fields.get(FieldType.SET, b"").decode("utf-8", errors="replace")
        if len(set_name) > MAX_SET_NAME:
            raise AerospikeError(ResultCode.PARAMETER, "set name longer than 63 bytes")
        udf = FieldType.UDF_FUNCTION in fields
        kind = "write" if info2 & Info2.WRITE or udf else "read"
        if kind == "write" and info2 & Info2.DELETE and not ops:
            kind = "delete"
        exp = fields.get(FieldType.FILTER)  # compiled only if a record is there to filter
        try:
            if udf:  # the UDF decides the change, core/write.py makes it
                outcome = self.udf.apply(self, ns, digest, set_name, fields, info2, record_ttl, exp)
            elif kind == "read":
                outcome = self._read(ns, digest, info1, ops, record_ttl, exp, bool(info2 & Info2.RESPOND_ALL_OPS))
            elif kind == "delete":
                outcome = self._delete(ns, digest, info2, generation, exp)
            else:
                outcome = self._write(ns, digest, set_name, fields, info2, info3, generation, record_ttl, ops, exp)
        except AerospikeError as exc:
            ns.counters[_ERROR_COUNTERS[kind]] += 1
            if kind != "read" and exc.code in _FAILURE_COUNTERS:
                ns.counters[_FAILURE_COUNTERS[exc.code]] += 1
            raise
        ns.counters[_RESULT_COUNTERS[kind].get(outcome.result) or _ERROR_COUNTERS[kind]] += 1
        return outcome

    # -- reads ----------------------------------------------------------------------

    def _passes(self, ns: Namespace, exp: bytes, digest: bytes, meta: RecordMeta | RecordImage,
                payload: bytes) -> bool:
        """Whether the live record passes the request's filter expression."""
        view = expressions.RecordView(digest, meta, payload, self.clock.now_ms(), _in_memory(ns))
        return expressions.compile_filter(exp).matches(view)

    def _read(self, ns: Namespace, digest: bytes, info1: int, ops: list[Op], read_touch_pct: int,
              exp: bytes | None = None, respond_all: bool = False) -> Outcome:
        if not info1 & Info1.READ:
            raise AerospikeError(ResultCode.PARAMETER, "request neither reads nor writes")
        if not info1 & (Info1.GET_ALL | Info1.NOBINDATA) and not ops:
            raise AerospikeError(ResultCode.PARAMETER, "a read of no bins")
        if 100 < read_touch_pct != READ_TOUCH_NEVER:
            raise AerospikeError(ResultCode.PARAMETER, f"read-touch-ttl-percent {read_touch_pct}")
        now = self.clock.now_s()
        if info1 & Info1.NOBINDATA and exp is None:
            meta = ns.storage.get_meta(digest, now)
            if meta is None:
                return Outcome(ResultCode.KEY_NOT_FOUND)
            return Outcome(ResultCode.OK, meta.generation, meta.void_time)
        found = ns.storage.get(digest, now)
        if found is None:
            return Outcome(ResultCode.KEY_NOT_FOUND)
        meta, payload = found
        if exp is not None:
            if not self._passes(ns, exp, digest, meta, payload):
                return Outcome(ResultCode.FILTERED_OUT)
            if info1 & Info1.NOBINDATA:
                return Outcome(ResultCode.OK, meta.generation, meta.void_time)
        if read_touch_pct not in (0, READ_TOUCH_NEVER):
            self._read_touch(ns, digest, meta, payload, read_touch_pct)
        if info1 & Info1.GET_ALL:
            # every bin, straight from the stored payload to wire form
            return RawOutcome(meta.generation, meta.void_time, *binops.read_all_ops(payload))
        record_bins, _key = binops.decode_payload(payload)
        out = []
        record, now_ms = None, 0
        for op in ops:
            if op.op == OpType.EXP_READ and record is None:  # what an expression may read besides the bins
                record = RecordImage(digest, meta.generation, meta.void_time, meta.lut, meta.set_name, payload, LIVE)
                now_ms = self.clock.now_ms()
            out.extend(read_answers(record_bins, op, record, now_ms, respond_all))
        return Outcome(ResultCode.OK, meta.generation, meta.void_time, out)

    def _read_touch(self, ns: Namespace, digest: bytes, meta: RecordMeta, payload: bytes, pct: int) -> None:
        """The server's read-touch: a read once `pct`% of the TTL the last write gave has
        passed resets that TTL from now; same generation (a touch the client did not ask
        for must not fail its generation checks), replicated, not waited for (the read's
        reply keeps the old void-time). Only the master touches: a replica serving the read
        leaves it (the real server retries the read on the master instead)."""
        if not meta.void_time or not self.cluster.plane.is_master(ns.name, partition_id(digest)):
            return
        write_ttl = meta.void_time - meta.lut // 1000
        now_ms = self.clock.now_ms()
        if now_ms // 1000 < meta.void_time - write_ttl * pct // 100:
            return
        void_time = now_ms // 1000 + write_ttl
        if void_time <= meta.void_time:
            return
        image = RecordImage(digest, meta.generation, void_time, max(now_ms, meta.lut + 1), meta.set_name, payload, LIVE)
        try:
            self._store(ns, Outcome(ResultCode.OK, image=image))
        except AerospikeError:
            ns.counters["read_touch_error"] += 1
            return
        ns.counters["read_touch_success"] += 1
        self.cluster.start_replication(ns.name, image)

    # -- writes and deletes: core/write.py decides, this stores ---------------------------

    def _filtered_write(self, ns: Namespace, exp: bytes, current: RecordImage | None, info2: int,
                        generation: int) -> bool:
        """Whether a write or delete is filtered out: only an existing record is filtered,
        after the checks the server makes before its filter (generation, create-only)."""
        if current is None or current.tombstone:
            return False
        writes.check_generation(current, info2, generation)
        if info2 & Info2.CREATE_ONLY:
            raise AerospikeError(ResultCode.RECORD_EXISTS, "record exists")
        return not self._passes(ns, exp, current.digest, current, current.payload)

    def _delete(self, ns: Namespace, digest: bytes, info2: int, generation: int, exp: bytes | None = None) -> Outcome:
        current = image_of(ns.storage, digest, self.clock.now_s())
        if exp is not None and self._filtered_write(ns, exp, current, info2, generation):
            return Outcome(ResultCode.FILTERED_OUT)
        request = Message(info2=info2, generation=generation)
        return self._store(ns, writes.delete(current, request, self.clock.now_ms()))

    def _write(self, ns: Namespace, digest: bytes, set_name: str, fields: dict[int, bytes], info2: int,
               info3: int, generation: int, record_ttl: int, ops: list[Op], exp: bytes | None = None) -> Outcome:
        if ns.stop_writes:
            raise AerospikeError(ResultCode.OUT_OF_SPACE, f"namespace {ns.name} is in stop-writes")
        current = image_of(ns.storage, digest, self.clock.now_s())
        if exp is not None and self._filtered_write(ns, exp, current, info2, generation):
            return Outcome(ResultCode.FILTERED_OUT)
        request = Message(info2=info2, info3=info3, generation=generation, record_ttl=record_ttl,
                          fields=fields, ops=ops)
        return self._store(ns, writes.write(current, digest, request, set_name, self.clock.now_ms(),
                                            ns.params["default-ttl"], ns.params["max-record-size"]))

    @staticmethod
    def _store(ns: Namespace, outcome: Outcome) -> Outcome:
        if outcome.image is not None:
            try:  # deletes are allowed under stop-writes, unless not even a tombstone fits
                store(ns.storage, outcome.image)
            except OutOfSpace as exc:
                raise AerospikeError(ResultCode.OUT_OF_SPACE, str(exc)) from None
            except RecordTooBig as exc:
                raise AerospikeError(ResultCode.RECORD_TOO_BIG, str(exc)) from None
        return outcome

    # -- batch ----------------------------------------------------------------------

    def batch(self, msg: Message) -> Reply:
        """Each row is a single-record transaction (routed, proxied, replicated like one)."""
        refuse_unsupported(msg.fields)
        data = msg.fields.get(FieldType.BATCH_INDEX)
        if data is None:
            raise AerospikeError(ResultCode.PARAMETER, "batch request without field 41")
        exp = msg.fields.get(FieldType.FILTER)  # the batch's filter: for each row without its own
        if exp is not None:
            expressions.compile_filter(exp)  # a bad one fails the whole batch
        replies: list = []
        deadline = self.deadline(msg.transaction_ttl)
        for row in parse_rows(data):
            fields = dict(row.fields)
            fields[FieldType.DIGEST] = row.digest
            if exp is not None:
                fields.setdefault(FieldType.FILTER, exp)
            row_msg = Message(info1=row.info1, info2=row.info2, info3=row.info3, generation=row.generation,
                              record_ttl=row.record_ttl, transaction_ttl=msg.transaction_ttl, fields=fields,
                              ops=row.ops)
            try:
                reply = self.single(row_msg, b"", 0, deadline, transaction_ttl=row.index)
            except AerospikeError as exc:
                reply = Outcome(exc.code).encode(transaction_ttl=row.index)
            replies.append(reply if isinstance(reply, bytes) else _as_row(reply, row.index))
        replies.append(wm.encode_header_only(ResultCode.OK, info3=Info3.LAST))
        if all(isinstance(r, bytes) for r in replies):
            return b"".join(replies)
        return _gather(replies)

    # -- scan / query (by secondary index or not) --------------------------------------

    def scan(self, msg: Message) -> Reply:
        if not msg.info1 & Info1.READ:  # a background scan or query: a job (cluster/node/udf_jobs.py)
            return self.jobs.start(msg)
        ns = self._namespace(msg.fields)
        refuse_unsupported(msg.fields)
        if FieldType.UDF_FUNCTION in msg.fields:
            raise AerospikeError(ResultCode.UNSUPPORTED_FEATURE, "UDF aggregations are not implemented")
        for op in msg.ops:
            if op.op != OpType.READ:
                raise AerospikeError(ResultCode.UNSUPPORTED_FEATURE, f"op {op.op} in a scan")
        exp = msg.fields.get(FieldType.FILTER)  # compiled before the first record: a bad one fails the scan
        exp = expressions.compile_filter(exp) if exp is not None else None
        index_query = None
        if has_index_filter(msg.fields):
            index_query = parse_query(msg.fields, msg.fields.get(FieldType.SET, b"").decode(errors="replace"),
                                      ns.sindexes)
        return self._scan_stream(ns, msg, exp, index_query)

    @staticmethod
    def _scan_plan(fields: dict[int, bytes], index_query: bool) -> list[tuple[int, tuple]]:
        """(pid, (digest, bval) to resume after) for each partition the client asked for."""
        pids_raw = fields.get(FieldType.PID_ARRAY)
        plan: dict[int, tuple] = {}
        if pids_raw is not None:
            if len(pids_raw) % 2:
                raise AerospikeError(ResultCode.PARAMETER, "odd-length partition id array")
            for i in range(0, len(pids_raw), 2):
                pid = int.from_bytes(pids_raw[i:i + 2], "little")
                if pid >= N_PARTITIONS:
                    raise AerospikeError(ResultCode.PARAMETER, f"partition id {pid}")
                plan[pid] = (None, None)
        digests_raw = fields.get(FieldType.DIGEST_ARRAY, b"")
        if len(digests_raw) % 20:
            raise AerospikeError(ResultCode.PARAMETER, "digest array not a multiple of 20 bytes")
        bvals = resume_bvals(fields, len(digests_raw) // 20, index_query)
        for i in range(0, len(digests_raw), 20):
            d = digests_raw[i:i + 20]
            plan[partition_id(d)] = (d, bvals[i // 20])
        if pids_raw is None and not digests_raw:
            plan = dict.fromkeys(range(N_PARTITIONS), (None, None))
        return list(plan.items())

    def _scan_stream(self, ns: Namespace, msg: Message, exp: "expressions.Expression | None",
                     index_query: IndexQuery | None) -> Iterator[bytes]:
        fields = msg.fields
        plan = self._scan_plan(fields, index_query is not None)
        set_filter = fields.get(FieldType.SET, b"").decode("utf-8", errors="replace")
        max_raw = fields.get(FieldType.MAX_RECORDS)
        remaining = int.from_bytes(max_raw, "big") if max_raw else None
        no_bins = bool(msg.info1 & Info1.NOBINDATA)
        wanted = {op.name for op in msg.ops if op.name}
        report_done = bool(msg.info3 & Info3.PARTITION_DONE)
        ns_field = ns.name.encode()
        in_memory = _in_memory(ns)
        record_view = expressions.RecordView if exp is not None else None  # once, not per record
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
            now_ms = self.clock.now_ms()
            now = now_ms // 1000
            records = (scan_partition(ns.storage, pid, now, set_filter, after) if index_query is None
                       else query_partition(index_query, ns.storage, pid, now, set_filter, after))
            for digest, meta, payload, bval in records:
                if remaining == 0:
                    break
                if exp is None:
                    record_bins, key = binops.decode_payload(payload)
                else:
                    view = record_view(digest, meta, payload, now_ms, in_memory)
                    if not exp.matches(view):
                        continue
                    record_bins, key = view.bins, view.key
                rfields = {FieldType.NAMESPACE: ns_field, FieldType.DIGEST: digest}
                if meta.set_name:
                    rfields[FieldType.SET] = meta.set_name.encode()
                if key:
                    rfields[FieldType.KEY] = bytes((key[0],)) + key[1]
                if bval is not None:  # where the client resumes this partition
                    rfields[FIELD_BVAL_ARRAY] = bval.to_bytes(8, "little", signed=True)
                ops = [] if no_bins else [o for o in all_bins(record_bins) if not wanted or o.name in wanted]
                if wanted and not ops and not no_bins:
                    continue  # the server leaves out a record that has none of the selected bins
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
