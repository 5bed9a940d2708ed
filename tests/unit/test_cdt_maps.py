"""Map ops through cdt.read / cdt.modify, with the server's results and result codes."""


from cluster.core.cdt.optable import MAP_OPS
from tests.unit.test_cdt_support import bin_of, code_of, run, stored, stored_flags

OP = {name: code for name, (code, _, _) in MAP_OPS.items()}
NONE, INDEX, REVINDEX, RANK, REVRANK, COUNT, KEY, VALUE, KEY_VALUE = 0, 1, 2, 3, 4, 5, 6, 7, 8
EXISTS, UNORDERED_MAP, ORDERED_MAP = 13, 16, 17
INVERTED = 0x10000
K_ORDERED, KV_ORDERED = 1, 3
CREATE_ONLY, UPDATE_ONLY, NO_FAIL, PARTIAL = 1, 2, 4, 8


def test_put_creates_the_map_with_its_order_and_answers_the_size():
    bins = {}
    assert run(bins, OP["put"], "b", 2, K_ORDERED) == 1
    assert run(bins, OP["put_items"], {"c": 3, "a": 1}) == 3
    assert list(stored(bins).items()) == [("a", 1), ("b", 2), ("c", 3)]
    assert stored_flags(bins) == K_ORDERED


def test_write_flags_create_only_update_only_no_fail_partial():
    bins = bin_of({"a": 1})
    assert code_of(lambda: run(bins, OP["put"], "a", 9, 0, CREATE_ONLY)) == 24
    assert code_of(lambda: run(bins, OP["put"], "z", 9, 0, UPDATE_ONLY)) == 23
    assert run(bins, OP["put"], "a", 9, 0, CREATE_ONLY | NO_FAIL) == 1
    assert run(bins, OP["put_items"], {"a": 9, "b": 2}, 0, CREATE_ONLY | NO_FAIL) == 1
    assert run(bins, OP["put_items"], {"a": 9, "b": 2}, 0, CREATE_ONLY | NO_FAIL | PARTIAL) == 2
    assert stored(bins) == {"a": 1, "b": 2}
    # the older op codes: add is create-only, replace update-only
    assert code_of(lambda: run(bins, OP["add"], "a", 5)) == 24
    assert code_of(lambda: run(bins, OP["replace"], "q", 5)) == 23
    assert run(bins, OP["replace"], "a", 5) == 2
    assert stored(bins)["a"] == 5


def test_map_keys_must_be_scalars():
    assert code_of(lambda: run({}, OP["put"], 1.5, 1)) == 4


def test_increment_and_decrement():
    bins = {}
    assert run(bins, OP["increment"], "n", 5) == 5
    assert run(bins, OP["decrement"], "n", 2) == 3
    assert run(bins, OP["increment"], "n") == 4
    assert run(bins, OP["put"], "f", 1.5) == 2
    assert run(bins, OP["increment"], "f", 1) == 2.5
    run(bins, OP["put"], "s", "x")
    assert code_of(lambda: run(bins, OP["increment"], "s", 1)) == 4


def test_clear_size_and_set_policy():
    bins = bin_of({"b": 1, "a": 2})
    assert run(bins, OP["size"]) == 2
    assert run(bins, OP["set_type"], KV_ORDERED) is None
    assert list(stored(bins)) == ["a", "b"] and stored_flags(bins) == KV_ORDERED
    assert run(bins, OP["clear"]) is None
    assert stored(bins) == {} and stored_flags(bins) == KV_ORDERED
    assert code_of(lambda: run(bins, OP["set_type"], 0x40)) == 26


def test_index_is_key_order_even_in_an_unordered_map():
    bins = bin_of({"c": 3, "a": 10, "b": 2})
    assert run(bins, OP["get_by_index"], KEY, 0) == "a"
    assert run(bins, OP["get_by_index"], VALUE, -1) == 3
    assert run(bins, OP["get_by_index_range"], KEY, 1) == ["b", "c"]
    assert code_of(lambda: run(bins, OP["get_by_index"], KEY, 3)) == 26


