"""Operation builders for `Client.operate`, dict-shaped like `aerospike_helpers.operations`.

The operator numbers are the official Python client's `aerospike.OPERATOR_*` constants, so
op dicts built with aerospike_helpers work here too; `to_wire` maps them to wire op codes.
"""

from cluster.wire.message import Op, OpType, value_op
from cluster.wire.particles import ParticleType

from .errors import ParamError

READ = 0
WRITE = 1
INCR = 6
APPEND = 9
PREPEND = 10
TOUCH = 11
DELETE = 14

_BIN_VALUE_OPS = {WRITE: OpType.WRITE, INCR: OpType.INCR, APPEND: OpType.APPEND, PREPEND: OpType.PREPEND}


def read(bin_name: str) -> dict:
    return {"op": READ, "bin": bin_name}


def write(bin_name: str, value) -> dict:
    return {"op": WRITE, "bin": bin_name, "val": value}


def increment(bin_name: str, amount) -> dict:
    return {"op": INCR, "bin": bin_name, "val": amount}


def append(bin_name: str, value) -> dict:
    return {"op": APPEND, "bin": bin_name, "val": value}


def prepend(bin_name: str, value) -> dict:
    return {"op": PREPEND, "bin": bin_name, "val": value}


def touch(ttl: int = 0) -> dict:
    return {"op": TOUCH, "val": ttl}


def delete() -> dict:
    return {"op": DELETE}


def to_wire(operation: dict) -> Op:
    """The wire op for one operation dict."""
    kind = operation.get("op")
    try:
        if kind == READ:
            return Op(OpType.READ, ParticleType.NULL, operation["bin"])
        if kind in _BIN_VALUE_OPS:
            return value_op(_BIN_VALUE_OPS[kind], operation["bin"], operation["val"])
    except (KeyError, TypeError) as exc:
        raise ParamError(f"bad operation {operation!r}: {exc}") from None
    if kind == TOUCH:
        return Op(OpType.TOUCH, ParticleType.NULL, "")
    if kind == DELETE:
        return Op(OpType.DELETE, ParticleType.NULL, "")
    raise ParamError(f"unsupported operation {operation!r}")
