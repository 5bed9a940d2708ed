"""Map operations on a CdtMap, as particle_map.c does them.

A map's index is the position of a key in key order, whatever the map's own order (an
unordered map keeps insertion order in storage but is indexed as if key-sorted). Rank
is the position in value order, ties broken by key. Key-ordered maps are stored sorted
by key; KV-ordered ones too (their value order is an index the server may persist, not
a storage order).
"""

from cluster.wire.result_codes import AerospikeError, ResultCode

from . import results as R
from .lists import (
    add_delta,
    below,
    item_runs,
    pick_equal,
    pick_index_range,
    pick_value_interval,
    pick_value_list,
)
from .optable import ALL
from .values import MAP_KV_ORDERED, PERSIST_INDEX, CdtList, CdtMap, bad, compare, is_map_key, sort_key

NO_OVERWRITE, NO_CREATE, NO_FAIL, DO_PARTIAL = 0x01, 0x02, 0x04, 0x08


def keep_sorted(m: CdtMap) -> None:
    if m.key_ordered:
        m.items = dict(sorted(m.items.items(), key=lambda kv: sort_key(kv[0])))


def elements(m: CdtMap) -> R.Elements:
    """The pairs in index (key) order, with their storage positions if that differs."""
    if m.key_ordered:
        return R.Elements(list(m.items.values()), list(m.items))
    pairs = sorted(enumerate(m.items.items()), key=lambda p: sort_key(p[1][0]))
    return R.Elements([v for _, (_, v) in pairs], [k for _, (k, _) in pairs], [pos for pos, _ in pairs])


# ------------------------------------------------------------------ writing

def _check_key(key) -> None:
    if not is_map_key(key):
        raise bad("map keys must be integers, strings or blobs")


def put_items(m: CdtMap, items: dict, flags: int) -> int:
    """put / put_items / add / replace: write flags decide create-only or update-only.

    A pair the flags refuse fails the op (ELEMENT_EXISTS 24 / ELEMENT_NOT_FOUND 23); with
    NO_FAIL it is a no-op, and with NO_FAIL|PARTIAL only that pair is skipped."""
    accepted = {}
    for key, value in items.items():
        _check_key(key)
        present = key in m.items
        if present and flags & NO_OVERWRITE or not present and flags & NO_CREATE:
            if not flags & NO_FAIL:
                if present:
                    raise AerospikeError(ResultCode.ELEMENT_EXISTS, "map key already exists")
                raise AerospikeError(ResultCode.ELEMENT_NOT_FOUND, "map key not found")
            if not flags & DO_PARTIAL:
                return len(m.items)
            continue
        accepted[key] = value
    m.items.update(accepted)
    keep_sorted(m)
    return len(m.items)


def increment(m: CdtMap, key, delta, negate: bool):
    _check_key(key)
    present = key in m.items
    new = add_delta(m.items.get(key), delta, missing=not present, negate=negate)
    m.items[key] = new
    keep_sorted(m)
    return new


def set_type(m: CdtMap, flags: int):
    if flags & ~(MAP_KV_ORDERED | PERSIST_INDEX):  # (cdt_check_flags)
        raise R.not_applicable(f"invalid map flags {flags:#x}")
    m.flags = flags
    keep_sorted(m)
    return R.NO_RESULT


# ------------------------------------------------------------------ picking pairs

def _rel_index(keys: list, key, offset: int, count: int) -> tuple[list[int], tuple[int, int]]:
    anchor = sum(1 for k in keys if compare(k, key) < 0)
    start, cnt = R.relative_range(anchor, offset, count)
    picked = list(range(start, min(len(keys), start + cnt)))
    return picked, (start, len(picked))


def _in_rank_order(els: R.Elements, picked: list[int]) -> list[int]:
    ranked = els.by_rank()
    chosen = set(picked)
    return [i for i in ranked if i in chosen]


def _rel_rank(els: R.Elements, value, rank: int, count: int) -> tuple[list[int], tuple[int, int]]:
    anchor = below(els.values, value)
    start, cnt = R.relative_range(anchor, rank, count)
    picked = els.by_rank()[start:start + cnt]
    return picked, (start, len(picked))


