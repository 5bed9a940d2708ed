"""Particles: how a bin value is typed and laid out on the wire.

Scalars are fixed encodings (integers and doubles 8 bytes big-endian). Lists and maps are
msgpack in which every string or blob carries its particle type as a one-byte prefix, as
the official clients write them (0x03 + UTF-8 for strings, 0x04 + bytes for blobs).
"""

import struct
from enum import IntEnum

import msgpack

from .result_codes import AerospikeError, ResultCode


class ParticleType(IntEnum):
    NULL = 0
    INTEGER = 1
    FLOAT = 2
    STRING = 3
    BLOB = 4
    JAVA_BLOB = 7
    CSHARP_BLOB = 8
    PYTHON_BLOB = 9
    RUBY_BLOB = 10
    PHP_BLOB = 11
    ERLANG_BLOB = 12
    BOOL = 17
    HLL = 18
    MAP = 19
    LIST = 20
    GEOJSON = 23


BLOB_TYPES = frozenset({4, 7, 8, 9, 10, 11, 12, 18})
KNOWN_TYPES = frozenset(int(t) for t in ParticleType)
# known types whose bytes `validate` accepts as they are
_OPAQUE_TYPES = KNOWN_TYPES - {ParticleType.INTEGER, ParticleType.FLOAT, ParticleType.BOOL,
                               ParticleType.LIST, ParticleType.MAP}

_I64 = struct.Struct(">q")
_F64 = struct.Struct(">d")


def _to_msgpack_tree(value: object) -> object:
    if isinstance(value, str):
        return b"\x03" + value.encode("utf-8")
    if isinstance(value, bytes | bytearray):
        return b"\x04" + bytes(value)
    if isinstance(value, list | tuple):
        return [_to_msgpack_tree(v) for v in value]
    if isinstance(value, dict):
        return {_to_msgpack_tree(k): _to_msgpack_tree(v) for k, v in value.items()}
    return value


def _from_msgpack_tree(value: object) -> object:
    if isinstance(value, bytes):
        if value[:1] == b"\x03":
            return value[1:].decode("utf-8", errors="replace")
        return value[1:]
    if isinstance(value, list):
        # An ordered list (list operations) starts with an empty extension carrying flags.
        if value and isinstance(value[0], msgpack.ExtType) and not value[0].data:
            value = value[1:]
        return [_from_msgpack_tree(v) for v in value]
    if isinstance(value, dict):
        # A key-ordered map starts with an (extension, nil) pair that only carries flags.
        return {
            _from_msgpack_tree(k): _from_msgpack_tree(v)
            for k, v in value.items()
            if not isinstance(k, msgpack.ExtType)
        }
    return value


def _pack_msgpack(value: object) -> bytes:
    return msgpack.packb(_to_msgpack_tree(value), use_bin_type=False)


def _unpack_msgpack(data: bytes) -> object:
    def hashable(pairs):
        return {(tuple(k) if isinstance(k, list) else k): v for k, v in pairs}

    tree = msgpack.unpackb(data, raw=True, strict_map_key=False, object_pairs_hook=hashable)
    return _from_msgpack_tree(tree)


def encode(value: object) -> tuple[int, bytes]:
    """(particle type, value bytes) for a Python bin value."""
    if value is None:
        return ParticleType.NULL, b""
    if isinstance(value, bool):
        return ParticleType.BOOL, b"\x01" if value else b"\x00"
    if isinstance(value, int):
        return ParticleType.INTEGER, _I64.pack(value)
    if isinstance(value, float):
        return ParticleType.FLOAT, _F64.pack(value)
    if isinstance(value, str):
        return ParticleType.STRING, value.encode("utf-8")
    if isinstance(value, bytes | bytearray | memoryview):
        return ParticleType.BLOB, bytes(value)
    if isinstance(value, list | tuple):
        return ParticleType.LIST, _pack_msgpack(list(value))
    if isinstance(value, dict):
        return ParticleType.MAP, _pack_msgpack(value)
    raise TypeError(f"cannot store a {type(value).__name__} as a bin value")


def decode_int(data: bytes) -> int:
    """Integers are 8 bytes big-endian; shorter legacy widths are accepted."""
    if len(data) == 8:
        return _I64.unpack(data)[0]
    if len(data) in (1, 2, 4):
        return int.from_bytes(data, "big", signed=True)
    raise AerospikeError(ResultCode.PARAMETER, f"integer particle of {len(data)} bytes")


def decode_float(data: bytes) -> float:
    if len(data) != 8:
        raise AerospikeError(ResultCode.PARAMETER, f"float particle of {len(data)} bytes")
    return _F64.unpack(data)[0]


def decode(ptype: int, data: bytes) -> object:
    """Python value of a particle; raises AerospikeError(PARAMETER) on malformed values."""
    if ptype == ParticleType.NULL:
        return None
    if ptype == ParticleType.INTEGER:
        return decode_int(data)
    if ptype == ParticleType.FLOAT:
        return decode_float(data)
    if ptype == ParticleType.STRING:
        return data.decode("utf-8", errors="replace")
    if ptype == ParticleType.BOOL:
        return data != b"\x00"
    if ptype in (ParticleType.LIST, ParticleType.MAP):
        try:
            return _unpack_msgpack(data)
        except Exception as exc:  # msgpack raises several unrelated types
            raise AerospikeError(ResultCode.PARAMETER, f"bad msgpack particle: {exc}") from None
    if ptype in BLOB_TYPES or ptype == ParticleType.GEOJSON:
        return bytes(data)
    raise AerospikeError(ResultCode.PARAMETER, f"unknown particle type {ptype}")


def validate(ptype: int, data: bytes) -> None:
    """Check a value the node is asked to store, without building Python objects for it."""
    if ptype in _OPAQUE_TYPES:  # strings, blobs, GeoJSON: any bytes are accepted
        return
    if ptype == ParticleType.INTEGER:
        decode_int(data)
    elif ptype == ParticleType.FLOAT:
        decode_float(data)
    elif ptype == ParticleType.BOOL:
        if len(data) != 1:
            raise AerospikeError(ResultCode.PARAMETER, f"bool particle of {len(data)} bytes")
    elif ptype in (ParticleType.LIST, ParticleType.MAP):
        decode(ptype, data)
    elif ptype not in KNOWN_TYPES:
        raise AerospikeError(ResultCode.PARAMETER, f"unknown particle type {ptype}")
