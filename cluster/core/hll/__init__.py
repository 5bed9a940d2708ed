"""HyperLogLog operations: HLL_READ (15) and HLL_MODIFY (16) on a bin, and the HLL calls of
expressions, as the server runs them (particle_hll.c).

An op's value is msgpack `[op code, args...]`: modify ops init 0, add 1, set_union 2,
refresh_count 3, fold 4; read ops get_count 50, get_union 51, get_union_count 52,
get_intersect_count 53, get_similarity 54, describe 55, may_contain 56. The sketch itself
(layout, hash, estimators) is in sketch.py; this module parses ops, applies the flags and
policies and answers as the server does. Errors: a malformed op 4 (PARAMETER), a bin of
another type 12, a stored HLL that is not one 1, create-only on an existing bin 82,
update-only (or refresh_count / fold) on a missing one 17, an op that cannot apply to
this sketch 26 (OP_NOT_APPLICABLE).

Public API for other modules: `read` / `modify` on a record's bins (wire ops), and
`apply_read` / `apply_modify` on a particle's bytes (what expressions call).
"""

import msgpack

from cluster.core.bins import Bins, check_bin_name
from cluster.wire.message import Op
from cluster.wire.particles import ParticleType
from cluster.wire.result_codes import AerospikeError, ResultCode

from . import sketch
from .sketch import Sketch

__all__ = ["read", "modify", "apply_read", "apply_modify"]

CREATE_ONLY, UPDATE_ONLY, NO_FAIL, ALLOW_FOLD = 1, 2, 4, 8
INIT, ADD, SET_UNION, REFRESH_COUNT, FOLD = range(5)
COUNT, GET_UNION, UNION_COUNT, INTERSECT_COUNT, SIMILARITY, DESCRIBE, MAY_CONTAIN = range(50, 57)

# an integer result, a float result ... as (particle type, bytes)
Result = tuple[int, bytes] | None


def _bad(message: str) -> AerospikeError:
    return AerospikeError(ResultCode.PARAMETER, f"hll: {message}")


def _not_applicable(message: str) -> AerospikeError:
    return AerospikeError(ResultCode.OP_NOT_APPLICABLE, f"hll: {message}")


# -- parsing an op ----------------------------------------------------------------------------

class _Request:
    """An op's parsed arguments; None for bits the client left unset (-1 or absent)."""

    def __init__(self):
        self.index_bits: int | None = None
        self.minhash_bits: int | None = None
        self.flags = 0
        self.elements: list[bytes] = []
        self.hlls: list[Sketch] = []


class _Reader:
    def __init__(self, payload: bytes):
        self.data = bytes(payload)
        self.unpacker = msgpack.Unpacker(raw=True, strict_map_key=False)
        self.unpacker.feed(self.data)

    def peek(self) -> int:
        pos = self.unpacker.tell()
        if pos >= len(self.data):
            raise _bad("op ends early")
        return self.data[pos]

    def at_list(self) -> bool:
        first = self.peek()
        return 0x90 <= first <= 0x9F or first in (0xDC, 0xDD)

    def integer(self, what: str) -> int:
        value = self.unpacker.unpack()
        if type(value) is not int:
            raise _bad(f"{what} must be an integer")
        return value

    def list_header(self, what: str) -> int:
        if not self.at_list():
            raise _bad(f"{what} must be a list")
        n = self.unpacker.read_array_header()
        if n == 0:
            raise _bad(f"{what}: empty list")
        return n


_INTEGERS = range(0xCC, 0xD4)  # uint8..uint64, int8..int64
# str / bin headers: (size of the length field, the largest length a shorter header holds)
_STRINGS = {0xC4: (1, 0x1F), 0xD9: (1, 0x1F), 0xC5: (2, 0xFF), 0xDA: (2, 0xFF), 0xC6: (4, 0xFFFF), 0xDB: (4, 0xFFFF)}
_CONTAINERS = frozenset([*range(0x80, 0xA0), 0xDC, 0xDD, 0xDE, 0xDF])


