"""AS_MSG (proto type 3): a 22-byte header, then fields, then ops (bins).

    header: size(22) info1 info2 info3 info4 result_code generation(u32) record_ttl(u32)
            transaction_ttl(u32) n_fields(u16) n_ops(u16)
    field:  u32 size (type byte + data) | u8 type | data
    op:     u32 size (4 + name + value) | u8 op | u8 particle | u8 version | u8 name_len | name | value
"""

import struct
from dataclasses import dataclass, field

from . import particles
from .proto import TYPE_MSG, frame
from .result_codes import AerospikeError, ResultCode

HEADER_SIZE = 22
_HEADER = struct.Struct(">BBBBBBIIIHH")
_FIELD_HEAD = struct.Struct(">IB")
_OP_HEAD = struct.Struct(">IBBBB")
_unpack_header, _pack_header = _HEADER.unpack_from, _HEADER.pack
_unpack_field, _pack_field = _FIELD_HEAD.unpack_from, _FIELD_HEAD.pack
_unpack_op, _pack_op = _OP_HEAD.unpack_from, _OP_HEAD.pack


class Info1:
    READ = 0x01
    GET_ALL = 0x02
    SHORT_QUERY = 0x04
    BATCH = 0x08
    NOBINDATA = 0x20
    READ_MODE_AP_ALL = 0x40
    COMPRESS_RESPONSE = 0x80


class Info2:
    WRITE = 0x01
    DELETE = 0x02
    GENERATION = 0x04
    GENERATION_GT = 0x08
    DURABLE_DELETE = 0x10
    CREATE_ONLY = 0x20
    RESPOND_ALL_OPS = 0x80


class Info3:
    LAST = 0x01
    COMMIT_MASTER = 0x02
    PARTITION_DONE = 0x04
    UPDATE_ONLY = 0x08
    CREATE_OR_REPLACE = 0x10
    REPLACE_ONLY = 0x20


class FieldType:
    NAMESPACE = 0
    SET = 1
    KEY = 2
    DIGEST = 4
    TASK_ID = 7
    SOCKET_TIMEOUT = 9
    RPS = 10
    PID_ARRAY = 11
    DIGEST_ARRAY = 12
    MAX_RECORDS = 13
    UDF_PACKAGE_NAME = 30
    UDF_FUNCTION = 31
    UDF_ARGLIST = 32
    FILTER = 43
    BATCH_INDEX = 41


class OpType:
    READ = 1
    WRITE = 2
    CDT_READ = 3
    CDT_MODIFY = 4
    INCR = 5
    EXP_READ = 7
    EXP_MODIFY = 8
    APPEND = 9
    PREPEND = 10
    TOUCH = 11
    BIT_READ = 12
    BIT_MODIFY = 13
    DELETE = 14
    HLL_READ = 15
    HLL_MODIFY = 16


READ_OPS = frozenset({OpType.READ, OpType.CDT_READ, OpType.EXP_READ, OpType.BIT_READ, OpType.HLL_READ})


@dataclass(slots=True)
class Op:
    op: int
    ptype: int
    name: str
    value: bytes = b""


@dataclass(slots=True)
class Message:
    info1: int = 0
    info2: int = 0
    info3: int = 0
    info4: int = 0
    result_code: int = 0
    generation: int = 0
    record_ttl: int = 0
    transaction_ttl: int = 0
    fields: dict[int, bytes] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)


def value_op(op: int, name: str, value: object) -> Op:
    """An op carrying a Python value, e.g. value_op(OpType.WRITE, "bin", 7)."""
    ptype, data = particles.encode(value)
    return Op(op, ptype, name, data)


def _bad(message: str) -> AerospikeError:
    return AerospikeError(ResultCode.PARAMETER, message)


