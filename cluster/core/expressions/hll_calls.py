"""HyperLogLog calls inside expressions (op 127 with system 2), on cluster/core/hll.

`[127, result type, system, [hll op, args...], bin]`: the client's HLLGetCount,
HLLDescribe, HLLMayContain ... are read ops on the HLL the last argument yields (a bin, a
constant or another call); HLLInit and HLLAdd carry the MODIFY_LOCAL flag and yield the
modified copy. As on the server (exp.c), the call is UNKNOWN when its HLL is unknown, when
the op fails on it, or when its result is not of the declared type; a read of a missing
bin is unknown too, a modify of one creates the HLL it would create in a bin.
"""

import struct

import msgpack

from cluster.core import hll
from cluster.core.expressions.lists_maps import call_op
from cluster.core.expressions.nodes import (
    HLL,
    NIL,
    PARTICLE_OF,
    TYPE_NAMES,
    UNKNOWN,
    Node,
    bad,
    decode_particle,
)
from cluster.wire.particles import ParticleType
from cluster.wire.result_codes import AerospikeError

_MALFORMED = (ValueError, TypeError, IndexError, struct.error, msgpack.UnpackException)


def build(b, rtype: int, modify: bool) -> Node:
    """The rest of a call once its result type and system are read: its op and its HLL."""
    op_bytes = call_op(b)
    target = b.next()
    if target.type not in (NIL, HLL):
        raise bad(f"HyperLogLog call on a {TYPE_NAMES[target.type]}")
    ptype, target_run = PARTICLE_OF[rtype], target.run

    def call(rec):
        payload = op_bytes(rec)
        if payload is UNKNOWN:
            return UNKNOWN
        particle = target_run(rec)
        if particle is UNKNOWN or (particle is None and not modify):
            return UNKNOWN
        try:
            if modify:
                new, _ = hll.apply_modify(particle, payload)
                result = (ParticleType.HLL, new if new is not None else particle)
            else:
                result = hll.apply_read(particle, payload)
        except (AerospikeError, *_MALFORMED):  # the op failed on this value: unknown
            return UNKNOWN
        if result is None or result[1] is None or result[0] != ptype:
            return UNKNOWN
        return None if rtype == NIL else decode_particle(rtype, result[1])
    return Node(call, rtype)
