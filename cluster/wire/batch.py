"""Batch-index requests (info1 BATCH, field 41) and their per-row layout.

    u32 n_rows | u8 parent flags | rows...
    row: u32 index | digest[20] | u8 flags, then unless REPEAT:
         u8 info1 | [u8 info2, u8 info3 if HAS_EXTRA_INFO] | [u8 info4 if HAS_INFO4]
         | [u16 generation if HAS_GENERATION] | [u32 record_ttl if HAS_RECORD_TTL]
         | u16 n_fields | u16 n_ops | fields (namespace first, set) | ops
A REPEAT row reuses the previous row's namespace, set, flags and ops.
"""

import struct
from dataclasses import dataclass, field

from .message import Op, encode_fields_and_ops, parse_fields_and_ops
from .result_codes import AerospikeError, ResultCode

REPEAT = 0x01
HAS_EXTRA_INFO = 0x02
HAS_GENERATION = 0x04
HAS_RECORD_TTL = 0x08
HAS_INFO4 = 0x10

_ROW_HEAD = struct.Struct(">I20sB")
_U16_PAIR = struct.Struct(">HH")


@dataclass(slots=True)
class BatchRow:
    index: int
    digest: bytes
    info1: int = 0
    info2: int = 0
    info3: int = 0
    info4: int = 0
    generation: int = 0
    record_ttl: int = 0
    fields: dict[int, bytes] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)


def parse_rows(data: bytes) -> list[BatchRow]:
    if len(data) < 5:
        raise AerospikeError(ResultCode.PARAMETER, "batch field shorter than its header")
    (n_rows,) = struct.unpack_from(">I", data)
    pos = 5
    rows: list[BatchRow] = []
    prev: BatchRow | None = None
    for _ in range(n_rows):
        if len(data) - pos < _ROW_HEAD.size:
            raise AerospikeError(ResultCode.PARAMETER, "truncated batch row")
        index, digest, flags = _ROW_HEAD.unpack_from(data, pos)
        pos += _ROW_HEAD.size
        if flags & REPEAT:
            if prev is None:
                raise AerospikeError(ResultCode.PARAMETER, "first batch row cannot repeat")
            row = BatchRow(index, digest, prev.info1, prev.info2, prev.info3, prev.info4,
                           prev.generation, prev.record_ttl, prev.fields, prev.ops)
        else:
            row, pos = _parse_full_row(data, pos, index, digest, flags)
        rows.append(row)
        prev = row
    return rows


def _parse_full_row(data: bytes, pos: int, index: int, digest: bytes, flags: int) -> tuple[BatchRow, int]:
    def take(fmt: str) -> int:
        nonlocal pos
        width = struct.calcsize(fmt)
        if len(data) - pos < width:
            raise AerospikeError(ResultCode.PARAMETER, "truncated batch row")
        (value,) = struct.unpack_from(fmt, data, pos)
        pos += width
        return value

    row = BatchRow(index, digest, info1=take(">B"))
    if flags & HAS_EXTRA_INFO:
        row.info2, row.info3 = take(">B"), take(">B")
    if flags & HAS_INFO4:
        row.info4 = take(">B")
    if flags & HAS_GENERATION:
        row.generation = take(">H")
    if flags & HAS_RECORD_TTL:
        row.record_ttl = take(">I")
    n_fields, n_ops = take(">H"), take(">H")
    row.fields, row.ops, pos = parse_fields_and_ops(data, pos, n_fields, n_ops)
    return row, pos


def encode_read_rows(rows: list[tuple[int, bytes, int, dict[int, bytes], list[Op]]]) -> bytes:
    """Field-41 data for read rows (index, digest, info1, fields, ops); no REPEAT compression."""
    parts = [struct.pack(">IB", len(rows), 0x0D)]
    for index, digest, info1, fields, ops in rows:
        parts.append(_ROW_HEAD.pack(index, digest, HAS_EXTRA_INFO | HAS_RECORD_TTL))
        parts.append(struct.pack(">BBBI", info1, 0, 0, 0))
        parts.append(_U16_PAIR.pack(len(fields), len(ops)))
        encode_fields_and_ops(parts, fields, ops)
    return b"".join(parts)
