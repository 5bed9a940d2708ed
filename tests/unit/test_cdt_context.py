"""Nested contexts: finding, creating, and the errors when a context leads nowhere."""

import pytest

from cluster.core import cdt
from cluster.core.cdt import values as V
from cluster.core.cdt.optable import LIST_OPS, MAP_OPS
from tests.unit.test_cdt_support import bin_of, code_of, run, stored

L = {name: code for name, (code, _, _) in LIST_OPS.items()}
M = {name: code for name, (code, _, _) in MAP_OPS.items()}
LIST_INDEX, LIST_RANK, LIST_VALUE = 0x10, 0x11, 0x13
MAP_INDEX, MAP_RANK, MAP_KEY, MAP_VALUE = 0x20, 0x21, 0x22, 0x23
VALUE, KEY = 7, 6


def test_read_through_list_and_map_contexts():
    bins = bin_of({"a": [[1, 2], [3, 4, 5]], "b": {"x": 9}})
    assert run(bins, L["size"], ctx=[MAP_KEY, "a", LIST_INDEX, -1]) == 3
    assert run(bins, L["get"], 0, ctx=[MAP_KEY, "a", LIST_RANK, -1]) == 3
    assert run(bins, L["get"], 1, ctx=[MAP_KEY, "a", LIST_VALUE, [1, 2]]) == 2
    assert run(bins, M["get_by_key"], VALUE, "x", ctx=[MAP_INDEX, 1]) == 9
    assert run(bins, M["size"], ctx=[MAP_VALUE, {"x": 9}]) == 1
    assert run(bins, M["size"], ctx=[MAP_RANK, -1]) == 1  # maps sort above lists


def test_modify_in_a_context_rewrites_the_bin():
    bins = bin_of({"a": [[1, 2], [3]]})
    assert run(bins, L["append"], 4, ctx=[MAP_KEY, "a", LIST_INDEX, 1]) == 2
    assert stored(bins) == {"a": [[1, 2], [3, 4]]}


def test_a_context_that_leads_nowhere_is_not_applicable():
    bins = bin_of({"a": [1, 2]})
    assert code_of(lambda: run(bins, L["size"], ctx=[MAP_KEY, "zz"])) == 26
    assert code_of(lambda: run(bins, L["size"], ctx=[MAP_KEY, "a", LIST_INDEX, 5])) == 26
    assert code_of(lambda: run(bins, L["size"], ctx=[LIST_INDEX, 0])) == 26  # a map, not a list
    assert code_of(lambda: run(bins, L["size"], ctx=[MAP_KEY, "a", LIST_INDEX, 0])) == 12  # an int
    assert code_of(lambda: run(bins, L["size"], ctx=[MAP_KEY])) == 4


def test_create_contexts_build_what_is_missing():
    bins = {}
    # a map created at the bin (key-ordered, 0x80), a list created at key "k"
    assert run(bins, L["append"], 7, ctx=[MAP_KEY | 0x80, "k"]) == 1
    assert stored(bins) == {"k": [7]}
    assert V.from_particle(*bins["b"]).flags == V.MAP_K_ORDERED
    # a list index past the end pads with nils only when unbounded (0x80)
    assert run(bins, M["put"], "z", 1, ctx=[MAP_KEY, "k", LIST_INDEX | 0x80, 3]) == 1
    assert stored(bins) == {"k": [7, None, None, {"z": 1}]}
    assert code_of(lambda: run(bins, M["put"], "z", 1, ctx=[MAP_KEY, "k", LIST_INDEX | 0x40, 9])) == 26
    # without a create flag a missing key is not applicable
    assert code_of(lambda: run(bins, L["append"], 1, ctx=[MAP_KEY, "nope"])) == 26
    # reads never create
    assert code_of(lambda: run(bins, L["size"], ctx=[MAP_KEY | 0x40, "nope"])) == 26


def test_create_context_nested_two_levels_on_a_missing_bin():
    bins = {}
    run(bins, L["append"], 1, ctx=[MAP_KEY | 0x40, "a", MAP_KEY | 0xC0, "b"])
    assert stored(bins) == {"a": {"b": [1]}}
    inner = V.from_particle(*bins["b"]).items[b"\x03a"]
    assert inner.flags == V.MAP_KV_ORDERED


def test_a_change_inside_an_ordered_list_keeps_it_sorted():
    bins = {}
    run(bins, L["append_items"], [[1], [5]], 1)  # an ordered list of lists
    run(bins, L["append"], 9, ctx=[LIST_INDEX, 0])
    run(bins, L["set"], 0, 7, ctx=[LIST_INDEX, 0])
    assert stored(bins) == [[5], [7, 9]]


def test_public_api_for_other_modules():
    value = V.from_python({"a": [3, 1, 2]})
    assert cdt.apply_read(value, L["get_by_rank_range"], [VALUE, 0, 2], ctx=[MAP_KEY, b"\x03a"]) == [2, 1]
    top, result = cdt.apply_modify(value, L["clear"], [], ctx=[MAP_KEY, b"\x03a"])
    assert result is cdt.NO_RESULT and V.to_python(top) == {"a": []}
    top, result = cdt.apply_modify(None, M["put"], [b"\x03k", 1])
    assert result == 1 and V.to_python(top) == {"k": 1}
    code, args, ctx = cdt.decode_request(V.pack(V.CdtList([0xFF, V.CdtList([0x22, b"\x03a"]), V.CdtList([16])])))
    assert (code, args, ctx) == (16, [], [0x22, b"\x03a"])


def test_persist_index_is_dropped_below_the_top_level():
    bins = bin_of({"a": [2, 1]})
    run(bins, L["set_type"], 0x11, ctx=[MAP_KEY, "a"])
    assert V.from_particle(*bins["b"]).items[b"\x03a"].flags == V.LIST_ORDERED
    assert stored(bins) == {"a": [1, 2]}
    run(bins, M["set_type"], 0x11)
    assert V.from_particle(*bins["b"]).flags == 0x11


def test_a_remove_through_a_creating_context_that_finds_nothing_changes_nothing():
    bins = bin_of({"a": [1]})
    before = dict(bins)
    assert run(bins, L["pop"], 0, ctx=[MAP_KEY, "a", LIST_INDEX | 0x80, 5]) is None
    assert run(bins, M["remove_by_key"], VALUE, "k", ctx=[MAP_KEY | 0x40, "new"]) is None
    assert bins == before
    assert run({}, L["pop"], 0, ctx=[MAP_KEY | 0x40, "new"]) is None
    assert code_of(lambda: run(bins, L["pop"], 0, ctx=[MAP_KEY, "new"])) == 26


@pytest.mark.parametrize("rank, changed", [(0, 1), (1, 3), (3, 4), (6, 0), (-1, 0)])
def test_a_rank_context_among_equal_values_lands_where_the_server_lands(rank, changed):
    """The real server (CE 8.1) finds a rank in an unordered list with its order heap."""
    items = [[5, "a"], [1, "b"], [5, "a"], [1, "b"], [5, "a"], [2, "c"], [5, "a"]]
    bins = bin_of({"l": items})
    run(bins, L["append"], "X", ctx=[MAP_KEY, "l", LIST_RANK, rank])
    assert stored(bins)["l"] == [item + ["X"] if i == changed else item for i, item in enumerate(items)]
