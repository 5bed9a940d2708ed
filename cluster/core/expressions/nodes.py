"""What every part of the expression compiler shares: result types, UNKNOWN, compiled nodes,
the errors a bad expression gets, and how values map to particles and msgpack.

Values at run time: nil None, bool, int (64-bit, wrapping like the server's C), float,
and bytes for strings (UTF-8, no prefix), blobs, HyperLogLogs and GeoJSON (the bin's particle bytes),
lists and maps (msgpack, as bins keep them).
"""

import logging
from collections.abc import Callable
from typing import NamedTuple

import msgpack

from cluster.core.expressions.record import RecordView
from cluster.wire import particles
from cluster.wire.particles import ParticleType
from cluster.wire.result_codes import AerospikeError, ResultCode

log = logging.getLogger("cluster.core.expressions")


class _Unknown:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()

# result types, numbered as on the wire (the client's as_exp_type)
NIL, BOOL, INT, STR, LIST, MAP, BLOB, FLOAT, GEO, HLL = range(10)
TYPE_NAMES = ("nil", "bool", "int", "str", "list", "map", "blob", "float", "geojson", "hll")
# the particle type a bin must have to be read as each result type
PARTICLE_OF = {NIL: ParticleType.NULL, BOOL: ParticleType.BOOL, INT: ParticleType.INTEGER, STR: ParticleType.STRING,
               LIST: ParticleType.LIST, MAP: ParticleType.MAP, BLOB: ParticleType.BLOB, FLOAT: ParticleType.FLOAT,
               GEO: ParticleType.GEOJSON, HLL: ParticleType.HLL}

I64_MIN, U64 = -(1 << 63), (1 << 64) - 1
GEO_PARTICLE_HEAD = b"\x00\x00\x00"  # flags 0, no cell ids: how clients send a GeoJSON bin

Eval = Callable[[RecordView], object]


class Node(NamedTuple):
    run: Eval
    type: int
    unknown_literal: bool = False  # the op `unknown()`: a cond branch may have it whatever its type


def bad(message: str) -> AerospikeError:
    log.warning("expression refused: %s", message)
    return AerospikeError(ResultCode.PARAMETER, f"expression: {message}")


def unsupported(what: str) -> AerospikeError:
    log.warning("expression refused: %s is not implemented", what)
    return AerospikeError(ResultCode.UNSUPPORTED_FEATURE, f"expression: {what} is not implemented")


def wrap(value: int) -> int:
    """An integer as the server's int64 holds it."""
    return ((value - I64_MIN) & U64) + I64_MIN


def constant(value: object, rtype: int) -> Node:
    return Node(lambda _rec: value, rtype)


def require(node: Node, types: tuple[int, ...], what: str) -> None:
    if node.type not in types:
        expected = "/".join(TYPE_NAMES[t] for t in types)
        raise bad(f"{what}: argument of type {TYPE_NAMES[node.type]}, expected {expected}")


def to_msgpack(rtype: int, value: object) -> bytes:
    """An expression value as a list element holds it (strings and blobs with their prefix)."""
    if rtype in (LIST, MAP):
        return value
    if rtype in (STR, BLOB, HLL):
        return msgpack.packb(bytes((PARTICLE_OF[rtype],)) + value, use_bin_type=False)
    if rtype == GEO:
        return msgpack.packb(bytes((ParticleType.GEOJSON,)) + value[len(GEO_PARTICLE_HEAD):], use_bin_type=False)
    return msgpack.packb(value)


def decode_particle(rtype: int, data: bytes) -> object:
    """A bin's value, known to be of the particle type `rtype` reads."""
    if rtype == INT:
        return particles.decode_int(data)
    if rtype == FLOAT:
        return particles.decode_float(data)
    if rtype == BOOL:
        return data != b"\x00"
    return data
