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


def encode_payload(bins: Bins, key: tuple[int, bytes] | None) -> bytes:
    kt, kv = key if key else (0, b"")
    parts = [_KEY_HEAD.pack(kt, len(kv)), kv, _N_BINS.pack(len(bins))]
    for name, (ptype, value) in bins.items():
        raw = name.encode()
        parts += [bytes((len(raw),)), raw, _BIN_VALUE_HEAD.pack(ptype, len(value)), value]
    return b"".join(parts)


def decode_payload(payload: bytes) -> tuple[Bins, tuple[int, bytes] | None]:
    kt, klen = _KEY_HEAD.unpack_from(payload)
    pos = _KEY_HEAD.size
    key = (kt, payload[pos : pos + klen]) if kt else None
    pos += klen
    (n_bins,) = _N_BINS.unpack_from(payload, pos)
    pos += _N_BINS.size
    bins: Bins = {}
    for _ in range(n_bins):
        nlen = payload[pos]
        name = payload[pos + 1 : pos + 1 + nlen].decode()
        pos += 1 + nlen
        ptype, vlen = _BIN_VALUE_HEAD.unpack_from(payload, pos)
        pos += _BIN_VALUE_HEAD.size
        bins[name] = (ptype, payload[pos : pos + vlen])
        pos += vlen
    return bins, key


def check_bin_name(name: str) -> None:
    if not name or len(name.encode()) > MAX_BIN_NAME:
        raise AerospikeError(ResultCode.BIN_NAME, f"bin name {name!r} must have 1..{MAX_BIN_NAME} bytes")


def write(bins: Bins, name: str, ptype: int, value: bytes) -> None:
    """WRITE op: a NULL particle removes the bin."""
    check_bin_name(name)
    if ptype == ParticleType.NULL:
        bins.pop(name, None)
        return
    particles.validate(ptype, value)
    bins[name] = (ptype, value)


def incr(bins: Bins, name: str, ptype: int, value: bytes) -> None:
    """INCR op: int + int (wrapping at 64 bits) or float + float; a missing bin is created."""
    check_bin_name(name)
    if ptype == ParticleType.INTEGER:
        delta = particles.decode_int(value)
        current = bins.get(name)
        if current is None:
            bins[name] = (ptype, _I64.pack(delta))
        elif current[0] == ParticleType.INTEGER:
            total = (particles.decode_int(current[1]) + delta + (1 << 63)) % (1 << 64) - (1 << 63)
            bins[name] = (ptype, _I64.pack(total))
        else:
            raise AerospikeError(ResultCode.INCOMPATIBLE_TYPE, f"cannot add an integer to bin {name!r}")
    elif ptype == ParticleType.FLOAT:
        delta = particles.decode_float(value)
        current = bins.get(name)
        if current is None:
            bins[name] = (ptype, _F64.pack(delta))
        elif current[0] == ParticleType.FLOAT:
            bins[name] = (ptype, _F64.pack(particles.decode_float(current[1]) + delta))
        else:
            raise AerospikeError(ResultCode.INCOMPATIBLE_TYPE, f"cannot add a float to bin {name!r}")
    else:
        raise AerospikeError(ResultCode.INCOMPATIBLE_TYPE, "increment needs an integer or float")


def concat(bins: Bins, name: str, ptype: int, value: bytes, *, prepend: bool) -> None:
    """APPEND / PREPEND: string to string or blob to blob; a missing bin is created."""
    check_bin_name(name)
    if ptype != ParticleType.STRING and ptype not in particles.BLOB_TYPES:
        raise AerospikeError(ResultCode.INCOMPATIBLE_TYPE, "append/prepend needs a string or blob")
    current = bins.get(name)
    if current is None:
        bins[name] = (ptype, value)
    elif current[0] != ptype:
        raise AerospikeError(ResultCode.INCOMPATIBLE_TYPE, f"bin {name!r} holds another type")
    else:
        bins[name] = (ptype, value + current[1] if prepend else current[1] + value)

