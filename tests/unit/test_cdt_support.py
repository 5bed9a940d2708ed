"""Helpers (no tests): drive cluster.core.cdt through its wire entry points, read / modify
on wire-form bins, as write.py calls them."""

import pytest

from cluster.core import cdt
from cluster.core.cdt import values as V
from cluster.core.cdt.optable import LIST_READS, MAP_READS
from cluster.wire import particles
from cluster.wire.message import Op, OpType
from cluster.wire.particles import ParticleType
from cluster.wire.result_codes import AerospikeError

BIN = "b"


def payload(code: int, args, ctx=None) -> bytes:
    body = V.CdtList([code, *(V.from_python(a) for a in args)])
    if ctx is not None:
        body = V.CdtList([0xFF, V.CdtList(V.from_python(c) for c in ctx), body])
    return V.pack(body)


def run(bins: dict, code: int, *args, ctx=None, read: bool | None = None):
    """Run one op on `bins` (changed in place); its result as a Python value."""
    is_read = (code in LIST_READS or code in MAP_READS) if read is None else read
    op = Op(OpType.CDT_READ if is_read else OpType.CDT_MODIFY, ParticleType.BLOB, BIN, payload(code, args, ctx))
    out = (cdt.read if is_read else cdt.modify)(bins, op)
    assert len(out) == 1 and out[0].name == BIN and out[0].op == op.op
    return V.to_python(V.from_particle(out[0].ptype, out[0].value))


def bin_of(value) -> dict:
    """Bins holding `value` (a list or dict) as the client would store it."""
    return {BIN: particles.encode(value)}


def stored(bins: dict):
    return V.to_python(V.from_particle(*bins[BIN]))


def stored_flags(bins: dict) -> int:
    return V.from_particle(*bins[BIN]).flags


def code_of(call) -> int:
    """The result code `call()` fails with."""
    with pytest.raises(AerospikeError) as caught:
        call()
    return caught.value.code
