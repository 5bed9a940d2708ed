"""List operations on a CdtList, as particle_list.c does them.

An ordered list (LIST_ORDERED flag) is kept sorted in the server's value order: values
are added at their sorted place, insert/set are refused, index equals rank. Results and
error codes follow the server: an index out of range for a single-element op is
OP_NOT_APPLICABLE (26), an add-unique clash ELEMENT_EXISTS (24) unless NO_FAIL.
"""

from cluster.wire.result_codes import AerospikeError, ResultCode

from . import results as R
from .optable import ALL
from .values import LIST_ORDERED, PERSIST_INDEX, CdtList, bad, compare, sort_key

ADD_UNIQUE, INSERT_BOUNDED, NO_FAIL, DO_PARTIAL = 0x01, 0x02, 0x04, 0x08
SORT_DESCENDING, SORT_DROP_DUPLICATES = 0x01, 0x02


def exists_error(flags: int) -> None:
    """An add-unique clash: an error unless NO_FAIL (then the op is a no-op)."""
    if not flags & NO_FAIL:
        raise AerospikeError(ResultCode.ELEMENT_EXISTS, "value already in the list")


def sort_in_place(lst: CdtList, descending: bool = False) -> None:
    lst[:] = sorted(lst, key=sort_key, reverse=descending)


def _insert_sorted(lst: CdtList, value) -> None:
    """After the equal values already there (an upper bound)."""
    key = sort_key(value)
    lo, hi = 0, len(lst)
    while lo < hi:
        mid = (lo + hi) // 2
        if sort_key(lst[mid]) <= key:
            lo = mid + 1
        else:
            hi = mid
    lst.insert(lo, value)


def _contains(lst: list, value) -> bool:
    return any(compare(x, value) == 0 for x in lst)


# ------------------------------------------------------------------ adding

def _unique_items(lst: CdtList, items: list, flags: int) -> list | None:
    """The items an add-unique op really adds; None when the whole op is a no-op."""
    kept: list = []
    for item in items:
        if _contains(kept, item):  # the same value twice in the request
            if not flags & NO_FAIL:
                raise R.not_applicable("duplicate values in an add-unique request")
            if not flags & DO_PARTIAL:
                return None
            continue
        if _contains(lst, item):
            if flags & DO_PARTIAL:
                continue
            exists_error(flags)
            return None
        kept.append(item)
    if not kept:
        exists_error(flags)
        return None
    return kept


def add(lst: CdtList, items: list, flags: int) -> int:
    """append / append_items: to the end, or at their sorted place in an ordered list."""
    if flags & ADD_UNIQUE and items:
        items = _unique_items(lst, items, flags)
        if items is None:
            return len(lst)
    for item in items:
        if lst.ordered:
            _insert_sorted(lst, item)
        else:
            lst.append(item)
    return len(lst)


def insert(lst: CdtList, index: int, items: list, flags: int) -> int:
    if lst.ordered:
        raise R.not_applicable("insert on an ordered list")
    if not items:
        return len(lst)
    n = len(lst)
    if index < 0:
        index += n
        if index < 0:
            raise R.not_applicable(f"index {index - n} out of bounds for {n} elements")
    if flags & INSERT_BOUNDED and index > n:
        if flags & NO_FAIL:
            return n
        raise R.not_applicable(f"index {index} beyond the end of a bounded list of {n}")
    if flags & ADD_UNIQUE:
        items = _unique_items(lst, items, flags)
        if items is None:
            return n
    if index > n:
        lst.extend([None] * (index - n))  # unbounded: pad with nils up to the index
    lst[index:index] = items
    return len(lst)


def set_at(lst: CdtList, index: int, value, flags: int) -> None:
    if lst.ordered:
        raise R.not_applicable("set on an ordered list")
    n = len(lst)
    if index >= n:
        insert(lst, index, [value], flags)
        return
    at = R.one_index(index, n)
    if at is None:
        raise R.not_applicable(f"index {index} out of bounds for {n} elements")
    if flags & ADD_UNIQUE and any(compare(x, value) == 0 for i, x in enumerate(lst) if i != at):
        exists_error(flags)
        return
    lst[at] = value


def increment(lst: CdtList, index: int, delta, flags: int):
    """Adds delta (default 1) to a number; the element's type wins (int + 2.5 adds 2)."""
    n = len(lst)
    if index < 0:
        index += n
        if index < 0:
            raise R.not_applicable(f"index {index - n} out of bounds for {n} elements")
    new = add_delta(lst[index] if index < n else None, delta, missing=index >= n)
    if lst.ordered:
        if index < n:
            del lst[index]
        _insert_sorted(lst, new)
    else:
        set_at(lst, index, new, flags)
    return new


