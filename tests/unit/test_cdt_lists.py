"""List ops through cdt.read / cdt.modify, with the server's results and result codes."""

import pytest

from cluster.core.cdt.optable import LIST_OPS
from tests.unit.test_cdt_support import bin_of, code_of, run, stored, stored_flags

OP = {name: code for name, (code, _, _) in LIST_OPS.items()}
NONE, INDEX, REVINDEX, RANK, REVRANK, COUNT, VALUE, EXISTS = 0, 1, 2, 3, 4, 5, 7, 13
INVERTED = 0x10000
ORDERED = 1
ADD_UNIQUE, INSERT_BOUNDED, NO_FAIL, PARTIAL = 1, 2, 4, 8


def test_append_creates_the_bin_and_answers_the_size():
    bins = {}
    assert run(bins, OP["append"], 5) == 1
    assert run(bins, OP["append_items"], [1, "a"]) == 3
    assert stored(bins) == [5, 1, "a"]


def test_append_to_an_ordered_list_sorts_and_persists_the_order_flag():
    bins = {}
    run(bins, OP["append_items"], [3, 1, 2], ORDERED)
    run(bins, OP["append"], 0)
    assert stored(bins) == [0, 1, 2, 3]
    assert stored_flags(bins) == ORDERED


def test_insert_pads_with_nils_unless_bounded():
    bins = bin_of([1, 2])
    assert run(bins, OP["insert"], 4, "x") == 5
    assert stored(bins) == [1, 2, None, None, "x"]
    assert code_of(lambda: run(bins, OP["insert"], 9, 1, INSERT_BOUNDED)) == 26
    assert run(bins, OP["insert"], 9, 1, INSERT_BOUNDED | NO_FAIL) == 5
    assert run(bins, OP["insert"], -1, "y") == 6
    assert stored(bins)[-2:] == ["y", "x"]
    assert code_of(lambda: run(bins, OP["insert"], -9, 1)) == 26


def test_insert_and_set_are_refused_on_an_ordered_list():
    bins = {}
    run(bins, OP["set_type"], ORDERED)
    run(bins, OP["append_items"], [2, 1])
    assert code_of(lambda: run(bins, OP["insert"], 0, 5)) == 26
    assert code_of(lambda: run(bins, OP["set"], 0, 5)) == 26


def test_add_unique_flags():
    bins = bin_of([1, 2])
    assert code_of(lambda: run(bins, OP["append"], 2, 0, ADD_UNIQUE)) == 24
    assert run(bins, OP["append"], 2, 0, ADD_UNIQUE | NO_FAIL) == 2
    # one clash: without PARTIAL nothing is added, with it the others are
    assert run(bins, OP["append_items"], [3, 1], 0, ADD_UNIQUE | NO_FAIL) == 2
    assert run(bins, OP["append_items"], [3, 1], 0, ADD_UNIQUE | NO_FAIL | PARTIAL) == 3
    assert stored(bins) == [1, 2, 3]
    # the same value twice in one request is not applicable
    assert code_of(lambda: run(bins, OP["append_items"], [7, 7], 0, ADD_UNIQUE)) == 26


def test_set_answers_nothing_and_pads_past_the_end():
    bins = bin_of(["a"])
    assert run(bins, OP["set"], 2, "c") is None
    assert stored(bins) == ["a", None, "c"]
    assert run(bins, OP["set"], -1, "z") is None
    assert stored(bins) == ["a", None, "z"]
    assert code_of(lambda: run(bins, OP["set"], 0, "z", ADD_UNIQUE)) == 24


def test_increment_keeps_the_elements_type():
    bins = bin_of([1, 2.5, "s"])
    assert run(bins, OP["increment"], 0, 5) == 6
    assert run(bins, OP["increment"], 1) == 3.5
    assert run(bins, OP["increment"], 0, 2.9) == 8  # int element: the double delta is truncated
    assert code_of(lambda: run(bins, OP["increment"], 2, 1)) == 4
    assert run(bins, OP["increment"], 4, 3) == 3
    assert stored(bins) == [8, 3.5, "s", None, 3]


