"""List and map values inside expressions: Aerospike's msgpack ordering, membership, map keys/values.

Lists and maps stay msgpack bytes (as bins keep them); only a comparison decodes them. The
order is the server's (cf/src/msgpack_in.c msgpack_cmp): by type first — nil < false < true
< integers < strings < lists < maps < blobs < doubles < GeoJSON < extensions — then by
value; a string or blob compares as its bytes including the particle-type prefix; lists
compare element by element (a shorter prefix is smaller); maps by size, then their pairs
in stored order. A map not flagged key-ordered has no defined order, so comparing one
says so (the caller answers "unknown", as the server does).
"""

import struct

import msgpack

_NIL, _FALSE, _TRUE, _INT, _STRING, _LIST, _MAP, _BYTES, _DOUBLE, _GEOJSON, _EXT = range(11)
_K_ORDERED = 0x01  # map extension flag: keys sorted
_EXT_FIRST_BYTES = frozenset({0xC7, 0xC8, 0xC9, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8})
_DECODE_ERRORS = (ValueError, TypeError, msgpack.UnpackException)


class _Pairs(list):
    """A decoded msgpack map: its (key, value) pairs in stored order (keys may be unhashable)."""


def _decode(data: bytes) -> object:
    return msgpack.unpackb(data, raw=True, strict_map_key=False, object_pairs_hook=_Pairs)


def _bytes_rank(value: bytes) -> int:
    if value[:1] == b"\x03":
        return _STRING
    if value[:1] == b"\x17":
        return _GEOJSON
    return _BYTES  # blobs of every language, and the empty string


def _sort_key(value: object, seen: list) -> tuple:
    """A key ordering decoded values as the server does; `seen` collects unordered maps."""
    if value is None:
        return (_NIL,)
    if value is True or value is False:
        return (_TRUE if value else _FALSE,)
    if isinstance(value, int):
        return (_INT, value)
    if isinstance(value, float):
        return (_DOUBLE, value)
    if isinstance(value, bytes):
        return (_bytes_rank(value), value)
    if isinstance(value, _Pairs):
        pairs = value
        if pairs and isinstance(pairs[0][0], msgpack.ExtType):
            if not pairs[0][0].code & _K_ORDERED:
                seen.append(value)
            pairs = pairs[1:]
        elif pairs:
            seen.append(value)
        keys = [_sort_key(part, seen) for pair in pairs for part in pair]
        return (_MAP, len(pairs), tuple(keys))
    if isinstance(value, list):
        items = value[1:] if value and isinstance(value[0], msgpack.ExtType) else value  # list flags header
        return (_LIST, tuple(_sort_key(item, seen) for item in items))
    return (_EXT, value.code, value.data)  # msgpack.ExtType


def compare(a: bytes, b: bytes) -> int | None:
    """-1, 0 or 1 as the server orders two msgpack values; None if either is malformed or
    holds a map without a defined order."""
    seen: list = []
    try:
        ka, kb = _sort_key(_decode(a), seen), _sort_key(_decode(b), seen)
    except _DECODE_ERRORS:
        return None
    if seen:
        return None
    return (ka > kb) - (ka < kb)


def contains(packed_list: bytes, needle: bytes) -> bool | None:
    """Whether a msgpack list holds an element equal to the msgpack value `needle`; None if
    either is malformed or the first is not a list."""
    seen: list = []
    try:
        items, wanted = _decode(packed_list), _sort_key(_decode(needle), seen)
        if not isinstance(items, list) or isinstance(items, _Pairs):
            return None
        if items and isinstance(items[0], msgpack.ExtType):
            items = items[1:]
        return any(_sort_key(item, seen) == wanted for item in items)
    except _DECODE_ERRORS:
        return None


def map_parts(packed_map: bytes, values: bool) -> bytes | None:
    """A msgpack list of a map's keys (or values), each element's bytes as stored; None if
    `packed_map` is not a map."""
    reader = msgpack.Unpacker(raw=True, strict_map_key=False)
    reader.feed(packed_map)
    try:
        n = reader.read_map_header()
        parts = []
        for i in range(n):
            key_start = reader.tell()
            flags_pair = i == 0 and packed_map[key_start] in _EXT_FIRST_BYTES
            reader.skip()
            value_start = reader.tell()
            reader.skip()
            if not flags_pair:
                parts.append(packed_map[value_start:reader.tell()] if values else packed_map[key_start:value_start])
    except _DECODE_ERRORS + (IndexError,):
        return None
    return _array_header(len(parts)) + b"".join(parts)


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    if n < 0x10000:
        return b"\xdc" + struct.pack(">H", n)
    return b"\xdd" + struct.pack(">I", n)