def apply(m: CdtMap, name: str, a: list):
    """Run map op `name` with its parsed arguments `a` on `m` (changed in place for
    modify ops); returns the op's result value or R.NO_RESULT."""
    keep_sorted(m)  # a key-ordered map written whole by a client may not be sorted yet
    if name == "set_type":
        return set_type(m, a[0])
    if name in ("put", "add", "replace"):
        flags = (a[3] or 0) if name == "put" else NO_OVERWRITE if name == "add" else NO_CREATE
        return put_items(m, {a[0]: a[1]}, flags)
    if name in ("put_items", "add_items", "replace_items"):
        if not isinstance(a[0], CdtMap):
            raise bad("expected a map of items")
        flags = (a[2] or 0) if name == "put_items" else NO_OVERWRITE if name == "add_items" else NO_CREATE
        return put_items(m, a[0].items, flags)
    if name in ("increment", "decrement"):
        return increment(m, a[0], a[1], negate=name == "decrement")
    if name == "clear":
        m.items.clear()
        return R.NO_RESULT
    if name == "size":
        return len(m.items)

    remove = name.startswith("remove")
    what = name.split("_by_", 1)[1]
    multi = what not in ("key", "index", "value", "rank") or "_all_" in name
    rt = R.ReturnType(a[0], multi, True)
    els = elements(m)
    n = len(els)
    index_span = rank_span = None
    # a scan over the stored pairs answers in storage order; a KV-ordered map keeps a
    # value index, so its value picks come back in value order
    order = "storage"
    by_value = "rank" if m.flags & MAP_KV_ORDERED == MAP_KV_ORDERED else "storage"
    if what == "key":
        picked = pick_equal(els.keys, a[1])[:1]
    elif what == "key_list":
        picked = pick_value_list(els.keys, a[1])
    elif what == "key_interval":
        picked = pick_value_interval(els.keys, a[1], a[2], end_given=a.given(2))
        index_span = (below(els.keys, a[1]), len(picked))  # keys are in key order: a run of indexes
    elif what in ("index", "index_range"):
        picked, index_span = pick_index_range(n, a[1], 1 if what == "index" else _count(a[2]), rt.multi)
        order = "index"
    elif what in ("rank", "rank_range"):
        positions, rank_span = pick_index_range(n, a[1], 1 if what == "rank" else _count(a[2]), rt.multi)
        ranked = els.by_rank()
        picked, order = [ranked[p] for p in positions], "rank"
    elif what == "value":
        picked = _in_rank_order(els, pick_equal(els.values, a[1]))
        rank_span = (below(els.values, a[1]), len(picked) if rt.multi else min(1, len(picked)))
        picked, order = (picked if rt.multi else picked[:1]), by_value
    elif what == "value_list":
        picked = pick_value_list(els.values, a[1])
    elif what == "value_interval":
        picked = _in_rank_order(els, pick_value_interval(els.values, a[1], a[2], end_given=a.given(2)))
        rank_span, order = (below(els.values, a[1]), len(picked)), by_value
    elif what == "key_rel_index_range":
        picked, index_span = _rel_index(els.keys, a[1], a[2], _count(a[3]))
        order = "index"
    elif what == "value_rel_rank_range":
        picked, rank_span = _rel_rank(els, a[1], a[2], _count(a[3]))
        order = "rank"
    else:
        raise bad(f"unknown map op {name}")
    removed = set(picked) if not rt.inverted else set(range(n)) - set(picked)
    if rt.inverted and what in ("rank_range", "value_rel_rank_range") and (rank_span[0] == 0 or sum(rank_span) == n):
        # The complement of a rank range at either end is the rank range of the rest: the
        # server answers it as one (particle_map.c), in rank order, not from a mask in
        # storage order as other inverted selections.
        start, count = rank_span
        rest = (start + count, n - start - count) if start == 0 else (0, start)
        picked, rank_span, rt = els.by_rank()[rest[0]:sum(rest)], rest, R.ReturnType(rt.type, True, True)
    result = _answer_item_list(m, what, rt, a[1], els) if what.endswith("_list") else None
    if result is None:
        result = R.answer(rt, els, picked, index_span=index_span, rank_span=rank_span, order=order)
    if remove:
        gone = {els.keys[i] for i in removed}
        for key in gone:
            del m.items[key]
    return result


def _answer_item_list(m: CdtMap, what: str, rt: R.ReturnType, wanted: list, els: R.Elements):
    """What a key-list or value-list op answers for return types the server builds item by
    item (particle_map.c): a value list's ranks; a key list's indexes (not for the
    complement in a key-ordered map, which the server answers from its mask); a key list
    has no ranks. None: answer as any other op."""
    if what == "key_list" and rt.type in (R.RANK, R.REVRANK):
        raise R.not_applicable("a key-list op does not answer ranks")
    if what == "key_list" and rt.type in (R.INDEX, R.REVINDEX) and not (rt.inverted and m.key_ordered):
        return CdtList(R.item_numbers(item_runs(els.keys, wanted), len(els), rt.type == R.REVINDEX, rt.inverted))
    if what == "value_list" and rt.type in (R.RANK, R.REVRANK):
        return CdtList(R.item_numbers(item_runs(els.values, wanted), len(els), rt.type == R.REVRANK, rt.inverted))
    return None


def _count(count) -> int:
    return ALL if count is None else count
