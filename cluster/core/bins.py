"""A record's bins as the node keeps them, and what each write op does to them.

Bins stay in wire form (particle type + value bytes): the node never needs Python
objects for values it only stores and returns, which keeps the hot path cheap. The
storage payload is:

    u8 key_ptype (0 = no stored key) | u32 key_len | key | u16 n_bins
    then per bin: u8 name_len | name | u8 ptype | u32 value_len | value
"""

import struct

from cluster.wire import particles
from cluster.wire.particles import ParticleType
from cluster.wire.result_codes import AerospikeError, ResultCode

MAX_BIN_NAME = 15
Bins = dict[str, tuple[int, bytes]]

_KEY_HEAD = struct.Struct(">BI")
_BIN_VALUE_HEAD = struct.Struct(">BI")
_N_BINS = struct.Struct(">H")
_I64 = struct.Struct(">q")
_F64 = struct.Struct(">d")
_U32 = struct.Struct(">I")
_OP_HEAD = struct.Struct(">IBBBB")  # cluster.wire.message's op header
_OP_READ = 1


_pack_key_head, _unpack_key_head = _KEY_HEAD.pack, _KEY_HEAD.unpack_from
_pack_value_head, _unpack_value_head = _BIN_VALUE_HEAD.pack, _BIN_VALUE_HEAD.unpack_from
_pack_n_bins, _unpack_n_bins = _N_BINS.pack, _N_BINS.unpack_from
_NO_KEY_HEAD = _KEY_HEAD.pack(0, 0)
_NAME_LEN = [bytes((n,)) for n in range(256)]
_NULL = int(ParticleType.NULL)
_GEOJSON = int(ParticleType.GEOJSON)


def encode_payload(bins: Bins, key: tuple[int, bytes] | None) -> bytes:
    if key:
        kt, kv = key
        parts = [_pack_key_head(kt, len(kv)), kv, _pack_n_bins(len(bins))]
    else:
        parts = [_NO_KEY_HEAD, _pack_n_bins(len(bins))]
    extend, name_len = parts.extend, _NAME_LEN
    for name, (ptype, value) in bins.items():
        raw = name.encode()
        extend((name_len[len(raw)], raw, _pack_value_head(ptype, len(value)), value))
    return b"".join(parts)


def decode_payload(payload: bytes) -> tuple[Bins, tuple[int, bytes] | None]:
    kt, klen = _unpack_key_head(payload)
    pos = 5  # _KEY_HEAD.size
    key = (kt, payload[pos : pos + klen]) if kt else None
    pos += klen
    (n_bins,) = _unpack_n_bins(payload, pos)
    pos += 2  # _N_BINS.size
    bins: Bins = {}
    for _ in range(n_bins):
        nlen = payload[pos]
        name = payload[pos + 1 : pos + 1 + nlen].decode()
        pos += 1 + nlen
        ptype, vlen = _unpack_value_head(payload, pos)
        pos += 5  # _BIN_VALUE_HEAD.size
        bins[name] = (ptype, payload[pos : pos + vlen])
        pos += vlen
    return bins, key


def read_all_ops(payload: bytes) -> tuple[int, bytes]:
    """Every bin of a stored payload as READ ops in wire form: (number of ops, their bytes).

    Byte for byte what `message.encode` writes for `Op(READ, ptype, name, value)` of each
    bin `decode_payload` gives, in the same order, without building the bins: a get-all
    read can answer `encode_header_only(..., n_ops=n) + ops` straight from storage.
    """
    (klen,) = _U32.unpack_from(payload, 1)
    pos = 5 + klen
    (n_bins,) = _unpack_n_bins(payload, pos)
    pos += 2
    parts: list[bytes | memoryview] = []
    extend, pack_op = parts.extend, _OP_HEAD.pack
    with memoryview(payload) as view:
        for _ in range(n_bins):
            nlen = payload[pos]
            name_end = pos + 1 + nlen
            ptype, vlen = _unpack_value_head(payload, name_end)
            start = name_end + 5
            extend((pack_op(4 + nlen + vlen, _OP_READ, ptype, 0, nlen), view[pos + 1 : name_end],
                    view[start : start + vlen]))
            pos = start + vlen
        return n_bins, b"".join(parts)


def check_bin_name(name: str) -> None:
    if not name or len(name.encode()) > MAX_BIN_NAME:
        raise AerospikeError(ResultCode.BIN_NAME, f"bin name {name!r} must have 1..{MAX_BIN_NAME} bytes")


def write(bins: Bins, name: str, ptype: int, value: bytes) -> None:
    """WRITE op: a NULL particle removes the bin."""
    # check_bin_name, inlined: an ASCII name's length is its UTF-8 length
    if not name or (len(name) if name.isascii() else len(name.encode())) > MAX_BIN_NAME:
        check_bin_name(name)
    if ptype == _NULL:
        bins.pop(name, None)
        return
    particles.validate(ptype, value)
    if ptype == _GEOJSON:
        check_geojson(value)
    bins[name] = (ptype, value)


def check_geojson(value: bytes) -> None:
    """The server reads a GeoJSON bin when it is written and refuses text it cannot read
    as a point or a region (particle_geojson.c, geojson_from_wire)."""
    from cluster.core.expressions import geo  # the expressions package imports this module

    try:
        geo.parse(geo.json_of_particle(value))
    except geo.GeoError as exc:
        raise AerospikeError(ResultCode.GEO_INVALID_GEOJSON, f"invalid GeoJSON: {exc}") from None


def _create(bins: Bins, name: str, ptype: int, value: bytes) -> bool:
    """A modify op on a missing bin creates it with the op's value, whatever its type (as the
    server does: INCR of a string on a new bin stores the string). True if it did."""
    check_bin_name(name)
    if ptype == _NULL or ptype not in particles.KNOWN_TYPES:
        # the server checks the op's particle type before it looks at the bin (NULL is
        # not a type a value can have: particle.c's safe_particle_type)
        raise AerospikeError(ResultCode.PARAMETER, f"particle type {ptype} cannot modify bin {name!r}")
    if name in bins:
        return False
    particles.validate(ptype, value)
    bins[name] = (ptype, value)
    return True


def incr(bins: Bins, name: str, ptype: int, value: bytes) -> None:
    """INCR op: int + int (wrapping at 64 bits) or float + float."""
    if _create(bins, name, ptype, value):
        return
    current = bins[name]
    if ptype == ParticleType.INTEGER and current[0] == ParticleType.INTEGER:
        delta = particles.decode_int(value)
        total = (particles.decode_int(current[1]) + delta + (1 << 63)) % (1 << 64) - (1 << 63)
        bins[name] = (ptype, _I64.pack(total))
    elif ptype == ParticleType.FLOAT and current[0] == ParticleType.FLOAT:
        bins[name] = (ptype, _F64.pack(particles.decode_float(current[1]) + particles.decode_float(value)))
    else:
        raise AerospikeError(ResultCode.INCOMPATIBLE_TYPE, f"cannot add particle type {ptype} to bin {name!r}")


def concat(bins: Bins, name: str, ptype: int, value: bytes, *, prepend: bool) -> None:
    """APPEND / PREPEND: string to string or blob to blob."""
    if _create(bins, name, ptype, value):
        return
    current = bins[name]
    if current[0] != ptype or (ptype != ParticleType.STRING and ptype not in particles.BLOB_TYPES):
        raise AerospikeError(ResultCode.INCOMPATIBLE_TYPE, f"cannot concatenate particle type {ptype} to bin {name!r}")
    bins[name] = (ptype, value + current[1] if prepend else current[1] + value)
