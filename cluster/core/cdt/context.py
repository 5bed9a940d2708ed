"""Nested contexts (cdt_ctx): which element inside a list/map bin an op works on.

A context is a flat list of (type, value) pairs. The type's low nibble says how to look
the element up (0 index, 1 rank, 2 key, 3 value), 0x10 / 0x20 that the container must be a
list / a map, and bits 0x1c0 ask to create what is missing (modify ops only). A create
flag describes the container the pair looks into: its kind, its order, and for lists
whether an index past the end pads with nils (cdt.c cdt_context_dig).
"""

from cluster.wire.result_codes import AerospikeError, ResultCode

from . import results as R
from .lists import heap_select
from .values import LIST_ORDERED, MAP_K_ORDERED, MAP_KV_ORDERED, PERSIST_INDEX, CdtList, CdtMap, compare

BY_INDEX, BY_RANK, BY_KEY, BY_VALUE = 0, 1, 2, 3
IN_LIST, IN_MAP = 0x10, 0x20
_CREATE_MASK = 0x1C0
_CREATE_PERSIST = 0x100
CREATE_UNORDERED, CREATE_UNBOUND, CREATE_ORDERED = 0x40, 0x80, 0xC0


def parse(pairs) -> list[tuple[int, object]]:
    if not isinstance(pairs, list) or not pairs or len(pairs) % 2:
        raise AerospikeError(ResultCode.PARAMETER, "a context is a non-empty list of (type, value) pairs")
    steps = []
    for i in range(0, len(pairs), 2):
        ctype = pairs[i]
        if not isinstance(ctype, int) or isinstance(ctype, bool) or ctype < 0:
            raise AerospikeError(ResultCode.PARAMETER, f"context type {ctype!r} is not an integer")
        if ctype & 0x0F > BY_VALUE:
            raise R.not_applicable(f"context type {ctype:#x} is not supported")
        creates = ctype & _CREATE_MASK & ~_CREATE_PERSIST
        if creates and ctype & 0x3F not in (IN_LIST | BY_INDEX, IN_MAP | BY_KEY):
            raise R.not_applicable(f"context type {ctype:#x} cannot create")
        steps.append((ctype, pairs[i + 1]))
    return steps


def _new_container(ctype: int):
    """The container a creating context pair asks for."""
    create = ctype & _CREATE_MASK & ~_CREATE_PERSIST
    persist = PERSIST_INDEX if ctype & _CREATE_PERSIST else 0
    if ctype & IN_LIST:
        return CdtList(flags=(LIST_ORDERED if create == CREATE_ORDERED else 0) | persist)
    flags = {CREATE_UNORDERED: 0, CREATE_UNBOUND: MAP_K_ORDERED, CREATE_ORDERED: MAP_KV_ORDERED}[create]
    return CdtMap(flags=flags | persist)


def _creates(ctype: int) -> bool:
    return bool(ctype & _CREATE_MASK & ~_CREATE_PERSIST)


class Found:
    """Where the context led: the element and the containers above it (outermost first).

    `missing` is set when the element does not exist yet and must be created by the op
    (then `put(value)` stores the new element in its parent)."""

    def __init__(self, top, value, parents: list, missing: bool = False, put=None):
        self.top, self.value, self.parents, self.missing, self._put = top, value, parents, missing, put

    def put(self, value) -> None:
        self._put(value)
        self.value, self.missing = value, False


def find(top, steps: list, modify: bool) -> Found:
    """Follow `steps` from the bin value `top` (None: the bin does not exist yet).

    Found.top is the bin's value afterwards (a new container if the bin was created)."""
    cur, parents = top, []
    slot_put = None
    for ctype, cval in steps:
        if cur is None:  # creating: this pair's container does not exist either
            if not modify or not _creates(ctype):
                raise R.not_applicable("context element not found")
            cur = _new_container(ctype)
            if slot_put is None:
                top = cur
            else:
                slot_put(cur)
        if not isinstance(cur, (CdtList, CdtMap)):
            raise R.not_applicable("context element is not a list or map")
        if isinstance(cur, CdtList) and ctype & IN_MAP or isinstance(cur, CdtMap) and ctype & IN_LIST:
            raise R.not_applicable(f"context type {ctype:#x} does not match the element")
        parents.append(cur)
        nxt, slot_put = _step(cur, ctype, cval, modify)
        cur = nxt
    if cur is None:
        return Found(top, None, parents, True, slot_put)
    return Found(top, cur, parents)


def _step(cur, ctype: int, cval, modify: bool):
    """(the element, a setter for a slot to create) one context pair selects."""
    base = ctype & 0x0F
    if isinstance(cur, CdtList):
        n = len(cur)
        if base == BY_INDEX:
            if not isinstance(cval, int):
                raise AerospikeError(ResultCode.PARAMETER, "list index context needs an integer")
            at = R.one_index(cval, n)
            if at is not None:
                return cur[at], None
            if modify and _creates(ctype):
                if (n == 0 and cval == -1) or cval == n:
                    at = n
                elif cval > n and ctype & _CREATE_MASK & ~_CREATE_PERSIST == CREATE_UNBOUND:
                    cur.extend([None] * (cval - n))
                    at = cval
                else:
                    raise R.not_applicable(f"context index {cval} out of bounds")
                cur.append(None)
                return None, lambda v, c=cur, i=at: c.__setitem__(i, v)
            raise R.not_applicable(f"context index {cval} out of bounds")
        if base == BY_RANK:
            at = R.one_index(cval, n) if isinstance(cval, int) else None
            if at is None:
                raise R.not_applicable(f"context rank {cval} out of bounds")
            if cur.ordered:
                return cur[at], None
            # among equal values, the element the server's order heap lands on
            return cur[heap_select(cur, at, 1)[0]], None
        if base == BY_VALUE:
            for v in cur:
                if compare(v, cval) == 0:
                    return v, None
            raise R.not_applicable("context value not in the list")
        raise R.not_applicable("a list has no keys")
    from .maps import elements  # maps imports lists; keep the graph acyclic at import time

    if base == BY_KEY:
        if cval in cur.items and not isinstance(cval, bool):
            return cur.items[cval], None
        if modify and _creates(ctype):
            def put(v, m=cur, k=cval):
                from .maps import keep_sorted
                m.items[k] = v
                keep_sorted(m)
            return None, put
        raise R.not_applicable("context key not in the map")
    els = elements(cur)
    if base == BY_INDEX:
        at = R.one_index(cval, len(els)) if isinstance(cval, int) else None
        if at is None:
            raise R.not_applicable(f"context index {cval} out of bounds")
        return els.values[at], None
    if base == BY_RANK:
        at = R.one_index(cval, len(els)) if isinstance(cval, int) else None
        if at is None:
            raise R.not_applicable(f"context rank {cval} out of bounds")
        return els.values[els.by_rank()[at]], None
    for v in els.values:
        if compare(v, cval) == 0:
            return v, None
    raise R.not_applicable("context value not in the map")