def add_delta(current, delta, missing: bool = False, negate: bool = False):
    """cdt_calc_delta: int/double arithmetic of list and map increments."""
    if delta is not None and (isinstance(delta, bool) or not isinstance(delta, (int, float))):
        raise bad("increment value must be an integer or a double")
    step = 1 if delta is None else delta
    if negate:
        step = -step
    if missing:
        if isinstance(step, float):
            return step
        return wrap64(step)
    if isinstance(current, bool) or not isinstance(current, (int, float)):
        raise bad("can only increment an integer or a double")
    if isinstance(current, int):
        return wrap64(current + int(step))
    return current + float(step)


def wrap64(v: int) -> int:
    return (v + (1 << 63)) % (1 << 64) - (1 << 63)


# ------------------------------------------------------------------ picking elements

def pick_index_range(n: int, index: int, count: int, multi: bool) -> tuple[list[int], tuple[int, int]]:
    if not multi:
        at = R.one_index(index, n)
        if at is None:
            raise R.not_applicable(f"index {index} out of bounds for {n} elements")
        return [at], (at, 1)
    start, cnt = R.index_range(index, count, n)
    return list(range(start, start + cnt)), (start, cnt)


def pick_rank_range(els: R.Elements, rank: int, count: int, multi: bool,
                    ordered: bool = False) -> tuple[list[int], tuple[int, int]]:
    """The elements of ranks rank .. rank+count-1. In an ordered list index is rank; in an
    unordered one the server selects them with a heap (see `heap_select`), and the values
    come back in the order that heap leaves them."""
    positions, (start, cnt) = pick_index_range(len(els), rank, count, multi)
    if ordered:
        return positions, (start, cnt)
    return heap_select(els.values, start, cnt), (start, cnt)


