"""What a client write or delete does to a record: the one rule the node and the simulator share.

Pure: given the record's current copy (`records.image_of`: live, a tombstone, or None), the
request and the clock, it returns the reply (`Outcome`) and, when the record changes, its
new image; storing the image and replicating it is the caller's business. Errors are
raised as AerospikeError with the client's result code.

* generation: 1 on create, +1 on every change, wrapping 65535 → 1; a record re-created over
  a durable tombstone continues the tombstone's generations, so it wins wherever copies
  merge (after a non-durable delete nothing is left: the next create is generation 1);
* last-update-time: max(now, old + 1) — a record's LUT never goes back nor stands still, so
  last-update-time conflict resolution orders two writes of the same millisecond;
* void time from the request's TTL (-1 never, -2 keep, 0 the namespace's default-ttl);
* exists policies (create-only, update-only, replace-only, create-or-replace) and the
  generation checks (EXPECT_GEN_EQUAL / EXPECT_GEN_GT);
* a delete, or a write that leaves no bins, removes the record: with the client's
  durable-delete flag it leaves a durable tombstone one generation on (docs/cluster.md);
  without, an ERASED image, which replication ships and nothing keeps — the server's
  non-durable delete, which a stale copy elsewhere may undo when copies merge.
"""

from cluster.lazy import lazy_import
from cluster.wire import message as wm
from cluster.wire.message import FieldType, Info2, Info3, Message, Op, OpType
from cluster.wire.particles import ParticleType
from cluster.wire.result_codes import AerospikeError, ResultCode

from . import bins as binops
from .records import DURABLE, ERASED, RecordImage

# loaded at the first op that needs them (or by a serving node's warm-up): cluster/lazy.py
cdt = lazy_import("cluster.core.cdt")
expressions = lazy_import("cluster.core.expressions")
hll = lazy_import("cluster.core.hll")

TTL_NEVER_EXPIRE = 0xFFFFFFFF
TTL_DONT_UPDATE = 0xFFFFFFFE
MAX_GENERATION = 0xFFFF
UNSUPPORTED_OPS = frozenset({OpType.BIT_READ, OpType.BIT_MODIFY})
READS = frozenset({OpType.READ, OpType.CDT_READ, OpType.EXP_READ, OpType.HLL_READ})


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


def all_bins(record_bins: binops.Bins) -> list[Op]:
    return [Op(OpType.READ, ptype, name, value) for name, (ptype, value) in record_bins.items()]


def _nil(op: Op) -> Op:
    """The answer of an op that has no value: the op's bin with a NULL particle."""
    return Op(op.op, ParticleType.NULL, op.name)


def read_op(record_bins: binops.Bins, op: Op, record: RecordImage | None = None, now_ms: int = 0) -> list[Op]:
    """The bins one read op returns (a CDT or expression read without a value: a NULL bin).
    `record` (the live copy, None if the write creates it) and the clock are what
    expressions may read besides the bins."""
    if op.op == OpType.CDT_READ:
        return cdt.read(record_bins, op)
    if op.op == OpType.EXP_READ:
        return expressions.read(record_bins, op, record, now_ms)
    if op.op == OpType.HLL_READ:
        return hll.read(record_bins, op) if op.name in record_bins else [_nil(op)]
    if op.op in UNSUPPORTED_OPS:
        raise AerospikeError(ResultCode.UNSUPPORTED_FEATURE, f"op {op.op} is not implemented")
    if op.op != OpType.READ:
        raise AerospikeError(ResultCode.PARAMETER, f"op {op.op} in a read request")
    if not op.name:
        return all_bins(record_bins)
    found = record_bins.get(op.name)
    return [Op(OpType.READ, found[0], op.name, found[1])] if found else []


def write_read_answers(record_bins: binops.Bins, op: Op, record: RecordImage | None, now_ms: int,
                       respond_all: bool) -> list[Op]:
    """What a read op inside a write request answers, as the server's write path does
    (write.c, process_bin_read_op): a read of a missing bin, plain or CDT, answers nothing
    unless the client asked for RESPOND_ALL_OPS (then NULL); a CDT or expression read of
    an existing bin always answers, NULL when it has no value."""
    if op.op in (OpType.READ, OpType.CDT_READ, OpType.HLL_READ) and op.name and op.name not in record_bins:
        return [_nil(op)] if respond_all else []
    return read_op(record_bins, op, record, now_ms)


def read_answers(record_bins: binops.Bins, op: Op, record: RecordImage | None, now_ms: int,
                 respond_all: bool) -> list[Op]:
    """What an op of a read request answers (read.c): as in a write request, but an op
    that found no value answers nothing unless the client asked for RESPOND_ALL_OPS."""
    out = write_read_answers(record_bins, op, record, now_ms, respond_all)
    return out if respond_all else [o for o in out if o.ptype != ParticleType.NULL]


def check_generation(current: RecordImage, info2: int, generation: int) -> None:
    if info2 & Info2.GENERATION and current.generation != generation:
        raise AerospikeError(ResultCode.GENERATION, f"generation is {current.generation}, not {generation}")
    if info2 & Info2.GENERATION_GT and generation <= current.generation:
        raise AerospikeError(ResultCode.GENERATION, f"generation {generation} is not above {current.generation}")