def _compact(raw: bytes) -> bytes:
    """An element's msgpack in the server's compact form (msgpack_compactify), which is what
    it hashes: integers in their shortest encoding, strings and blobs under the shortest
    string header their length allows (a blob header is kept if no shorter one fits)."""
    first = raw[0]
    if first in _INTEGERS:
        return msgpack.packb(msgpack.unpackb(raw))
    if first in _STRINGS:
        head, limit = _STRINGS[first]
        length = int.from_bytes(raw[1:1 + head], "big")
        if length <= limit:
            body = raw[1 + head:]
            if length <= 0x1F:
                return bytes((0xA0 | length,)) + body
            if length <= 0xFF:
                return b"\xd9" + bytes((length,)) + body
            return b"\xda" + length.to_bytes(2, "big") + body
    return raw


def _index_bits(reader: _Reader, req: _Request) -> None:
    n = reader.integer("index bits")
    if n != -1 and not sketch.valid_index_bits(n):
        raise _bad(f"index bits {n} out of range")
    req.index_bits = None if n == -1 else n


def _minhash_bits(reader: _Reader, req: _Request) -> None:
    n = reader.integer("minhash bits")
    if n == -1:
        return
    if not sketch.valid_minhash_bits(n):
        raise _bad(f"minhash bits {n} out of range")
    if req.index_bits is not None and not sketch.valid_bits(req.index_bits, n):
        raise _bad(f"index bits {req.index_bits} and minhash bits {n} above {sketch.MAX_COMBINED_BITS}")
    req.minhash_bits = n


def _flags(reader: _Reader, req: _Request, allowed: int) -> None:
    flags = reader.integer("flags")
    if flags < 0 or flags & ~allowed:
        raise _bad(f"flags {flags:#x}")
    if flags & CREATE_ONLY and flags & UPDATE_ONLY:
        raise _bad("create-only and update-only together")
    req.flags = flags


def _elements(reader: _Reader, req: _Request) -> None:
    data, unpacker, append = reader.data, reader.unpacker, req.elements.append
    for _ in range(reader.list_header("elements")):
        start = unpacker.tell()
        if start >= len(data):
            raise _bad("op ends early")
        first = data[start]
        if first in _CONTAINERS:
            raise _bad("a list or map cannot be added to an HLL")
        unpacker.skip()
        raw = data[start:unpacker.tell()]
        append(_compact(raw) if first in _INTEGERS or first in _STRINGS else raw)


def _hlls(reader: _Reader, req: _Request) -> None:
    """One HLL or a list of them, each a blob (its first byte, the particle type, skipped)."""
    n = reader.list_header("hlls") if reader.at_list() else 1
    for _ in range(n):
        value = reader.unpacker.unpack()
        if not isinstance(value, bytes) or len(value) < sketch.HEADER.size + 1:
            raise _bad("an HLL argument must be an HLL blob")
        data = value[1:]
        flags, index_bits, minhash_bits, _ = sketch.HEADER.unpack_from(data)
        if flags != 0 or not sketch.valid_index_bits(index_bits) or not sketch.valid_minhash_bits(minhash_bits):
            raise _bad(f"HLL argument with flags {flags} bits ({index_bits}, {minhash_bits})")
        if len(data) != sketch.particle_size(index_bits, minhash_bits):
            raise _bad(f"HLL argument of {len(data)} bytes")
        req.hlls.append(Sketch.decode(data))


def _hlls_intersect(reader: _Reader, req: _Request) -> None:
    """More than two HLLs can be intersected only through their (equal, nonzero) minhash bits."""
    _hlls(reader, req)
    if len(req.hlls) > 2:
        bits = {h.minhash_bits for h in req.hlls}
        if len(bits) != 1 or 0 in bits:
            raise _bad("intersecting more than 2 HLLs needs equal, nonzero minhash bits")


def _flag_parser(allowed: int):
    return lambda reader, req: _flags(reader, req, allowed)