def test_rank_is_value_order():
    bins = bin_of({"c": 3, "a": 10, "b": 2})
    assert run(bins, OP["get_by_rank"], KEY, 0) == "b"
    assert run(bins, OP["get_by_rank"], VALUE, -1) == 10
    assert run(bins, OP["get_by_rank_range"], VALUE, 0, 2) == [2, 3]
    assert run(bins, OP["get_by_key"], RANK, "a") == 2
    assert run(bins, OP["get_by_key"], REVRANK, "a") == 0
    assert run(bins, OP["get_by_key"], INDEX, "c") == 2
    assert run(bins, OP["get_by_key"], REVINDEX, "c") == 0


def test_return_types_key_value_and_maps():
    bins = bin_of({"c": 3, "a": 1, "b": 2})
    assert run(bins, OP["get_by_key"], VALUE, "a") == 1
    assert run(bins, OP["get_by_key"], VALUE, "zz") is None
    assert run(bins, OP["get_by_key"], EXISTS, "zz") is False
    assert run(bins, OP["get_by_key_list"], KEY_VALUE, ["b", "a"]) == {"a": 1, "b": 2}
    assert run(bins, OP["get_by_key_list"], UNORDERED_MAP, ["b", "a"]) == {"a": 1, "b": 2}
    assert run(bins, OP["get_by_key_list"], ORDERED_MAP, ["b", "a"]) == {"a": 1, "b": 2}
    assert run(bins, OP["get_by_key_list"], COUNT | INVERTED, ["b", "a"]) == 1
    assert run(bins, OP["get_by_value"], KEY, 2) == "b"
    assert run(bins, OP["get_all_by_value"], KEY, 2) == ["b"]
    assert run(bins, OP["get_by_value_list"], KEY, [3, 1]) == ["c", "a"]  # storage order


def test_key_and_value_intervals():
    bins = bin_of({"a": 1, "b": 2, "c": 3, 5: 0})
    assert run(bins, OP["get_by_key_interval"], KEY, "a", "c") == ["a", "b"]
    assert run(bins, OP["get_by_key_interval"], KEY, "b") == ["b", "c"]
    # ints sort below strings; an unordered map answers in storage order
    assert run(bins, OP["get_by_key_interval"], KEY, 0, "b") == ["a", 5]
    assert run(bins, OP["get_by_value_interval"], KEY, 2, 10) == ["b", "c"]
    assert run(bins, OP["get_by_value_interval"], VALUE | INVERTED, 2, 10) == [1, 0]


def test_relative_ranges():
    bins = bin_of({0: 17, 4: 2, 5: 15, 9: 10})
    # the client documentation's examples
    assert run(bins, OP["get_by_key_rel_index_range"], KEY, 5, 0) == [5, 9]
    assert run(bins, OP["get_by_key_rel_index_range"], KEY, 5, 1) == [9]
    assert run(bins, OP["get_by_key_rel_index_range"], KEY, 5, -1) == [4, 5, 9]
    assert run(bins, OP["get_by_key_rel_index_range"], KEY, 3, 2) == [9]
    assert run(bins, OP["get_by_key_rel_index_range"], KEY, 3, -2) == [0, 4, 5, 9]
    assert run(bins, OP["get_by_key_rel_index_range"], KEY, 3, -2, 2) == [0]
    assert run(bins, OP["get_by_value_rel_rank_range"], VALUE, 11, 1) == [17]
    assert run(bins, OP["get_by_value_rel_rank_range"], VALUE, 11, -1) == [10, 15, 17]
    assert run(bins, OP["get_by_value_rel_rank_range"], VALUE, 11, -1, 1) == [10]


