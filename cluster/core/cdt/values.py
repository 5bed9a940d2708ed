"""CDT element values: msgpack in and out, and the order the server sorts them in.

Inside a list or map bin every element is msgpack. Strings and blobs are msgpack str
whose first byte is the particle type (0x03 string, 0x04 blob, 0x17 GeoJSON ...); we keep
them as those raw `bytes`, prefix included, because the server compares them that way
(memcmp over prefix + payload, then length). Lists and maps carry their order flags in an
optional leading extension element, which we keep as a `flags` attribute.

The server's cross-type order (cf/include/msgpack_in.h, msgpack_type):
nil < false < true < int < string < list < map < bytes < double < geojson < other ext,
and two comparison-only values: WILDCARD (equal to anything, ends the comparison) and
INF (above everything). Ints and doubles are different types: every int sorts below
every double.
"""

import struct

from cluster.wire.result_codes import AerospikeError, ResultCode

# Flags of the leading extension element (common/as_msgpack_ext.h).
LIST_ORDERED = 0x01
MAP_K_ORDERED = 0x01
MAP_KV_ORDERED = 0x03
MAP_PRESERVE_ORDER = 0x08  # result maps whose pairs stay in the order produced
PERSIST_INDEX = 0x10

STRING_PREFIX = 0x03
BLOB_PREFIX = 0x04
GEOJSON_PREFIX = 0x17


class CdtList(list):
    """A msgpack array with its list flags (LIST_ORDERED or 0)."""

    __slots__ = ("flags",)

    def __init__(self, items=(), flags: int = 0):
        super().__init__(items)
        self.flags = flags

    @property
    def ordered(self) -> bool:
        return bool(self.flags & LIST_ORDERED)


class CdtMap:
    """A msgpack map: its pairs in stored order and its map flags.

    Keys are ints or prefixed bytes (the only map keys the server accepts), so a dict
    keyed by them keeps both the pairs and their order.
    """

    __slots__ = ("items", "flags")

    def __init__(self, items: dict | None = None, flags: int = 0):
        self.items = dict(items or {})
        self.flags = flags

    @property
    def key_ordered(self) -> bool:
        return bool(self.flags & MAP_K_ORDERED)

    def __eq__(self, other):
        return isinstance(other, CdtMap) and list(self.items.items()) == list(other.items.items())

    def __repr__(self):
        return f"CdtMap({self.items!r}, flags={self.flags:#x})"