def test_pop_remove_trim_clear():
    bins = bin_of([0, 1, 2, 3, 4, 5])
    assert run(bins, OP["pop"], -1) == 5
    assert run(bins, OP["pop_range"], 0, 2) == [0, 1]
    assert run(bins, OP["remove"], 0) == 1
    assert stored(bins) == [3, 4]
    assert code_of(lambda: run(bins, OP["pop"], 5)) == 26
    bins = bin_of([0, 1, 2, 3, 4, 5])
    assert run(bins, OP["remove_range"], 4) == 2
    assert run(bins, OP["trim"], 1, 2) == 2
    assert stored(bins) == [1, 2]
    assert run(bins, OP["clear"]) is None
    assert stored(bins) == []


def test_removes_on_a_missing_bin_are_no_ops():
    bins = {}
    assert run(bins, OP["pop"], 0) is None
    assert run(bins, OP["remove_by_value"], VALUE, 1) is None
    assert bins == {}
    assert code_of(lambda: run(bins, OP["sort"], 0)) == 12


def test_sort_and_drop_duplicates():
    bins = bin_of([3, "a", 1, 3, 2.0])
    run(bins, OP["sort"], 0)
    assert stored(bins) == [1, 3, 3, "a", 2.0]
    run(bins, OP["sort"], 1 | 2)
    assert stored(bins) == [2.0, "a", 3, 1]


def test_set_order_sorts_an_unordered_list():
    bins = bin_of([3, 1, 2])
    run(bins, OP["set_type"], ORDERED)
    assert stored(bins) == [1, 2, 3] and stored_flags(bins) == ORDERED
    assert code_of(lambda: run(bins, OP["set_type"], 0x40)) == 26


def test_get_size_and_ranges():
    bins = bin_of([10, 20, 30, 40])
    assert run(bins, OP["size"]) == 4
    assert run(bins, OP["get"], -1) == 40
    assert code_of(lambda: run(bins, OP["get"], 4)) == 26
    assert run(bins, OP["get_range"], 1, 2) == [20, 30]
    assert run(bins, OP["get_range"], -6, 3) == [10]  # starts before the first: the overlap
    assert run(bins, OP["get_range"], 7) == []
    assert run(bins, OP["get_range"], 2) == [30, 40]


def test_get_by_index_return_types():
    bins = bin_of([5, 1, 9, 3])
    assert run(bins, OP["get_by_index"], VALUE, 2) == 9
    assert run(bins, OP["get_by_index"], RANK, 2) == 3
    assert run(bins, OP["get_by_index"], REVRANK, 2) == 0
    assert run(bins, OP["get_by_index"], REVINDEX, 0) == 3
    assert run(bins, OP["get_by_index"], COUNT, 0) == 1
    assert run(bins, OP["get_by_index"], EXISTS, 0) is True
    assert run(bins, OP["get_by_index"], NONE, 0) is None
    assert code_of(lambda: run(bins, OP["get_by_index"], VALUE | INVERTED, 0)) == 26
    assert code_of(lambda: run(bins, OP["get_by_index"], 6, 0)) == 26  # KEY: maps only
    assert run(bins, OP["get_by_index_range"], VALUE | INVERTED, 1, 2) == [5, 3]
    assert run(bins, OP["get_by_index_range"], INDEX, 1) == [1, 2, 3]
    assert run(bins, OP["get_by_index_range"], REVINDEX, 1, 2) == [1, 2]  # a reversed span runs ascending
    assert run(bins, OP["get_by_index_range"], 9, 1, 2) == [1, 2]  # INDEX_RANGE: [start, count]


def test_get_by_rank():
    bins = bin_of([5, 1, 9, 3])
    assert run(bins, OP["get_by_rank"], VALUE, 0) == 1
    assert run(bins, OP["get_by_rank"], INDEX, -1) == 2
    assert run(bins, OP["get_by_rank_range"], VALUE, 1, 2) == [5, 3]  # the server's heap order
    assert run(bins, OP["get_by_rank_range"], VALUE | INVERTED, 1, 2) == [1, 9]
    assert run(bins, OP["get_by_rank_range"], INDEX, -2) == [0, 2]
    assert run(bins, OP["get_by_rank_range"], RANK, 1, 2) == [1, 2]