# code: (name, fewest args, most args, the parser of each argument in order)
_MODIFY_OPS = {
    INIT: ("init", 0, 3, (_index_bits, _minhash_bits, _flag_parser(CREATE_ONLY | UPDATE_ONLY | NO_FAIL))),
    ADD: ("add", 1, 4, (_elements, _index_bits, _minhash_bits, _flag_parser(CREATE_ONLY | NO_FAIL))),
    SET_UNION: ("set_union", 1, 2, (_hlls, _flag_parser(CREATE_ONLY | UPDATE_ONLY | ALLOW_FOLD | NO_FAIL))),
    REFRESH_COUNT: ("refresh_count", 0, 0, ()),
    FOLD: ("fold", 1, 1, (_index_bits,)),
}
_READ_OPS = {
    COUNT: ("get_count", 0, 0, ()),
    GET_UNION: ("get_union", 1, 1, (_hlls,)),
    UNION_COUNT: ("get_union_count", 1, 1, (_hlls,)),
    INTERSECT_COUNT: ("get_intersect_count", 1, 1, (_hlls_intersect,)),
    SIMILARITY: ("get_similarity", 1, 1, (_hlls_intersect,)),
    DESCRIBE: ("describe", 0, 0, ()),
    MAY_CONTAIN: ("may_contain", 1, 1, (_elements,)),
}


def _parse(payload: bytes, table: dict) -> tuple[int, _Request]:
    reader = _Reader(payload)
    try:
        n = reader.list_header("an HLL op")
        code = reader.integer("op code")
        if code not in table:
            raise _bad(f"op {code} is not a {'modify' if table is _MODIFY_OPS else 'read'} op")
        name, fewest, most, parsers = table[code]
        if not fewest <= n - 1 <= most:
            raise _bad(f"{name} takes {fewest}..{most} arguments, not {n - 1}")
        req = _Request()
        for parse in parsers[:n - 1]:
            parse(reader, req)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise _bad(f"malformed op ({type(exc).__name__}: {exc})") from None
    return code, req


def _stored(particle: bytes) -> Sketch:
    if not sketch.is_valid_particle(particle):
        raise AerospikeError(ResultCode.UNKNOWN, "hll: the bin holds a corrupt HLL")
    return Sketch.decode(particle)