def heap_select(values: list, start: int, count: int) -> list[int]:
    """Indexes of the elements of ranks start .. start+count-1 of an unordered list, in the
    order the server answers them (cdt.c, order_heap_init_build_by_range_temp).

    The server heapifies all indexes and pops from the nearer end: a min-heap when the
    range is nearer the lowest ranks (pop `start` + count smallest), else a max-heap. Each
    popped index goes to the back of the array, so the range reads from the last popped:
    descending ranks from a min-heap, ascending from a max-heap (so ranks 0..2 of
    [7, 6, 5, 8, 9, 10] are [7, 6, 5], ranks 3..5 are [8, 9, 10]). Equal values are
    not ordered by index: which of them a range takes is the heap's doing, reproduced
    here step by step so that INDEX answers and removals match too."""
    n = len(values)
    tail = n - start - count
    want, pops = (-1, start + count) if start <= tail else (1, tail + count)
    heap = list(range(n))
    filled = n

    def cmp(i: int, j: int) -> int:
        return compare(values[i], values[j])

    def sift_down(at: int) -> None:
        while True:
            child = 2 * at + 1
            if child >= filled:
                return
            # the right child only if it is strictly better (ties go left, as the server)
            if child + 1 < filled and cmp(heap[child], heap[child + 1]) not in (want, 0):
                child += 1
            if cmp(heap[child], heap[at]) != want:
                return
            heap[at], heap[child] = heap[child], heap[at]
            at = child

    for at in range(n // 2 - 1, -1, -1):
        sift_down(at)
    for end in range(n - 1, n - 1 - pops, -1):
        top = heap[0]
        filled -= 1
        heap[0] = heap[filled]
        sift_down(0)
        heap[end] = top
    return heap[filled:filled + count]


def pick_value_interval(values: list, start, end, *, end_given: bool) -> list[int]:
    """start <= v < end; with no end: every v >= start. start == end picks equals."""
    if end_given and compare(start, end) == 0:
        return [i for i, v in enumerate(values) if compare(v, start) == 0]
    return [i for i, v in enumerate(values)
            if compare(v, start) >= 0 and (not end_given or compare(v, end) < 0)]


def pick_equal(values: list, value) -> list[int]:
    return [i for i, v in enumerate(values) if compare(v, value) == 0]


def pick_value_list(values: list, wanted) -> list[int]:
    if not isinstance(wanted, list):
        raise bad("expected a list of values")
    return [i for i, v in enumerate(values) if any(compare(v, w) == 0 for w in wanted)]


def item_runs(values: list, wanted: list) -> list[tuple[int, int]]:
    """For each requested item, in request order, the run of ranks of the values equal to
    it: (how many values sort below it, how many equal it). An item asked for twice
    matches only the first time."""
    runs = []
    for i, item in enumerate(wanted):
        repeated = any(compare(item, earlier) == 0 for earlier in wanted[:i])
        runs.append((below(values, item), 0 if repeated else len(pick_equal(values, item))))
    return runs


def below(values: list, value) -> int:
    """How many values sort below `value`: where it would rank."""
    return sum(1 for v in values if compare(v, value) < 0)


def pick_rel_rank(els: R.Elements, value, rank: int, count: int,
                  ordered: bool) -> tuple[list[int], tuple[int, int]]:
    """Ranks counted from where `value` would sort (the number of elements below it)."""
    start, cnt = R.relative_range(below(els.values, value), rank, count)
    return pick_rank_range(els, start, cnt, True, ordered)


def removed_set(rt: R.ReturnType, n: int, picked: list[int]) -> set[int]:
    chosen = set(picked)
    return set(range(n)) - chosen if rt.inverted else chosen


# ------------------------------------------------------------------ the ops

def apply(lst: CdtList, name: str, a: list):
    """Run list op `name` with its parsed arguments `a` on `lst` (changed in place for
    modify ops); returns the op's result value or R.NO_RESULT."""
    if name == "set_type":
        return set_type(lst, a[0])
    if name in ("append", "append_items"):
        items = [a[0]] if name == "append" else _items(a[0])
        return add(lst, items, a[2] or 0)
    if name in ("insert", "insert_items"):
        items = [a[1]] if name == "insert" else _items(a[1])
        return insert(lst, a[0], items, a[2] or 0)
    if name == "set":
        set_at(lst, a[0], a[1], a[2] or 0)
        return R.NO_RESULT
    if name == "increment":
        return increment(lst, a[0], a[1], a[3] or 0)
    if name == "clear":
        del lst[:]
        return R.NO_RESULT
    if name == "sort":
        flags = a[0] or 0
        if not lst.ordered:
            sort_in_place(lst, bool(flags & SORT_DESCENDING))
        if flags & SORT_DROP_DUPLICATES:
            kept: list = []
            for v in lst:
                if not kept or compare(kept[-1], v) != 0:
                    kept.append(v)
            lst[:] = kept
        return R.NO_RESULT
    if name == "size":
        return len(lst)
    if name in ("pop", "remove", "get"):
        rt = R.ReturnType(R.COUNT if name == "remove" else R.VALUE, False, False)
        return _by_index(lst, rt, a[0], 1, remove=name != "get")
    if name in ("pop_range", "remove_range", "get_range"):
        rt = R.ReturnType(R.COUNT if name == "remove_range" else R.VALUE, True, False)
        return _by_index(lst, rt, a[0], _count(a[1]), remove=name != "get_range")
    if name == "trim":
        rt = R.ReturnType(R.COUNT | R.INVERTED, True, False)
        return _by_index(lst, rt, a[0], _count(a[1]), remove=True)

    remove = name.startswith("remove")
    what = name.split("_by_", 1)[1]
    multi = what not in ("index", "rank", "value") or "_all_" in name
    rt = R.ReturnType(a[0], multi, False)
    if what in ("index", "index_range"):
        return _by_index(lst, rt, a[1], 1 if what == "index" else _count(a[2]), remove)
    els = R.Elements(list(lst))
    rank_span, order = None, "index"
    if what in ("rank", "rank_range"):
        count = 1 if what == "rank" else _count(a[2])
        picked, rank_span = pick_rank_range(els, a[1], count, rt.multi, lst.ordered)
        order = "rank"
    elif what == "value":
        picked = pick_equal(els.values, a[1])
        rank_span = (below(els.values, a[1]), len(picked) if rt.multi else min(1, len(picked)))
        if not rt.multi:
            picked = picked[:1]
    elif what == "value_list":
        picked = pick_value_list(els.values, a[1])
    elif what == "value_interval":
        picked = pick_value_interval(els.values, a[1], a[2], end_given=a.given(2))
        rank_span = (below(els.values, a[1]), len(picked))
    elif what == "value_rel_rank_range":
        picked, rank_span = pick_rel_rank(els, a[1], a[2], _count(a[3]), lst.ordered)
        order = "rank"
    else:
        raise bad(f"unknown list op {name}")
    # in an ordered list index and rank are the same thing
    index_span = rank_span if lst.ordered else None
    if what == "value_list" and rt.type in (R.RANK, R.REVRANK) and not (rt.inverted and lst.ordered):
        result = CdtList(R.item_numbers(item_runs(els.values, a[1]), len(lst), rt.type == R.REVRANK, rt.inverted))
    else:
        result = R.answer(rt, els, picked, index_span=index_span, rank_span=rank_span, order=order)
    if remove:
        gone = removed_set(rt, len(lst), picked)
        lst[:] = [v for i, v in enumerate(lst) if i not in gone]
    return result


def _by_index(lst: CdtList, rt: R.ReturnType, index: int, count: int, remove: bool):
    els = R.Elements(list(lst))
    picked, span = pick_index_range(len(lst), index, count, rt.multi)
    result = R.answer(rt, els, picked, index_span=span, rank_span=span if lst.ordered else None)
    if remove:
        gone = removed_set(rt, len(lst), picked)
        lst[:] = [v for i, v in enumerate(lst) if i not in gone]
    return result


def set_type(lst: CdtList, flags: int):
    if flags & ~(LIST_ORDERED | PERSIST_INDEX):
        raise R.not_applicable(f"invalid list flags {flags:#x}")
    if flags & LIST_ORDERED and not lst.ordered:
        sort_in_place(lst)
    lst.flags = flags
    return R.NO_RESULT


def _items(value) -> list:
    if not isinstance(value, list):
        raise bad("expected a list of items")
    return list(value)


def _count(count) -> int:
    return ALL if count is None else count