# What the real server (CE 8.1) answers for an unordered list: a rank range nearer the low
# ranks comes back in descending order, one nearer the top ascending (its order heap), and
# among equal values the heap decides which one a rank picks.
@pytest.mark.parametrize("values, rank, count, expected", [
    ([7, 6, 5, 8, 9, 10], 0, 3, [7, 6, 5]),
    ([7, 6, 5, 8, 9, 10], 2, 2, [8, 7]),
    ([7, 6, 5, 8, 9, 10], 0, 6, [10, 9, 8, 7, 6, 5]),
    ([7, 6, 5, 8, 9, 10], 1, 4, [9, 8, 7, 6]),
    ([7, 6, 5, 8, 9, 10], 3, 3, [8, 9, 10]),
    ([7, 6, 5, 8, 9, 10], -2, 2, [9, 10]),
    ([5, 1, 9, 3], 0, 4, [9, 5, 3, 1]),
    ([5, 1, 9, 3], 1, 3, [3, 5, 9]),
])
def test_rank_range_values_come_in_the_servers_heap_order(values, rank, count, expected):
    assert run(bin_of(values), OP["get_by_rank_range"], VALUE, rank, count) == expected


@pytest.mark.parametrize("rank, count, indexes, left", [
    (0, 1, [1], [5, 5, 1, 5, 2, 5, [1, 2]]),
    (3, 1, [4], [5, 1, 1, 5, 2, 5, [1, 2]]),
    (6, 1, [0], [1, 5, 1, 5, 2, 5, [1, 2]]),
    (2, 3, [0, 4, 5], [5, 1, 1, 5, [1, 2]]),
    (3, 3, [2, 4, 6], [5, 1, 1, 2, [1, 2]]),
])
def test_rank_range_among_equal_values_picks_what_the_server_picks(rank, count, indexes, left):
    assert run(bin_of([5, 1, 5, 1, 5, 2, 5]), OP["get_by_rank_range"], INDEX, rank, count) == indexes
    bins = bin_of([5, 1, 5, 1, 5, 2, 5, [1, 2]])
    run(bins, OP["remove_by_rank_range"], NONE, rank, count)
    assert stored(bins) == left


def test_get_by_value_and_value_list():
    bins = bin_of([1, "a", 1, [2, 3]])
    assert run(bins, OP["get_all_by_value"], INDEX, 1) == [0, 2]
    assert run(bins, OP["get_all_by_value"], COUNT | INVERTED, 1) == 2
    assert run(bins, OP["get_all_by_value"], EXISTS, 7) is False
    assert run(bins, OP["get_all_by_value_list"], VALUE, ["a", [2, 3]]) == ["a", [2, 3]]
    assert run(bins, OP["get_by_value"], INDEX, 99) == -1


def test_value_intervals_with_nil_absent_end_wildcard_and_inf():
    from cluster.core.cdt.values import INF, WILDCARD

    bins = bin_of([1, 5, "x", 2.5, [1, "a"], [2, "b"]])
    assert run(bins, OP["get_by_value_interval"], VALUE, 1, 5) == [1]
    assert run(bins, OP["get_by_value_interval"], VALUE, 5) == [5, "x", 2.5, [1, "a"], [2, "b"]]
    assert run(bins, OP["get_by_value_interval"], VALUE, None, 2) == [1]
    assert run(bins, OP["get_by_value_interval"], VALUE, 3, None) == []  # nil is the lowest value
    assert run(bins, OP["get_by_value_interval"], VALUE, [1, WILDCARD], [2, INF]) == [[1, "a"], [2, "b"]]
    assert run(bins, OP["get_all_by_value"], VALUE, [2, WILDCARD]) == [[2, "b"]]