def _int(value: int) -> Result:
    return ParticleType.INTEGER, (value & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")


# -- modify -----------------------------------------------------------------------------------

def apply_modify(particle: bytes | None, payload: bytes) -> tuple[bytes | None, Result]:
    """Run an HLL modify op on an HLL particle (None: no bin). Returns (the new particle, or
    None when the op left the bin alone, the op's result or None)."""
    code, req = _parse(payload, _MODIFY_OPS)
    old = _stored(particle) if particle is not None else None
    if old is not None and req.flags & CREATE_ONLY:
        if req.flags & NO_FAIL:
            return None, None
        raise AerospikeError(ResultCode.BIN_EXISTS, "hll: create-only on an existing bin")
    if old is None and req.flags & UPDATE_ONLY:
        if req.flags & NO_FAIL:
            return None, None
        raise AerospikeError(ResultCode.BIN_NOT_FOUND, "hll: update-only on a missing bin")
    new, result = _MODIFIERS[code](req, old)
    return new.encode(), result


def _new_bits(req: _Request, old: Sketch | None, what: str) -> tuple[int, int]:
    """The bits of a sketch an init or add creates, or (init only) re-creates."""
    if old is None:
        if req.index_bits is None:
            raise _not_applicable(f"{what} cannot create an HLL without index bits")
        return req.index_bits, req.minhash_bits or 0
    index_bits = old.index_bits if req.index_bits is None else req.index_bits
    minhash_bits = old.minhash_bits if req.minhash_bits is None else req.minhash_bits
    if not sketch.valid_bits(index_bits, minhash_bits):
        raise _not_applicable(f"bits ({index_bits}, {minhash_bits})")
    return index_bits, minhash_bits


def _init(req: _Request, old: Sketch | None):
    return Sketch(*_new_bits(req, old, "init")), None


def _add(req: _Request, old: Sketch | None):
    # an existing sketch keeps its bits whatever the op asks
    target = old.copy() if old is not None else Sketch(*_new_bits(req, None, "add"))
    return target, _int(target.add_all(req.elements))


def _set_union(req: _Request, old: Sketch | None):
    if old is not None and not req.flags & ALLOW_FOLD:
        index_bits, minhash_bits = sketch.template(req.hlls)
        if old.index_bits > index_bits:
            raise _not_applicable("set_union would reduce index bits (allow-fold not set)")
        if old.minhash_bits not in (0, minhash_bits):
            raise _not_applicable("set_union would drop minhash bits (allow-fold not set)")
    return sketch.union(req.hlls + ([old] if old is not None else [])), None


def _refresh_count(req: _Request, old: Sketch | None):
    if old is None:
        raise AerospikeError(ResultCode.BIN_NOT_FOUND, "hll: refresh_count of a missing bin")
    target = old.copy()
    target.cache = target.count()
    return target, _int(target.cache)


def _fold(req: _Request, old: Sketch | None):
    if old is None:
        raise AerospikeError(ResultCode.BIN_NOT_FOUND, "hll: fold of a missing bin")
    if old.minhash_bits:
        raise _not_applicable("cannot fold an HLL with minhash bits")
    if req.index_bits is None or old.index_bits < req.index_bits:
        raise _not_applicable(f"cannot fold {old.index_bits} index bits to {req.index_bits}")
    if req.index_bits == old.index_bits:
        return old.copy(), None  # as it was, cached count included
    folded = Sketch(req.index_bits, 0)
    sketch.union_into(folded, old)
    return folded, None


_MODIFIERS = {INIT: _init, ADD: _add, SET_UNION: _set_union, REFRESH_COUNT: _refresh_count, FOLD: _fold}


# -- read -------------------------------------------------------------------------------------

def apply_read(particle: bytes, payload: bytes) -> Result:
    """Run an HLL read op on an HLL particle: its result as (particle type, bytes)."""
    code, req = _parse(payload, _READ_OPS)
    hll = _stored(particle)
    if code == COUNT:
        return _int(hll.count())
    if code == DESCRIBE:
        return ParticleType.LIST, msgpack.packb([hll.index_bits, hll.minhash_bits])
    if code == MAY_CONTAIN:
        return _int(int(all(hll.may_contain(e) for e in req.elements)))
    if code in (INTERSECT_COUNT, SIMILARITY) and len(req.hlls) > 2:
        if hll.minhash_bits == 0 or hll.minhash_bits != req.hlls[0].minhash_bits:
            raise _not_applicable("intersecting more than 2 HLLs with this bin needs its minhash bits")
    every = req.hlls + [hll]
    if code == GET_UNION:
        return ParticleType.HLL, sketch.union(every).encode()
    if code == UNION_COUNT:
        return _int(sketch.union_count(every))
    if code == INTERSECT_COUNT:
        return _int(sketch.intersect_count(every))
    return ParticleType.FLOAT, sketch.F64.pack(sketch.similarity(every))


# -- on a record's bins -----------------------------------------------------------------------

def _answer(op: Op, result: Result) -> list[Op]:
    if result is None:
        return [Op(op.op, ParticleType.NULL, op.name, b"")]
    return [Op(op.op, result[0], op.name, result[1])]


def _bin_particle(record_bins: Bins, name: str) -> bytes | None:
    found = record_bins.get(name)
    if found is None:
        return None
    if found[0] != ParticleType.HLL:
        raise AerospikeError(ResultCode.INCOMPATIBLE_TYPE, f"bin {name!r} holds particle type {found[0]}, not an HLL")
    return found[1]


def read(record_bins: Bins, op: Op) -> list[Op]:
    """An HLL_READ op on an existing bin (the caller answers for a missing one)."""
    return _answer(op, apply_read(_bin_particle(record_bins, op.name), op.value))


def modify(record_bins: Bins, op: Op) -> list[Op]:
    """An HLL_MODIFY op: changes `record_bins` in place, returns the bins it answers with."""
    check_bin_name(op.name)
    new, result = apply_modify(_bin_particle(record_bins, op.name), op.value)
    if new is not None:
        record_bins[op.name] = (ParticleType.HLL, new)
    return _answer(op, result)