def test_removes_answer_then_remove():
    bins = bin_of({"a": 1, "b": 2, "c": 3, "d": 4})
    assert run(bins, OP["remove_by_key"], VALUE, "a") == 1
    assert run(bins, OP["remove_by_key_list"], KEY, ["b", "zz"]) == ["b"]
    assert run(bins, OP["remove_by_rank_range"], KEY | INVERTED, 0, 1) == ["d"]
    assert stored(bins) == {"c": 3}
    assert run(bins, OP["remove_by_index"], NONE, 0) is None
    assert stored(bins) == {}
    assert run({}, OP["remove_by_key"], VALUE, "a") is None  # no bin: a no-op


def test_replace_items_on_a_missing_bin_is_element_not_found():
    assert code_of(lambda: run({}, OP["replace_items"], {"a": 1})) == 23


def test_map_op_on_a_list_bin_is_incompatible():
    assert code_of(lambda: run(bin_of([1]), OP["size"])) == 12


def test_unordered_map_answers_scanned_elements_in_storage_order():
    bins = bin_of({"c": 1, "a": 1, "b": 2})
    assert run(bins, OP["get_all_by_value"], KEY, 1) == ["c", "a"]
    assert run(bins, OP["get_by_index_range"], KEY, 0, 2) == ["a", "b"]
    assert run(bins, OP["get_by_index_range"], KEY | INVERTED, 1, 1) == ["c", "a"]
    # a key-ordered map stores in key order
    bins = {}
    run(bins, OP["put_items"], {"c": 1, "a": 1}, K_ORDERED)
    assert run(bins, OP["get_all_by_value"], KEY, 1) == ["a", "c"]


def test_a_kv_ordered_map_answers_value_picks_in_value_order():
    bins = {}
    run(bins, OP["put_items"], {"a": 3, "b": 1, "c": 2}, KV_ORDERED)
    assert run(bins, OP["get_by_value_interval"], KEY, 1, 10) == ["b", "c", "a"]
    assert run(bins, OP["get_by_value_interval"], RANK, 2, 10) == [1, 2]
    unordered = bin_of({"a": 3, "b": 1, "c": 2})
    assert run(unordered, OP["get_by_value_interval"], KEY, 1, 10) == ["a", "b", "c"]


def test_map_indexes_come_back_in_the_order_the_pairs_were_found():
    bins = bin_of({"a": 3, "b": 1, "c": 2})
    assert run(bins, OP["get_by_rank_range"], INDEX, 0, 3) == [1, 2, 0]
    assert run(bins, OP["get_by_rank_range"], 11, 1, 2) == [1, 2]  # RANK_RANGE
    assert run(bins, OP["get_by_index_range"], INDEX, 1) == [1, 2]


def test_a_span_answers_reversed_indexes_and_ranks_in_ascending_runs():
    """As the real server (CE 8.1): a contiguous index or rank span counted from the end
    still runs ascending; INVERTED gives the run before the span, then the run after."""
    bins = bin_of({"a": 7, "b": 6, "c": 5, "d": 8, "e": 9, "f": 10, "g": 6})
    assert run(bins, OP["get_by_index_range"], REVINDEX, 1, 3) == [3, 4, 5]
    assert run(bins, OP["get_by_index_range"], REVINDEX | INVERTED, 1, 3) == [6, 0, 1, 2]
    assert run(bins, OP["get_by_key_interval"], REVINDEX, "b", "e") == [3, 4, 5]
    assert run(bins, OP["get_by_rank_range"], REVRANK, 1, 3) == [3, 4, 5]
    assert run(bins, OP["get_all_by_value"], REVRANK, 6) == [4, 5]
    assert run(bins, OP["get_by_value_interval"], REVRANK, 6, 9) == [2, 3, 4, 5]
    assert run(bins, OP["get_all_by_value"], REVRANK | INVERTED, 6) == [6, 0, 1, 2, 3]