def _next_version(previous: RecordImage | None, now_ms: int) -> tuple[int, int]:
    """(generation, last-update-time) of the record's next copy."""
    if previous is None:
        return 1, now_ms
    return previous.generation % MAX_GENERATION + 1, max(now_ms, previous.lut + 1)


def removal(previous: RecordImage, info2: int, now_ms: int) -> RecordImage:
    """The image of a delete, one generation on: a durable tombstone if the client asked for
    a durable delete (it wins over older copies elsewhere), else an ERASED image (the
    version only orders it against the replicas' copies)."""
    generation, lut = _next_version(previous, now_ms)
    kind = DURABLE if info2 & Info2.DURABLE_DELETE else ERASED
    return RecordImage(previous.digest, generation, 0, lut, previous.set_name, b"", kind)


def delete(current: RecordImage | None, msg: Message, now_ms: int) -> Outcome:
    live = current if current is not None and not current.tombstone else None
    if live is None:
        return Outcome(ResultCode.KEY_NOT_FOUND)
    check_generation(live, msg.info2, msg.generation)
    return Outcome(ResultCode.OK, image=removal(live, msg.info2, now_ms))


def void_time(record_ttl: int, live: RecordImage | None, default_ttl: int, now_s: int) -> int:
    if record_ttl == TTL_NEVER_EXPIRE:
        return 0
    if record_ttl == TTL_DONT_UPDATE and live is not None:
        return live.void_time
    ttl = record_ttl if record_ttl not in (0, TTL_DONT_UPDATE) else default_ttl
    return now_s + ttl if ttl else 0


def write(current: RecordImage | None, digest: bytes, msg: Message, set_name: str, now_ms: int,
          default_ttl: int, max_record_size: int) -> Outcome:
    info2, info3 = msg.info2, msg.info3
    live = current if current is not None and not current.tombstone else None
    if live is not None:
        check_generation(live, info2, msg.generation)
        if info2 & Info2.CREATE_ONLY:
            raise AerospikeError(ResultCode.RECORD_EXISTS, "record exists")
    elif info3 & (Info3.UPDATE_ONLY | Info3.REPLACE_ONLY):
        return Outcome(ResultCode.KEY_NOT_FOUND)

    if live is not None and not info3 & (Info3.CREATE_OR_REPLACE | Info3.REPLACE_ONLY):
        record_bins, stored_key = binops.decode_payload(live.payload)
    else:
        record_bins, stored_key = {}, (binops.decode_payload(live.payload)[1] if live else None)
    respond_all = bool(info2 & Info2.RESPOND_ALL_OPS)
    out: list[Op] = []
    needs_record = not msg.ops  # touch and delete ops answer KEY_NOT_FOUND on a missing record
    for op in msg.ops:
        code = op.op
        if code in READS:
            out.extend(write_read_answers(record_bins, op, live, now_ms, respond_all))
            continue
        if code == OpType.WRITE:
            binops.write(record_bins, op.name, op.ptype, op.value)
        elif code == OpType.INCR:
            binops.incr(record_bins, op.name, op.ptype, op.value)
        elif code in (OpType.APPEND, OpType.PREPEND):
            binops.concat(record_bins, op.name, op.ptype, op.value, prepend=code == OpType.PREPEND)
        elif code == OpType.TOUCH:
            needs_record = True
        elif code == OpType.DELETE:
            needs_record = True
            record_bins.clear()
        elif code == OpType.CDT_MODIFY:
            # a CDT modify without a result (list_set, clear, sort, return type NONE ...)
            # answers nothing unless the client asked for every op's answer
            out.extend(a for a in cdt.modify(record_bins, op) if respond_all or a.ptype != ParticleType.NULL)
            continue
        elif code == OpType.HLL_MODIFY:
            # as a CDT modify: an op without a result (init, set_union, fold) answers nothing
            # unless the client asked for every op's answer
            out.extend(a for a in hll.modify(record_bins, op) if respond_all or a.ptype != ParticleType.NULL)
            continue
        elif code == OpType.EXP_MODIFY:
            expressions.modify(record_bins, op, live, now_ms)
        elif code in UNSUPPORTED_OPS:
            raise AerospikeError(ResultCode.UNSUPPORTED_FEATURE, f"op {code} is not implemented")
        else:
            raise AerospikeError(ResultCode.PARAMETER, f"unknown op {code}")
        if respond_all and code != OpType.TOUCH:
            out.append(_nil(op))

    if not record_bins:
        # A write that leaves no bins deletes the record.
        if live is None:
            return Outcome(ResultCode.KEY_NOT_FOUND if needs_record else ResultCode.OK)
        return Outcome(ResultCode.OK, 0, 0, out, removal(live, info2, now_ms))

    generation, lut = _next_version(current, now_ms)  # over a tombstone too: see the docstring
    expires = void_time(msg.record_ttl, live, default_ttl, now_ms // 1000)
    key = msg.fields.get(FieldType.KEY)
    payload = binops.encode_payload(record_bins, (key[0], key[1:]) if key else stored_key)
    if len(payload) > max_record_size:
        raise AerospikeError(ResultCode.RECORD_TOO_BIG, f"record of {len(payload)} bytes")
    return Outcome(ResultCode.OK, generation, expires, out,
                   RecordImage(digest, generation, expires, lut, set_name, payload, 0))
