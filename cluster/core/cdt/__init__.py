"""Collection data type (CDT) operations: lists and maps inside a bin.

An op's value (a blob particle) is msgpack `[code, args...]`, or
`[0xff, [context...], [code, args...]]` to work on a nested element. The bin is decoded to
CDT values (values.py), the context followed (context.py), the list or map op run
(lists.py / maps.py) and the bin re-encoded. Every op answers one op in the reply: its
result as a particle, or a NULL particle when it has none (the official client always
sets RESPOND_ALL_OPS for CDT ops, and then the server answers one op per op).

Public API for other modules (e.g. expressions): `apply_read` / `apply_modify` run one
op given as an op code and arguments on a CDT value, without bins or wire bytes.
"""

import copy

from cluster.core.bins import Bins, check_bin_name
from cluster.wire.message import Op
from cluster.wire.particles import ParticleType
from cluster.wire.result_codes import AerospikeError, ResultCode

from . import context, lists, maps
from .optable import CONTEXT_EVAL, LIST_READS, MAP_READS, is_list_op, op_name, parse_args
from .results import NO_RESULT
from .values import PERSIST_INDEX, CdtList, CdtMap, from_particle, to_particle, unpack

__all__ = ["read", "modify", "apply_read", "apply_modify", "decode_request", "NO_RESULT"]

# ops that make a missing bin (or missing context element) into an empty container
_LIST_CREATORS = {"set_type": None, "append": 1, "append_items": 1, "increment": 2,
                  "insert": None, "insert_items": None, "set": None}
_MAP_CREATORS = {"set_type": None, "add": 2, "add_items": 1, "put": 2, "put_items": 1,
                 "replace": None, "replace_items": None, "increment": 2, "decrement": 2}


def decode_request(payload: bytes) -> tuple[int, list, list | None]:
    """(op code, raw args, raw context or None) of a CDT op's value."""
    tree = unpack(payload)
    if not isinstance(tree, list) or not tree or not isinstance(tree[0], int) or isinstance(tree[0], bool):
        raise AerospikeError(ResultCode.PARAMETER, "a CDT op is a list starting with its op code")
    if tree[0] == CONTEXT_EVAL:
        if len(tree) != 3 or not isinstance(tree[2], list) or not tree[2] or not isinstance(tree[2][0], int):
            raise AerospikeError(ResultCode.PARAMETER, "a context op is [0xff, context, [op, args...]]")
        return tree[2][0], list(tree[2][1:]), tree[1]
    return tree[0], list(tree[1:]), None


def _is_read(code: int) -> bool:
    return code in LIST_READS or code in MAP_READS


def _run(container, code: int, args):
    name = op_name(code)
    if is_list_op(code):
        if not isinstance(container, CdtList):
            raise AerospikeError(ResultCode.INCOMPATIBLE_TYPE, f"list op {name} on a non-list")
        return lists.apply(container, name, args)
    if not isinstance(container, CdtMap):
        raise AerospikeError(ResultCode.INCOMPATIBLE_TYPE, f"map op {name} on a non-map")
    return maps.apply(container, name, args)


def _new_container(code: int, args) -> object | None:
    """The empty container an op creates where there is none (ordered as the op's create
    flags ask); None for ops that then do nothing (removes, clear, pop ...)."""
    name = op_name(code)
    table, kind, mask = (_LIST_CREATORS, CdtList, 0x11) if is_list_op(code) else (_MAP_CREATORS, CdtMap, 0x13)
    if name not in table:
        return None
    at = table[name]  # set_type applies its own flags once the container exists
    flags = (args[at] or 0) if at is not None else 0
    return kind(flags=flags & mask)


def apply_read(value, code: int, args: list, ctx: list | None = None):
    """Run CDT read op `code` with msgpack-level `args` on a CDT value (values.CdtList /
    CdtMap, e.g. values.from_python([...])). Returns the result value or NO_RESULT."""
    if not _is_read(code):
        raise AerospikeError(ResultCode.PARAMETER, f"{op_name(code)} is not a read op")
    args = parse_args(code, args)
    target = context.find(value, context.parse(ctx), modify=False).value if ctx is not None else value
    return _run(target, code, args)


def apply_modify(value, code: int, args: list, ctx: list | None = None):
    """Run CDT modify op `code` on a CDT value (None: no bin yet). Returns
    (the new top value or None if there is still none, the op's result)."""
    if _is_read(code):
        raise AerospikeError(ResultCode.PARAMETER, f"{op_name(code)} is not a modify op")
    args = parse_args(code, args)
    if ctx is None:
        if value is None:
            value = _new_container(code, args)
            if value is None:
                if op_name(code) == "sort":
                    raise AerospikeError(ResultCode.INCOMPATIBLE_TYPE, "sort of a missing bin")
                return None, NO_RESULT
        return value, _run(value, code, args)
    steps = context.parse(ctx)
    if op_name(code) == "set_type":
        args[0] &= ~PERSIST_INDEX  # only a bin's top level keeps an index (silently dropped)
    if value is None and not any(ctype & 0x1C0 & ~0x100 for ctype, _ in steps[:1]):
        raise AerospikeError(ResultCode.OP_NOT_APPLICABLE, "bin is empty and the context creates nothing")
    if value is not None and _new_container(code, args) is None:
        # an op that creates nothing (a remove ...) where a creating context would have to
        # create: a no-op, so look on a copy first rather than build the path for nothing
        if context.find(copy.deepcopy(value), steps, modify=True).missing:
            return value, NO_RESULT
    found = context.find(value, steps, modify=True)
    if found.missing:
        leaf = _new_container(code, args)
        if leaf is None:  # a remove on a bin that a context would create: nothing to do
            return value, NO_RESULT
        found.put(leaf)
    result = _run(found.value, code, args)
    # a change deep inside can move an element of an ordered list above it
    for parent in reversed(found.parents):
        if isinstance(parent, CdtList) and parent.ordered:
            lists.sort_in_place(parent)
    return found.top, result


def _answer(op: Op, result) -> list[Op]:
    if result is NO_RESULT:
        return [Op(op.op, ParticleType.NULL, op.name, b"")]
    ptype, data = to_particle(result)
    return [Op(op.op, ptype, op.name, data)]


def _bin_value(record_bins: Bins, name: str, has_ctx: bool):
    found = record_bins.get(name)
    if found is None:
        return None
    ptype, data = found
    if ptype not in (ParticleType.LIST, ParticleType.MAP):
        code = ResultCode.PARAMETER if has_ctx else ResultCode.INCOMPATIBLE_TYPE
        raise AerospikeError(code, f"bin {name!r} holds particle type {ptype}, not a list or map")
    return from_particle(ptype, data)


def read(record_bins: Bins, op: Op) -> list[Op]:
    """A CDT_READ op: the bins it returns (one op; NULL when the bin does not exist)."""
    code, args, ctx = decode_request(op.value)
    value = _bin_value(record_bins, op.name, ctx is not None)
    if value is None:
        parse_args(code, args)
        return _answer(op, NO_RESULT)
    return _answer(op, apply_read(value, code, args, ctx))


def modify(record_bins: Bins, op: Op) -> list[Op]:
    """A CDT_MODIFY op: changes `record_bins` in place, returns the bins it answers with."""
    check_bin_name(op.name)
    code, args, ctx = decode_request(op.value)
    value = _bin_value(record_bins, op.name, ctx is not None)
    top, result = apply_modify(value, code, args, ctx)
    if top is not None:
        record_bins[op.name] = to_particle(top)
    return _answer(op, result)
