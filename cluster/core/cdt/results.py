"""What a get_by_* / remove_by_* op answers, given the elements it picked.

The client asks for a return type (index, rank, count, value, key, map ...) possibly with
the INVERTED flag. Ops pick elements; this module turns the pick into the answer the
server gives (cdt.c: result_data_set_*), so lists and maps share one set of rules.
"""

from bisect import bisect_left

from cluster.wire.result_codes import AerospikeError, ResultCode

from .values import MAP_K_ORDERED, MAP_PRESERVE_ORDER, CdtList, CdtMap, sort_key

NONE, INDEX, REVINDEX, RANK, REVRANK, COUNT, KEY, VALUE, KEY_VALUE = 0, 1, 2, 3, 4, 5, 6, 7, 8
INDEX_RANGE, REVINDEX_RANGE, RANK_RANGE, REVRANK_RANGE, EXISTS = 9, 10, 11, 12, 13
UNORDERED_MAP, ORDERED_MAP = 16, 17
INVERTED = 0x10000
_TYPE_MASK = 0xFFFF

MAP_RESULTS = frozenset({KEY, KEY_VALUE, UNORDERED_MAP, ORDERED_MAP})
_KNOWN = frozenset(range(14)) | {UNORDERED_MAP, ORDERED_MAP}
_RANGES = frozenset({INDEX_RANGE, REVINDEX_RANGE, RANK_RANGE, REVRANK_RANGE})


class _NoResult:
    """The op answers nothing (return type NONE, or a value not found)."""

    def __repr__(self):
        return "NO_RESULT"


NO_RESULT = _NoResult()


def not_applicable(message: str) -> AerospikeError:
    return AerospikeError(ResultCode.OP_NOT_APPLICABLE, message)


class ReturnType:
    """A return-type argument split into its type and its INVERTED flag."""

    __slots__ = ("type", "inverted", "multi")

    def __init__(self, raw: int, multi: bool, for_map: bool):
        self.type = raw & _TYPE_MASK
        self.inverted = bool(raw & INVERTED)
        self.multi = multi
        if self.type not in _KNOWN or (not for_map and self.type in MAP_RESULTS):
            raise not_applicable(f"return type {self.type} is not valid here")
        if self.inverted and not multi:
            raise not_applicable("INVERTED is only valid for ops that select several elements")


class Elements:
    """The elements an op works over, in index order: values (and keys for maps)."""

    def __init__(self, values: list, keys: list | None = None, storage: list[int] | None = None):
        self.values = values
        self.keys = keys
        # for an unordered map: where each element (in key order) sits in storage
        self.storage = storage
        self._ranks: list[int] | None = None

    def __len__(self):
        return len(self.values)

    def by_rank(self) -> list[int]:
        """Indexes sorted by value (ties: index order, as the server's stable sort)."""
        return sorted(range(len(self.values)), key=lambda i: (sort_key(self.values[i]), i))

    def rank_of(self, i: int) -> int:
        """The rank the server gives element i: in a list, how many elements sort strictly
        below it (equal values share a rank); in a map, its place in value order with
        equal values in key order."""
        if self._ranks is None:
            if self.keys is not None:
                self._ranks = [0] * len(self.values)
                for rank, at in enumerate(self.by_rank()):
                    self._ranks[at] = rank
            else:
                keys = sorted(sort_key(v) for v in self.values)
                self._ranks = [bisect_left(keys, sort_key(v)) for v in self.values]
        return self._ranks[i]