def test_relative_rank_range():
    bins = bin_of([0, 4, 5, 9, 11, 15])
    # the client documentation's examples: value 5, rank -1 / 0 / 1 ...
    assert run(bins, OP["get_by_value_rel_rank_range"], VALUE, 5, 0) == [5, 9, 11, 15]
    assert run(bins, OP["get_by_value_rel_rank_range"], VALUE, 5, 0, 2) == [9, 5]  # heap order
    assert run(bins, OP["get_by_value_rel_rank_range"], VALUE, 5, -1, 2) == [5, 4]
    assert run(bins, OP["get_by_value_rel_rank_range"], VALUE, 3, 3) == [11, 15]
    assert run(bins, OP["get_by_value_rel_rank_range"], VALUE, 3, -3) == [15, 11, 9, 5, 4, 0]


def test_remove_by_variants_answer_then_remove():
    bins = bin_of([5, 1, 9, 3, 1])
    assert run(bins, OP["remove_all_by_value"], INDEX, 1) == [1, 4]
    assert stored(bins) == [5, 9, 3]
    assert run(bins, OP["remove_by_rank_range"], VALUE | INVERTED, 0, 1) == [5, 9]
    assert stored(bins) == [3]
    bins = bin_of([5, 1, 9, 3])
    assert run(bins, OP["remove_by_index"], VALUE, -1) == 3
    assert run(bins, OP["remove_by_value_interval"], COUNT, 2, 6) == 1
    assert run(bins, OP["remove_all_by_value_list"], NONE, [1, 9]) is None
    assert stored(bins) == []


def test_list_op_on_a_map_bin_is_incompatible():
    bins = bin_of({"a": 1})
    assert code_of(lambda: run(bins, OP["size"])) == 12
    assert code_of(lambda: run(bins, OP["append"], 1)) == 12


def test_bad_arguments_are_parameter_errors():
    bins = bin_of([1])
    assert code_of(lambda: run(bins, OP["get"])) == 4
    assert code_of(lambda: run(bins, OP["get"], "x")) == 4
    assert code_of(lambda: run(bins, 14)) == 4  # no such op


def test_ranks_of_single_elements_are_shared_by_equal_values_but_runs_for_value_picks():
    bins = bin_of([1, 5, 1])
    assert run(bins, OP["get_by_index"], RANK, 2) == 0  # two elements are equal: both rank 0
    assert run(bins, OP["get_by_index_range"], RANK, 1) == [2, 0]
    # an index range over every element answers every rank in order (the real server, CE 8.1)
    assert run(bins, OP["get_by_index_range"], RANK, 0) == [0, 1, 2]
    assert run(bins, OP["get_by_index_range"], REVRANK, -3, 3) == [0, 1, 2]
    assert run(bins, OP["get_all_by_value"], RANK, 1) == [0, 1]  # a value pick answers a run
    assert run(bins, OP["get_all_by_value"], REVRANK | INVERTED, 1) == [0]
    assert run(bins, OP["get_by_value_interval"], 11, 2, 9) == [2, 1]  # RANK_RANGE
    assert code_of(lambda: run(bins, OP["get_by_value_interval"], 9, 2, 9)) == 26  # no INDEX_RANGE
    assert code_of(lambda: run(bins, OP["get_by_rank_range"], 11 | INVERTED, 0, 1)) == 26


def test_value_list_ranks_answer_item_by_item_in_request_order():
    """As the real server (CE 8.1): each requested value's run of ranks, in request order."""
    bins = bin_of([7, 6, 5, 8, 9, 10, 6])
    assert run(bins, OP["get_all_by_value_list"], RANK, [9, 5, 6]) == [5, 0, 1, 2]
    assert run(bins, OP["get_all_by_value_list"], REVRANK, [9, 5, 6]) == [1, 6, 5, 4]
    assert run(bins, OP["get_all_by_value_list"], REVRANK | INVERTED, [9, 5, 6]) == [2, 3, 0]
    assert run(bin_of([6, 7, 6, 5, 6]), OP["get_all_by_value_list"], RANK, [6, 6, 5]) == [1, 2, 3, 0]