def test_map_ranks_order_equal_values_by_key_and_value_lists_answer_item_by_item():
    """As the real server (CE 8.1) answers; the pairs are stored e, c, a, d, b."""
    bins = bin_of({"e": 6, "c": 6, "a": 6, "d": 5, "b": 7})
    assert [run(bins, OP["get_by_key"], RANK, k) for k in "abcde"] == [1, 4, 2, 0, 3]
    assert run(bins, OP["get_by_key"], REVRANK, "e") == 1
    assert run(bins, OP["get_by_key_interval"], RANK, "a", "d") == [1, 4, 2]
    assert run(bins, OP["get_by_index_range"], RANK, 0, 4) == [1, 4, 2, 0]
    assert run(bins, OP["get_by_index_range"], REVRANK, 0, 5) == [0, 1, 2, 3, 4]  # every element
    assert run(bins, OP["get_by_key_list"], INDEX, ["e", "a"]) == [4, 0]  # in request order
    assert code_of(lambda: run(bins, OP["get_by_key_list"], RANK, ["e", "a"])) == 26
    bins = bin_of({"a": 7, "b": 6, "c": 5, "d": 8, "e": 9, "f": 10, "g": 6})
    assert run(bins, OP["get_by_value_list"], RANK, [9, 5, 6]) == [5, 0, 1, 2]
    assert run(bins, OP["get_by_value_list"], REVRANK, [9, 5, 6]) == [1, 6, 5, 4]
    assert run(bins, OP["get_by_value_list"], RANK | INVERTED, [9, 5, 6]) == [3, 4, 6]
    assert run(bins, OP["get_by_value_list"], REVRANK | INVERTED, [9, 5, 6]) == [2, 3, 0]
    assert run(bins, OP["get_by_key_list"], REVINDEX, ["e", "a", "c"]) == [2, 6, 4]
    assert run(bins, OP["get_by_key_list"], REVINDEX | INVERTED, ["e", "a", "c"]) == [5, 3, 0, 1]


def test_an_inverted_rank_range_at_either_end_answers_the_rest_in_rank_order():
    """Recorded from Aerospike 8.1: the complement of a rank range that starts at the lowest
    rank or ends at the highest is itself a rank range, answered in rank order; the
    complement of one in the middle comes from a mask, in storage order."""
    start = {"ant": 5, "barn": {"horse": "shoe"}, "bee": "aaa", "cage": ["bird"], "cat": "dog", "zed": 1.5}
    bins = bin_of(start)
    assert run(bins, OP["get_by_rank_range"], VALUE | INVERTED, 0, 3) == [["bird"], {"horse": "shoe"}, 1.5]
    assert run(bins, OP["get_by_rank_range"], INDEX | INVERTED, 0, 3) == [3, 1, 5]
    assert run(bins, OP["get_by_rank_range"], VALUE | INVERTED, -2, 2) == [5, "aaa", "dog", ["bird"]]
    assert run(bins, OP["get_by_rank_range"], VALUE | INVERTED, 1, 2) == [5, {"horse": "shoe"}, ["bird"], 1.5]
    assert run(bins, OP["get_by_value_rel_rank_range"], VALUE | INVERTED, "aaa", -1, 2) == [
        "dog", ["bird"], {"horse": "shoe"}, 1.5]
    assert run(bins, OP["get_by_value_rel_rank_range"], VALUE | INVERTED, "dog", 0, 2) == [
        5, {"horse": "shoe"}, "aaa", 1.5]
    assert run(bins, OP["get_by_value_interval"], VALUE | INVERTED, 0, "b") == [
        {"horse": "shoe"}, ["bird"], "dog", 1.5]  # not a rank op: storage order
    assert run(bins, OP["remove_by_value_rel_rank_range"], INDEX | INVERTED, "dog", 1, 10) == [0, 2, 4]
    assert sorted(stored(bins)) == ["barn", "cage", "zed"]