def answer(rt: ReturnType, els: Elements, picked: list[int], *, index_span: tuple[int, int] | None = None,
           rank_span: tuple[int, int] | None = None, order: str = "index"):
    """The result of picking `picked` (indexes into `els`).

    `index_span` / `rank_span` are the (start, count) of the contiguous index or rank
    range the op picked, when it picked one: the *_RANGE return types answer them, and
    RANK answers the ranks of a rank span as a run (the server does not rank such
    elements one by one). `order` is the order element results come back in: "index",
    "rank" (the order of `picked`), or "storage" (a scan over an unordered map's stored
    pairs). INVERTED answers the complement, found by a scan.
    """
    n = len(els)
    if rt.inverted:
        chosen = set(picked)
        picked = [i for i in range(n) if i not in chosen]
        order = "storage"
    t = rt.type
    if t == NONE:
        return NO_RESULT
    if t == COUNT:
        return len(picked)
    if t == EXISTS:
        return bool(picked)
    if t in _RANGES:
        span = index_span if t in (INDEX_RANGE, REVINDEX_RANGE) else rank_span
        if rt.inverted or span is None:
            raise not_applicable(f"return type {t} is not supported by this op")
        start, count = span
        if t in (REVINDEX_RANGE, REVRANK_RANGE):
            start = n - start - count
        return CdtList([start, count])
    if order == "rank":
        ordered = picked
    elif order == "storage" and els.storage is not None:
        ordered = sorted(picked, key=els.storage.__getitem__)
    else:
        ordered = sorted(picked)
    if t in (INDEX, REVINDEX) and index_span is not None and rt.multi:
        return CdtList(span_numbers(index_span, n, t == REVINDEX, rt.inverted))
    if t in (INDEX, REVINDEX):
        # a list answers indexes in index order; a map in the order it found the pairs
        found = ordered if els.keys is not None else sorted(picked)
        if t == REVINDEX:
            found = [n - 1 - i for i in found]
        return CdtList(found) if rt.multi else (found[0] if found else -1)
    if t in (RANK, REVRANK):
        if index_span == (0, n) and rt.multi and not rt.inverted:
            # an index range over every element: the server answers every rank, in order
            # (particle_list.c / particle_map.c: result_data_set_index_rank_count(0, n))
            return CdtList(range(n))
        if rank_span is not None:
            ranks = span_numbers(rank_span, n, t == REVRANK, rt.inverted)
        else:
            ranks = [els.rank_of(i) for i in sorted(picked)]
            if t == REVRANK:
                ranks = [n - 1 - r for r in ranks]
        return CdtList(ranks) if rt.multi else (ranks[0] if ranks else -1)
    if not rt.multi:
        if t in (KEY, VALUE):
            if not ordered:
                return NO_RESULT
            return els.values[ordered[0]] if t == VALUE else els.keys[ordered[0]]
        return _map_result(t, els, ordered[:1])
    if t == VALUE:
        return CdtList(els.values[i] for i in ordered)
    if t == KEY:
        return CdtList(els.keys[i] for i in ordered)
    return _map_result(t, els, ordered)


def span_numbers(span: tuple[int, int], n: int, reverse: bool, inverted: bool) -> list[int]:
    """The indexes or ranks of a contiguous span (start, count) of n, as the server lists
    them (cdt.c, result_data_set_index_rank_count): each run ascending, a reversed run
    counted from the end (ranks 0..2 of 6 reversed are [3, 4, 5]); INVERTED answers the
    run before the span, then the run after it."""
    start, count = span
    return _run_numbers([(0, start), (start + count, n - start - count)] if inverted else [span], n, reverse)


def item_numbers(runs: list[tuple[int, int]], n: int, reverse: bool, inverted: bool) -> list[int]:
    """The ranks (or key indexes) a value-list (key-list) op answers, given for each
    requested item, in request order, the (first, count) run it matched
    (cdt.c, result_data_set_by_itemlist_irc): item by item in request order, each
    number reversed on its own; INVERTED answers the runs between the matched ones, in
    order, as `span_numbers` does."""
    if not inverted:
        return [n - 1 - r if reverse else r for first, count in runs for r in range(first, first + count)]
    gaps, prev = [], 0
    for first, count in sorted(run for run in runs if run[1]):
        gaps.append((prev, first - prev))
        prev = first + count
    gaps.append((prev, n - prev))
    return _run_numbers(gaps, n, reverse)


def _run_numbers(runs: list[tuple[int, int]], n: int, reverse: bool) -> list[int]:
    numbers: list[int] = []
    for first, length in runs:
        if reverse:
            first = n - first - length
        numbers.extend(range(first, first + length))
    return numbers


def _map_result(t: int, els: Elements, picked: list[int]) -> CdtMap:
    pairs = {els.keys[i]: els.values[i] for i in picked}
    if t == ORDERED_MAP:
        return CdtMap(dict(sorted(pairs.items(), key=lambda kv: sort_key(kv[0]))), MAP_K_ORDERED)
    if t == KEY_VALUE:
        return CdtMap(pairs, MAP_PRESERVE_ORDER)
    return CdtMap(pairs)


# ------------------------------------------------------------ index arithmetic (cdt.c)

def one_index(index: int, n: int) -> int | None:
    """A single element's index (negative from the end); None when out of range."""
    if index >= n or index + (n if index < 0 else 0) < 0:
        return None
    return index + n if index < 0 else index


def index_range(index: int, count: int, n: int) -> tuple[int, int]:
    """(start, count) of a multi-element index or rank range, clipped to the n elements."""
    if index >= n:
        return n, 0
    if index < 0:
        index += n
        if index < 0:
            # starts before the first element: the part that overlaps
            return 0, max(0, min(n, count + index))
    return index, min(count, n - index)


def relative_range(rel: int, offset: int, count: int) -> tuple[int, int]:
    """Start an offset away from an anchor position; a start below 0 eats into count."""
    start = rel + offset
    if start < 0:
        count = max(0, count + start)
        start = 0
    return start, count