def parse_fields_and_ops(body, pos: int, n_fields: int, n_ops: int) -> tuple[dict[int, bytes], list[Op], int]:
    """Parse `n_fields` fields then `n_ops` ops from `pos`; shared by AS_MSG and batch rows.

    On the node's hot path, so written for CPython's speed: a header running past the end
    is caught as struct.error rather than tested for, and slices of a `bytes` body are
    already bytes (a bytearray or memoryview body has its slices copied to bytes).
    """
    end = len(body)
    copy = type(body) is not bytes
    fields: dict[int, bytes] = {}
    if n_fields:
        unpack_field = _unpack_field
        for _ in range(n_fields):
            try:
                size, ftype = unpack_field(body, pos)
            except struct.error:
                raise _bad("truncated field header") from None
            nxt = pos + 4 + size
            if not size or nxt > end:
                raise _bad(f"field {ftype} of size {size} overruns the message")
            fields[ftype] = bytes(body[pos + 5 : nxt]) if copy else body[pos + 5 : nxt]
            pos = nxt
    ops: list[Op] = []
    if n_ops:
        unpack_op = _unpack_op
        for _ in range(n_ops):
            try:
                size, op, ptype, _version, name_len = unpack_op(body, pos)
            except struct.error:
                raise _bad("truncated op header") from None
            nxt = pos + 4 + size
            if size < 4 + name_len or nxt > end:
                raise _bad(f"op of size {size} overruns the message")
            name_end = pos + 8 + name_len
            try:
                name = str(body[pos + 8 : name_end], "utf-8")
            except UnicodeDecodeError:
                raise _bad("bin name is not UTF-8") from None
            ops.append(Op(op, ptype, name, bytes(body[name_end:nxt]) if copy else body[name_end:nxt]))
            pos = nxt
    return fields, ops, pos


def encode_fields_and_ops(parts: list[bytes], fields: dict[int, bytes], ops: list[Op]) -> None:
    pack_field, pack_op, extend = _pack_field, _pack_op, parts.extend
    for ftype, data in fields.items():
        extend((pack_field(len(data) + 1, ftype), data))
    for op in ops:
        name = op.name.encode("utf-8")
        value = op.value
        extend((pack_op(4 + len(name) + len(value), op.op, op.ptype, 0, len(name)), name, value))


def parse(body: bytes | memoryview, offset: int = 0) -> tuple[Message, int]:
    """Parse one AS_MSG starting at `offset`; return it and the offset just past it."""
    if len(body) - offset < HEADER_SIZE:
        raise _bad("AS_MSG shorter than its header")
    (hsz, i1, i2, i3, i4, rc, gen, ttl, tttl, n_fields, n_ops) = _unpack_header(body, offset)
    if hsz != HEADER_SIZE:
        raise _bad(f"AS_MSG header size {hsz}")
    fields, ops, pos = parse_fields_and_ops(body, offset + HEADER_SIZE, n_fields, n_ops)
    return Message(i1, i2, i3, i4, rc, gen, ttl, tttl, fields, ops), pos


def encode(msg: Message) -> bytes:
    """The AS_MSG bytes (no proto header)."""
    fields, ops = msg.fields, msg.ops
    head = _pack_header(
        HEADER_SIZE, msg.info1, msg.info2, msg.info3, msg.info4, msg.result_code,
        msg.generation & 0xFFFFFFFF, msg.record_ttl & 0xFFFFFFFF, msg.transaction_ttl & 0xFFFFFFFF,
        len(fields), len(ops),
    )
    if not fields and len(ops) == 1:  # a single-bin reply: the common read
        op = ops[0]
        name = op.name.encode("utf-8")
        value = op.value
        return b"".join((head, _pack_op(4 + len(name) + len(value), op.op, op.ptype, 0, len(name)), name, value))
    if not fields and not ops:
        return head
    parts = [head]
    encode_fields_and_ops(parts, fields, ops)
    return b"".join(parts)


def encode_frame(msg: Message) -> bytes:
    return frame(TYPE_MSG, encode(msg))


def encode_header_only(result_code: int, generation: int = 0, void_time: int = 0,
                       info3: int = 0, transaction_ttl: int = 0, n_ops: int = 0) -> bytes:
    """A reply with no fields or ops (writes, deletes, exists and errors), or the header of
    one whose `n_ops` ops the caller appends already encoded (bins.read_all_ops)."""
    return _pack_header(HEADER_SIZE, 0, 0, info3, 0, result_code, generation, void_time,
                        transaction_ttl, 0, n_ops)
