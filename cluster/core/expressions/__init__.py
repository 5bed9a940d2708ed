"""Aerospike expressions: filter expressions (field 43) and the expression ops EXP_READ (7)
and EXP_MODIFY (8).

`build` compiles the wire form into closures, once per distinct expression (a small cache
keyed by the bytes: a batch's rows and a scan's records share one compiled filter, and a
client repeating a filter does not pay for compiling it again). `RecordView` is what an
expression sees of a record. The node decides where a filter applies and what a failing
one answers (cluster/node/transactions.py); this package only evaluates.

List and map operations inside expressions run on cluster/core/cdt, HyperLogLog calls on
cluster/core/hll (hll_calls.py), geo comparisons (op 8) on geo.py. Not implemented,
refused with UNSUPPORTED_FEATURE (16): bit calls and what only path selection uses (loop
variables, result_remove).
"""

import struct
from functools import lru_cache

import msgpack

from cluster.core import bins as binops
from cluster.core.bins import Bins
from cluster.core.records import RecordImage
from cluster.wire.message import Op, OpType
from cluster.wire.particles import ParticleType
from cluster.wire.result_codes import AerospikeError, ResultCode

from .build import Builder
from .nodes import BOOL, FLOAT, INT, NIL, PARTICLE_OF, TYPE_NAMES, UNKNOWN, bad
from .record import RecordView

__all__ = ["Expression", "RecordView", "compile_expression", "compile_filter", "modify", "read"]

# EXP_MODIFY / EXP_READ flags (as/include/base/proto.h AS_EXP_FLAG_*)
CREATE_ONLY, UPDATE_ONLY, ALLOW_DELETE, POLICY_NO_FAIL, EVAL_NO_FAIL = 1, 2, 4, 8, 16
_MODIFY_FLAGS = CREATE_ONLY | UPDATE_ONLY | ALLOW_DELETE | POLICY_NO_FAIL | EVAL_NO_FAIL
_MALFORMED = (ValueError, TypeError, IndexError, msgpack.UnpackException, RecursionError)
_I64, _F64 = struct.Struct(">q"), struct.Struct(">d")
_CACHED_BYTES = 4096  # larger expressions are compiled each time rather than kept as cache keys


class Expression:
    __slots__ = ("type", "_run", "_n_slots")

    def __init__(self, run, rtype: int, n_slots: int):
        self.type = rtype
        self._run = run
        self._n_slots = n_slots  # let-variables it defines

    def evaluate(self, record: RecordView) -> object:
        """Its value for this record, or UNKNOWN."""
        if self._n_slots:
            record.vars = [None] * self._n_slots
        return self._run(record)

    def matches(self, record: RecordView) -> bool:
        """A filter lets a record through only on true: false and unknown both filter it out."""
        return self.evaluate(record) is True


def compile_expression(data: bytes) -> Expression:
    """Raises AerospikeError: PARAMETER for a malformed or ill-typed expression,
    UNSUPPORTED_FEATURE for one using what we do not implement."""
    return _cached(data) if len(data) <= _CACHED_BYTES else _compile(data)


@lru_cache(maxsize=256)
def _cached(data: bytes) -> Expression:
    return _compile(data)


def _compile(data: bytes) -> Expression:
    builder = Builder(data)
    try:
        root = builder.compile()
    except _MALFORMED as exc:
        raise bad(f"malformed ({type(exc).__name__}: {exc})") from None
    return Expression(root.run, root.type, builder.n_slots)


def compile_filter(data: bytes) -> Expression:
    expression = compile_expression(bytes(data))
    if expression.type != BOOL:
        raise bad(f"a filter must be a boolean expression, not {TYPE_NAMES[expression.type]}")
    return expression


def _parse_op(op: Op, allowed_flags: int) -> tuple[Expression, int]:
    """An expression op's value: msgpack [expression, flags?]."""
    reader = msgpack.Unpacker(raw=True, strict_map_key=False)
    reader.feed(op.value)
    try:
        n = reader.read_array_header()
        if not 1 <= n <= 2:
            raise bad(f"expression op of {n} elements")
        start = reader.tell()
        reader.skip()
        body = bytes(op.value[start:reader.tell()])
        flags = reader.unpack() if n == 2 else 0
    except _MALFORMED as exc:
        raise bad(f"malformed expression op ({type(exc).__name__}: {exc})") from None
    if type(flags) is not int or flags < 0:
        flags = 0  # the server reads the flags only if they are an unsigned integer
    if flags & ~allowed_flags:
        raise bad(f"expression op flags {flags:#x}")
    return compile_expression(body), flags


def _particle(rtype: int, value: object) -> tuple[int, bytes] | None:
    """The bin an expression value becomes; None for nil."""
    if rtype == INT:
        return ParticleType.INTEGER, _I64.pack(value)
    if rtype == FLOAT:
        return ParticleType.FLOAT, _F64.pack(value)
    if rtype == BOOL:
        return ParticleType.BOOL, b"\x01" if value else b"\x00"
    if rtype == NIL:
        return None
    return PARTICLE_OF[rtype], value  # strings, blobs, HLLs, GeoJSON, lists and maps: already their bytes


def read(record_bins: Bins, op: Op, record: RecordImage | None, now_ms: int) -> list[Op]:
    """An EXP_READ op: the bin named `op.name` holding the expression's value."""
    expression, flags = _parse_op(op, EVAL_NO_FAIL)
    value = expression.evaluate(RecordView.of_write(record_bins, record, now_ms))
    if value is UNKNOWN:
        if not flags & EVAL_NO_FAIL:
            raise AerospikeError(ResultCode.OP_NOT_APPLICABLE, f"expression for {op.name!r} has no value")
        value = None
    particle = _particle(expression.type, value) if value is not None else None
    if particle is None:
        return [Op(OpType.READ, ParticleType.NULL, op.name)]
    return [Op(OpType.READ, particle[0], op.name, particle[1])]


def modify(record_bins: Bins, op: Op, record: RecordImage | None, now_ms: int) -> None:
    """An EXP_MODIFY op: writes the expression's value to the bin `op.name` (as_exp_modify_tr)."""
    expression, flags = _parse_op(op, _MODIFY_FLAGS)
    exists = op.name in record_bins
    if exists and flags & CREATE_ONLY:
        if flags & POLICY_NO_FAIL:
            return
        raise AerospikeError(ResultCode.BIN_EXISTS, f"bin {op.name!r} exists")
    if not exists and flags & UPDATE_ONLY:
        if flags & POLICY_NO_FAIL:
            return
        raise AerospikeError(ResultCode.BIN_NOT_FOUND, f"bin {op.name!r} does not exist")
    value = expression.evaluate(RecordView.of_write(record_bins, record, now_ms))
    if value is UNKNOWN:
        if flags & EVAL_NO_FAIL:
            return
        raise AerospikeError(ResultCode.OP_NOT_APPLICABLE, f"expression for {op.name!r} has no value")
    particle = _particle(expression.type, value) if value is not None else None
    if particle is not None:
        binops.write(record_bins, op.name, *particle)
    elif exists:
        if flags & ALLOW_DELETE:
            del record_bins[op.name]
        elif not flags:  # the server tests `flags && POLICY_NO_FAIL`: any flag lets the bin stay quietly
            raise AerospikeError(ResultCode.OP_NOT_APPLICABLE, f"expression would delete bin {op.name!r}")