class _Special:
    """WILDCARD / INF: only ever in op arguments, never stored."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self):
        return self.name


WILDCARD = _Special("WILDCARD")
INF = _Special("INF")


class Ext:
    """Any other msgpack extension value (kept verbatim, sorts after GeoJSON)."""

    __slots__ = ("code", "data")

    def __init__(self, code: int, data: bytes):
        self.code, self.data = code, data

    def __eq__(self, other):
        return isinstance(other, Ext) and (self.code, self.data) == (other.code, other.data)

    def __hash__(self):
        return hash((self.code, self.data))


def bad(message: str) -> AerospikeError:
    return AerospikeError(ResultCode.PARAMETER, message)


# ---------------------------------------------------------------- decoding

_B = struct.Struct(">B")
_H = struct.Struct(">H")
_I = struct.Struct(">I")
_Q = struct.Struct(">Q")
_b = struct.Struct(">b")
_h = struct.Struct(">h")
_i = struct.Struct(">i")
_q = struct.Struct(">q")
_f = struct.Struct(">f")
_d = struct.Struct(">d")

_INTS = {0xcc: _B, 0xcd: _H, 0xce: _I, 0xcf: _Q, 0xd0: _b, 0xd1: _h, 0xd2: _i, 0xd3: _q}
_STR_LEN = {0xc4: _B, 0xc5: _H, 0xc6: _I, 0xd9: _B, 0xda: _H, 0xdb: _I}
_FIXEXT = {0xd4: 1, 0xd5: 2, 0xd6: 4, 0xd7: 8, 0xd8: 16}
_EXT_LEN = {0xc7: _B, 0xc8: _H, 0xc9: _I}


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise bad("truncated msgpack")
        chunk = self.data[self.pos:end]
        self.pos = end
        return bytes(chunk)

    def unpack(self, st: struct.Struct):
        return st.unpack(self.take(st.size))[0]


def _ext(code: int, data: bytes):
    if code == -1 and data == b"\x00":
        return WILDCARD
    if code == -1 and data == b"\x01":
        return INF
    return Ext(code, data)


def _read(r: _Reader):
    b = r.unpack(_B)
    if b <= 0x7f:
        return b
    if b >= 0xe0:
        return b - 0x100
    if 0xa0 <= b <= 0xbf:
        return r.take(b & 0x1f)
    if 0x90 <= b <= 0x9f:
        return _read_array(r, b & 0x0f)
    if 0x80 <= b <= 0x8f:
        return _read_map(r, b & 0x0f)
    if b == 0xc0:
        return None
    if b == 0xc2:
        return False
    if b == 0xc3:
        return True
    if b in _INTS:
        return r.unpack(_INTS[b])
    if b in _STR_LEN:
        return r.take(r.unpack(_STR_LEN[b]))
    if b == 0xca:
        return r.unpack(_f)
    if b == 0xcb:
        return r.unpack(_d)
    if b in (0xdc, 0xdd):
        return _read_array(r, r.unpack(_H if b == 0xdc else _I))
    if b in (0xde, 0xdf):
        return _read_map(r, r.unpack(_H if b == 0xde else _I))
    if b in _FIXEXT:
        code = r.unpack(_b)
        return _ext(code, r.take(_FIXEXT[b]))
    if b in _EXT_LEN:
        n = r.unpack(_EXT_LEN[b])
        code = r.unpack(_b)
        return _ext(code, r.take(n))
    raise bad(f"invalid msgpack byte {b:#x}")


def _read_array(r: _Reader, n: int) -> CdtList:
    out = CdtList()
    for i in range(n):
        item = _read(r)
        if i == 0 and isinstance(item, Ext) and not item.data:
            out.flags = item.code & 0xff  # the list's flags element, not an item
            continue
        out.append(item)
    return out


def _read_map(r: _Reader, n: int) -> CdtMap:
    out = CdtMap()
    for i in range(n):
        key = _read(r)
        value = _read(r)
        if i == 0 and isinstance(key, Ext) and not key.data:
            out.flags = key.code & 0xff  # (ext, nil): the map's flags pair
            continue
        if isinstance(key, (list, CdtMap)):
            raise bad("a map key must be a scalar")
        out.items[key] = value
    return out


def unpack(data: bytes):
    """One msgpack value (the whole buffer)."""
    r = _Reader(data)
    value = _read(r)
    if r.pos != len(data):
        raise bad("trailing bytes after msgpack value")
    return value


# ---------------------------------------------------------------- encoding

def _write(value, out: list) -> None:
    if value is None:
        out.append(b"\xc0")
    elif value is True:
        out.append(b"\xc3")
    elif value is False:
        out.append(b"\xc2")
    elif isinstance(value, int):
        out.append(_pack_int(value))
    elif isinstance(value, float):
        out.append(b"\xcb" + _d.pack(value))
    elif isinstance(value, (bytes, bytearray)):
        n = len(value)
        if n < 32:
            out.append(bytes((0xa0 | n,)))
        elif n < 256:
            out.append(b"\xd9" + _B.pack(n))
        elif n < 65536:
            out.append(b"\xda" + _H.pack(n))
        else:
            out.append(b"\xdb" + _I.pack(n))
        out.append(bytes(value))
    elif isinstance(value, list):
        flags = getattr(value, "flags", 0)
        _container_head(len(value) + (1 if flags else 0), 0x90, 0xdc, out)
        if flags:
            out.append(b"\xc7\x00" + _B.pack(flags))
        for item in value:
            _write(item, out)
    elif isinstance(value, CdtMap):
        _container_head(len(value.items) + (1 if value.flags else 0), 0x80, 0xde, out)
        if value.flags:
            out.append(b"\xc7\x00" + _B.pack(value.flags) + b"\xc0")
        for k, v in value.items.items():
            _write(k, out)
            _write(v, out)
    elif value is WILDCARD:
        out.append(b"\xd4\xff\x00")
    elif value is INF:
        out.append(b"\xd4\xff\x01")
    elif isinstance(value, Ext):
        out.append(b"\xc9" + _I.pack(len(value.data)) + _b.pack(value.code) + value.data)
    else:
        raise TypeError(f"cannot pack {type(value).__name__}")


def _container_head(n: int, fix: int, wide: int, out: list) -> None:
    if n < 16:
        out.append(bytes((fix | n,)))
    elif n < 65536:
        out.append(bytes((wide,)) + _H.pack(n))
    else:
        out.append(bytes((wide + 1,)) + _I.pack(n))


def _pack_int(v: int) -> bytes:
    if 0 <= v <= 0x7f:
        return bytes((v,))
    if -32 <= v < 0:
        return bytes((v + 0x100,))
    if v >= 0:
        for code, st in ((0xcc, _B), (0xcd, _H), (0xce, _I), (0xcf, _Q)):
            if v < 1 << (8 * st.size):
                return bytes((code,)) + st.pack(v)
        raise bad("integer out of range")
    for code, st in ((0xd0, _b), (0xd1, _h), (0xd2, _i), (0xd3, _q)):
        if v >= -(1 << (8 * st.size - 1)):
            return bytes((code,)) + st.pack(v)
    raise bad("integer out of range")


def pack(value) -> bytes:
    out: list[bytes] = []
    _write(value, out)
    return b"".join(out)


# ---------------------------------------------------------------- ordering

def _rank(v) -> int:
    """Position of v's type in the server's order."""
    if v is None:
        return 0
    if v is False:
        return 1
    if v is True:
        return 2
    if isinstance(v, int):
        return 3
    if isinstance(v, bytes):
        prefix = v[0] if v else BLOB_PREFIX
        if prefix == STRING_PREFIX:
            return 4
        if prefix == GEOJSON_PREFIX:
            return 9
        return 7
    if isinstance(v, list):
        return 5
    if isinstance(v, CdtMap):
        return 6
    if isinstance(v, float):
        return 8
    if isinstance(v, Ext):
        return 10
    if v is WILDCARD:
        return 11
    if v is INF:
        return 12
    raise bad(f"cannot order {type(v).__name__}")


def sort_key(v):
    """A Python key ordering stored values as the server does (no WILDCARD inside)."""
    rank = _rank(v)
    if rank in (3, 4, 7, 8, 9):
        return (rank, v)
    if rank == 5:
        return (rank, tuple(sort_key(x) for x in v))
    if rank == 6:
        # maps: size first, then pair by pair in stored order (msgpack_cmp does not sort
        # an unordered map; expressions refuse to compare those, CDT ops do not)
        return (rank, len(v.items), tuple((sort_key(k), sort_key(x)) for k, x in v.items.items()))
    if rank == 10:
        return (rank, v.code, v.data)
    return (rank,)


def compare(a, b) -> int:
    """-1, 0 or 1. A WILDCARD met anywhere (at any depth) makes the rest equal."""
    if a is WILDCARD or b is WILDCARD:
        return 0
    ra, rb = _rank(a), _rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    if ra == 5:
        for x, y in zip(a, b, strict=False):
            c = compare(x, y)
            if c:
                return c
            if x is WILDCARD or y is WILDCARD:
                return 0
        return (len(a) > len(b)) - (len(a) < len(b))
    if ra == 6:
        if len(a.items) != len(b.items):
            return -1 if len(a.items) < len(b.items) else 1
        for pa, pb in zip(a.items.items(), b.items.items(), strict=True):
            for x, y in zip(pa, pb, strict=True):
                c = compare(x, y)
                if c:
                    return c
                if x is WILDCARD or y is WILDCARD:
                    return 0
        return 0
    ka, kb = sort_key(a), sort_key(b)
    return (ka > kb) - (ka < kb)


def has_wildcard(v) -> bool:
    if v is WILDCARD:
        return True
    if isinstance(v, list):
        return any(has_wildcard(x) for x in v)
    if isinstance(v, CdtMap):
        return any(has_wildcard(k) or has_wildcard(x) for k, x in v.items.items())
    return False


def equal(a, b) -> bool:
    return compare(a, b) == 0


def is_storable(v) -> bool:
    """WILDCARD and INF are comparison-only: the server refuses to store them."""
    if v is WILDCARD or v is INF:
        return False
    if isinstance(v, list):
        return all(is_storable(x) for x in v)
    if isinstance(v, CdtMap):
        return all(is_storable(k) and is_storable(x) for k, x in v.items.items())
    return True


def is_map_key(v) -> bool:
    """Map keys: ints, strings and blobs (particle_map.c map_is_key)."""
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True
    return isinstance(v, bytes) and len(v) > 0 and v[0] in (STRING_PREFIX, BLOB_PREFIX)


# ---------------------------------------------------------------- bins and python values

def from_particle(ptype: int, data: bytes):
    """A bin (or result) particle as a CDT value."""
    from cluster.wire.particles import ParticleType as P

    if ptype == P.NULL:
        return None
    if ptype == P.INTEGER:
        return _q.unpack(data)[0] if len(data) == 8 else int.from_bytes(data, "big", signed=True)
    if ptype == P.FLOAT:
        return _d.unpack(data)[0]
    if ptype == P.BOOL:
        return data != b"\x00"
    if ptype in (P.LIST, P.MAP):
        return unpack(data)
    return bytes((ptype,)) + bytes(data)  # strings, blobs, GeoJSON: prefixed bytes


def to_particle(value) -> tuple[int, bytes]:
    """The bin particle that carries a CDT value (as the server answers results)."""
    from cluster.wire.particles import ParticleType as P

    if value is None:
        return P.NULL, b""
    if isinstance(value, bool):
        return P.BOOL, b"\x01" if value else b"\x00"
    if isinstance(value, int):
        return P.INTEGER, _q.pack(value)
    if isinstance(value, float):
        return P.FLOAT, _d.pack(value)
    if isinstance(value, bytes):
        if not value:
            return P.BLOB, b""
        return value[0], value[1:]
    if isinstance(value, list):
        return P.LIST, pack(value)
    if isinstance(value, CdtMap):
        return P.MAP, pack(value)
    raise bad(f"cannot return a {type(value).__name__}")


def from_python(value):
    """A plain Python value (str, bytes, list, dict ...) as a CDT value: handy for tests
    and for callers holding decoded values."""
    if isinstance(value, str):
        return bytes((STRING_PREFIX,)) + value.encode()
    if isinstance(value, (bytes, bytearray)):
        return bytes((BLOB_PREFIX,)) + bytes(value)
    if isinstance(value, CdtList):
        return CdtList((from_python(x) for x in value), value.flags)
    if isinstance(value, (list, tuple)):
        return CdtList(from_python(x) for x in value)
    if isinstance(value, dict):
        return CdtMap({from_python(k): from_python(v) for k, v in value.items()})
    return value


def to_python(value):
    """The inverse of from_python (strings decoded, blobs unprefixed, maps as dicts)."""
    if isinstance(value, bytes):
        if value[:1] == bytes((STRING_PREFIX,)):
            return value[1:].decode("utf-8", errors="replace")
        return value[1:]
    if isinstance(value, list):
        return [to_python(x) for x in value]
    if isinstance(value, CdtMap):
        return {to_python(k): to_python(v) for k, v in value.items.items()}
    return value
