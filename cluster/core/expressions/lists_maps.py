"""Lists and maps in expressions: comparing them, membership, map keys/values, and list/map
operations called from an expression (op 127 with the CDT system), all on cluster/core/cdt.
Calls of the HyperLogLog system go on to hll_calls.py.

Lists and maps stay msgpack bytes in an expression (as bins keep them) and are decoded to
CDT values only for these. Their order is the server's CDT order (cdt/values.py); a map
not flagged key-ordered has no order to compare by, so comparing one is UNKNOWN, as on
the server (exp.c cmp_msgpack).
"""

from cluster.core import cdt
from cluster.core.cdt import values as cdt_values
from cluster.core.expressions.nodes import (
    LIST,
    MAP,
    NIL,
    PARTICLE_OF,
    TYPE_NAMES,
    UNKNOWN,
    Node,
    bad,
    decode_particle,
    to_msgpack,
    unsupported,
)
from cluster.wire.particles import ParticleType
from cluster.wire.result_codes import AerospikeError

CDT_SYSTEM, MODIFY_LOCAL = 0, 0x40  # a call's system, and its flag for "modify a copy"
HLL_SYSTEM = 2  # HyperLogLog calls: hll_calls.py
_OTHER_SYSTEMS = {1: "bit calls"}  # the server's, which we do not implement
CONTEXT_EVAL = 0xFF  # [0xff, context, [op, args...]]: the op applies inside the bin
SELECT = 0xFE  # path selection: [0xfe, context, flags, modify-expression?]


def _unordered(value) -> bool:
    if isinstance(value, cdt_values.CdtMap):
        return (bool(value.items) and not value.key_ordered) or any(
            _unordered(k) or _unordered(v) for k, v in value.items.items())
    return isinstance(value, list) and any(_unordered(item) for item in value)


def compare(a: bytes, b: bytes) -> int | None:
    """-1, 0 or 1; None if either is malformed or holds a map with no defined order."""
    try:
        va, vb = cdt_values.unpack(a), cdt_values.unpack(b)
    except AerospikeError:
        return None
    if _unordered(va) or _unordered(vb):
        return None
    return cdt_values.compare(va, vb)


def contains(packed_list: bytes, needle: bytes) -> bool | None:
    """Whether a msgpack list holds an element equal to `needle`; None if it is not a list."""
    try:
        items, wanted = cdt_values.unpack(packed_list), cdt_values.unpack(needle)
    except AerospikeError:
        return None
    if not isinstance(items, list):
        return None
    return any(cdt_values.equal(item, wanted) for item in items)


def map_parts(packed_map: bytes, values: bool) -> bytes | None:
    """A msgpack list of a map's keys (or values); None if it is not a map."""
    try:
        found = cdt_values.unpack(packed_map)
    except AerospikeError:
        return None
    if not isinstance(found, cdt_values.CdtMap):
        return None
    return cdt_values.pack(cdt_values.CdtList(found.items.values() if values else found.items.keys()))


def build_call(b, code: int, n: int) -> Node:
    """[127, result type, system, op, bin]: a list/map op on the value `bin` yields.

    `op` is the CDT op as a CDT_READ/CDT_MODIFY op carries it, except that an argument
    written as a list is an expression evaluated for each record (list constants are
    quoted). A read yields the op's result, which must be of the declared type; with
    MODIFY_LOCAL the op modifies a copy and the call yields the modified list or map.
    """
    if n != 4:
        raise bad(f"call takes 4 arguments, not {n}")
    rtype, system = b.integer("call result type"), b.integer("call system")
    if not 0 <= rtype < len(TYPE_NAMES):
        raise bad(f"call result type {rtype}")
    if system & ~MODIFY_LOCAL in _OTHER_SYSTEMS:
        raise unsupported(_OTHER_SYSTEMS[system & ~MODIFY_LOCAL])
    if system & ~MODIFY_LOCAL == HLL_SYSTEM:
        from cluster.core.expressions import hll_calls  # it builds on this module

        return hll_calls.build(b, rtype, bool(system & MODIFY_LOCAL))
    if system & ~MODIFY_LOCAL != CDT_SYSTEM:
        raise bad(f"call system {system}")  # e.g. the string calls of newer clients: unknown to server 8.1
    op_bytes = call_op(b)
    target = b.next()
    if target.type not in (NIL, LIST, MAP):
        raise bad(f"call on a {TYPE_NAMES[target.type]}")
    modify = bool(system & MODIFY_LOCAL)
    ptype, target_run, target_ptype = PARTICLE_OF[rtype], target.run, PARTICLE_OF[target.type]

    def call(rec):
        payload = op_bytes(rec)
        if payload is UNKNOWN:
            return UNKNOWN
        container = target_run(rec)
        if container is UNKNOWN:
            return UNKNOWN
        try:
            op_code, args, ctx = cdt.decode_request(payload)
            value = cdt_values.from_particle(target_ptype, container) if container is not None else None
            if modify:
                result, _answer = cdt.apply_modify(value, op_code, args, ctx)
            elif value is None:
                return UNKNOWN
            else:
                result = cdt.apply_read(value, op_code, args, ctx)
            answered = (ParticleType.NULL, b"") if result is cdt.NO_RESULT else cdt_values.to_particle(result)
        except AerospikeError:  # the op failed on this value: the server's call is unknown then
            return UNKNOWN
        if answered[0] != ptype:
            return UNKNOWN
        return None if rtype == NIL else decode_particle(rtype, answered[1])
    return Node(call, rtype)


def call_op(b):
    """Compile a call's op (a CDT or HLL op whose arguments may be expressions) into a
    function of the record giving the op's bytes, or UNKNOWN when an argument is unknown."""
    head, pieces = _call_op(b)

    def op_bytes(rec):
        parts = [head]
        for piece in pieces:
            if type(piece) is bytes:
                parts.append(piece)
                continue
            value = piece.run(rec)
            if value is UNKNOWN:
                return UNKNOWN
            parts.append(to_msgpack(piece.type, value))
        return b"".join(parts)
    return op_bytes


def _call_op(b) -> tuple[bytes, list]:
    """The call's op: the bytes up to its first argument, then each argument as its bytes
    or, for an expression, its compiled node."""
    reader = b.reader
    start = reader.tell()
    n = reader.read_array_header()
    if n == 0:
        raise bad("empty call op")
    op_code = b.integer("call op code")
    if op_code == SELECT:
        raise unsupported("path selection (select/modify by path)")
    if op_code == CONTEXT_EVAL:
        if n != 3:
            raise bad("a context call is [0xff, context, [op, args...]]")
        b.raw()  # the context: constants only
        n = reader.read_array_header()
        if n == 0:
            raise bad("empty call op")
        b.integer("call op code")
    head = b.data[start:reader.tell()]
    pieces: list = []
    for _ in range(n - 1):
        if b.at_list():
            pieces.append(b.next())
        else:
            pieces.append(b.raw())
    return head, pieces
