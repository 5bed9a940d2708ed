"""List and map operations with the official client against a node process."""

import aerospike
import pytest
from aerospike import exception as ex
from aerospike_helpers import cdt_ctx as ctx
from aerospike_helpers.operations import list_operations as lo
from aerospike_helpers.operations import map_operations as mo
from aerospike_helpers.operations import operations as op

NS, SET = "test", "cdt"


def results(aero, key, ops):
    """Each op's result in request order."""
    return [value for _, value in aero.operate_ordered(key, ops)[2]]


def test_list_modify_and_read_ops(aero):
    key = (NS, SET, "list")
    assert results(aero, key, [
        lo.list_append("l", 1),
        lo.list_append_items("l", [2, "a", 3.5, b"blob"]),
        lo.list_insert("l", 1, 9),
        lo.list_insert_items("l", -1, [True, None]),
        lo.list_size("l"),
        lo.list_get("l", 0),
        lo.list_get_range("l", 1, 3),
        lo.list_increment("l", 0, 41),
    ]) == [1, 5, 6, 8, 8, 1, [9, 2, "a"], 42]
    assert aero.get(key)[2]["l"] == [42, 9, 2, "a", 3.5, True, None, b"blob"]
    assert results(aero, key, [
        lo.list_set("l", 1, "set"),
        lo.list_pop("l", -1),
        lo.list_pop_range("l", 0, 2),
        lo.list_remove("l", 0),
        lo.list_remove_range("l", 1, 5),
        lo.list_get_range("l", 0, 10),
    ]) == [b"blob", [42, "set"], 1, 3, ["a"]]  # list_set has no result: no answer
    assert results(aero, key, [lo.list_append_items("l", [5, 1, 4]), lo.list_trim("l", 1, 2),
                               lo.list_get_range("l", 0, 10)]) == [4, 2, [5, 1]]
    results(aero, key, [lo.list_sort("l", aerospike.LIST_SORT_DEFAULT)])
    assert aero.get(key)[2]["l"] == [1, 5]
    results(aero, key, [lo.list_clear("l")])
    assert aero.get(key)[2]["l"] == []


def test_ordered_list_keeps_its_order_across_writes(aero):
    key = (NS, SET, "ordered")
    policy = {"list_order": aerospike.LIST_ORDERED}
    aero.operate(key, [lo.list_append_items("l", [3, "b", 1, 2.5, [1], "a"], policy)])
    assert aero.get(key)[2]["l"] == [1, 3, "a", "b", [1], 2.5]
    aero.operate(key, [lo.list_append("l", 2)])  # no policy: the stored order still holds
    assert aero.get(key)[2]["l"] == [1, 2, 3, "a", "b", [1], 2.5]
    with pytest.raises(ex.OpNotApplicable):
        aero.operate(key, [lo.list_insert("l", 0, 0)])
    aero.put((NS, SET, "unsorted"), {"l": [3, 1, 2]})
    aero.operate((NS, SET, "unsorted"), [lo.list_set_order("l", aerospike.LIST_ORDERED), lo.list_append("l", 0)])
    assert aero.get((NS, SET, "unsorted"))[2]["l"] == [0, 1, 2, 3]


def test_list_get_and_remove_by_with_return_types(aero):
    key = (NS, SET, "by")
    aero.put(key, {"l": [5, 1, 9, 3, 1]})
    R = aerospike
    assert results(aero, key, [
        lo.list_get_by_index("l", 2, R.LIST_RETURN_VALUE),
        lo.list_get_by_index("l", 2, R.LIST_RETURN_RANK),
        lo.list_get_by_index_range("l", 1, R.LIST_RETURN_VALUE, 2, inverted=True),
        lo.list_get_by_rank("l", -1, R.LIST_RETURN_INDEX),
        lo.list_get_by_rank_range("l", 0, R.LIST_RETURN_VALUE, 3),
        lo.list_get_by_value("l", 1, R.LIST_RETURN_INDEX),
        lo.list_get_by_value("l", 1, R.LIST_RETURN_COUNT, inverted=True),
        lo.list_get_by_value("l", 7, R.LIST_RETURN_EXISTS),
        lo.list_get_by_value_list("l", [9, 3], R.LIST_RETURN_REVERSE_INDEX),
        lo.list_get_by_value_range("l", R.LIST_RETURN_VALUE, 2, 6),
        lo.list_get_by_value_rank_range_relative("l", 4, -1, R.LIST_RETURN_VALUE, count=2),
        lo.list_get_by_rank_range("l", 0, R.LIST_RETURN_REVERSE_RANK, 2),
    ]) == [9, 4, [5, 3, 1], 2, [3, 1, 1], [1, 4], 3, False, [2, 1], [5, 3], [3, 5], [3, 4]]
    assert results(aero, key, [
        lo.list_remove_by_value("l", 1, R.LIST_RETURN_INDEX),
        lo.list_remove_by_rank_range("l", 0, R.LIST_RETURN_VALUE, 1, inverted=True),
        lo.list_remove_by_index("l", 0, R.LIST_RETURN_NONE),
    ]) == [[1, 4], [5, 9]]  # return type NONE: no answer
    assert aero.get(key)[2]["l"] == []


def test_list_write_flags_and_their_result_codes(aero):
    key = (NS, SET, "flags")
    aero.put(key, {"l": [1, 2]})
    unique = {"write_flags": aerospike.LIST_WRITE_ADD_UNIQUE}
    with pytest.raises(ex.ElementExistsError):  # 24
        aero.operate(key, [lo.list_append("l", 2, unique)])
    no_fail = {"write_flags": aerospike.LIST_WRITE_ADD_UNIQUE | aerospike.LIST_WRITE_NO_FAIL}
    assert results(aero, key, [lo.list_append("l", 2, no_fail)]) == [2]
    partial = {"write_flags": no_fail["write_flags"] | aerospike.LIST_WRITE_PARTIAL}
    assert results(aero, key, [lo.list_append_items("l", [2, 3], partial)]) == [3]
    bounded = {"write_flags": aerospike.LIST_WRITE_INSERT_BOUNDED}
    with pytest.raises(ex.OpNotApplicable):  # 26
        aero.operate(key, [lo.list_append("l", 4), lo.list_insert("l", 10, 0, bounded)])
    record = aero.get(key)
    assert record[2]["l"] == [1, 2, 3]  # the failed operate changed nothing
    with pytest.raises(ex.OpNotApplicable):
        aero.operate(key, [lo.list_get("l", 3)])
    aero.put(key, {"i": 1})
    with pytest.raises(ex.BinIncompatibleType):  # 12
        aero.operate(key, [lo.list_append("i", 1)])
    with pytest.raises(ex.BinIncompatibleType):
        aero.operate(key, [mo.map_size("l")])


def test_map_ops_orders_and_return_types(aero):
    key = (NS, SET, "map")
    R = aerospike
    assert results(aero, key, [
        mo.map_put("m", "b", 2, {"map_order": R.MAP_KEY_ORDERED}),
        mo.map_put_items("m", {"c": 3, "a": 1, "d": 0}),
        mo.map_increment("m", "a", 10),
        mo.map_decrement("m", "n", 2),
        mo.map_size("m"),
    ]) == [1, 4, 11, -2, 5]
    assert list(aero.get(key)[2]["m"].items()) == [("a", 11), ("b", 2), ("c", 3), ("d", 0), ("n", -2)]
    assert results(aero, key, [
        mo.map_get_by_key("m", "b", R.MAP_RETURN_VALUE),
        mo.map_get_by_key_range("m", "b", "d", R.MAP_RETURN_KEY),
        mo.map_get_by_index("m", -1, R.MAP_RETURN_KEY_VALUE),
        mo.map_get_by_index_range("m", 0, 2, R.MAP_RETURN_ORDERED_MAP),
        mo.map_get_by_rank("m", 0, R.MAP_RETURN_KEY),
        mo.map_get_by_rank_range("m", -2, 2, R.MAP_RETURN_UNORDERED_MAP),
        mo.map_get_by_value("m", 3, R.MAP_RETURN_INDEX),
        mo.map_get_by_value_range("m", 0, 3, R.MAP_RETURN_COUNT),
        mo.map_get_by_value_list("m", [0, 2], R.MAP_RETURN_KEY, inverted=True),
        mo.map_get_by_key_list("m", ["a", "zz"], R.MAP_RETURN_EXISTS),
        mo.map_get_by_key_index_range_relative("m", "b", 1, R.MAP_RETURN_KEY, count=2),
        mo.map_get_by_value_rank_range_relative("m", 3, 0, R.MAP_RETURN_VALUE),
    ]) == [2, ["b", "c"], ["n", -2], {"a": 11, "b": 2}, "n", {"c": 3, "a": 11}, [2], 2,
           ["a", "c", "n"], True, ["c", "d"], [3, 11]]
    assert results(aero, key, [
        mo.map_remove_by_key("m", "n", R.MAP_RETURN_VALUE),
        mo.map_remove_by_key_list("m", ["a", "b"], R.MAP_RETURN_KEY_VALUE),
        mo.map_remove_by_value_range("m", 0, 1, R.MAP_RETURN_KEY),
        mo.map_size("m"),
        mo.map_clear("m"),
        mo.map_size("m"),
    ]) == [-2, ["a", 11, "b", 2], ["d"], 1, None, 0]


def test_map_write_flags_and_their_result_codes(aero):
    key = (NS, SET, "mflags")
    aero.put(key, {"m": {"a": 1}})
    create_only = {"map_write_flags": aerospike.MAP_WRITE_FLAGS_CREATE_ONLY}
    update_only = {"map_write_flags": aerospike.MAP_WRITE_FLAGS_UPDATE_ONLY}
    with pytest.raises(ex.ElementExistsError):  # 24
        aero.operate(key, [mo.map_put("m", "a", 2, create_only)])
    with pytest.raises(ex.ElementNotFoundError):  # 23
        aero.operate(key, [mo.map_put("m", "b", 2, update_only)])
    no_fail = {"map_write_flags": aerospike.MAP_WRITE_FLAGS_CREATE_ONLY | aerospike.MAP_WRITE_FLAGS_NO_FAIL}
    assert results(aero, key, [mo.map_put_items("m", {"a": 5, "b": 6}, no_fail)]) == [1]
    no_fail["map_write_flags"] |= aerospike.MAP_WRITE_FLAGS_PARTIAL
    assert results(aero, key, [mo.map_put_items("m", {"a": 5, "b": 6}, no_fail)]) == [2]
    assert aero.get(key)[2]["m"] == {"a": 1, "b": 6}
    results(aero, key, [mo.map_set_policy("m", {"map_order": aerospike.MAP_KEY_VALUE_ORDERED})])
    with pytest.raises(ex.OpNotApplicable):
        aero.operate(key, [mo.map_get_by_index("m", 5, aerospike.MAP_RETURN_KEY)])


def test_nested_contexts_read_modify_and_create(aero):
    key = (NS, SET, "nested")
    aero.put(key, {"d": {"users": [{"name": "ann", "tags": ["x"]}, {"name": "bob", "tags": []}]}})
    users = [ctx.cdt_ctx_map_key("users")]
    assert results(aero, key, [
        lo.list_size("d", ctx=users),
        mo.map_get_by_key("d", "name", aerospike.MAP_RETURN_VALUE, ctx=users + [ctx.cdt_ctx_list_index(-1)]),
        lo.list_append("d", "y", ctx=users + [ctx.cdt_ctx_list_index(0), ctx.cdt_ctx_map_key("tags")]),
        mo.map_size("d", ctx=users + [ctx.cdt_ctx_list_rank(0)]),
        lo.list_size("d", ctx=users + [ctx.cdt_ctx_list_value({"name": "bob", "tags": []}),
                                       ctx.cdt_ctx_map_key("tags")]),
    ]) == [2, "bob", 2, 2, 0]
    assert aero.get(key)[2]["d"]["users"][0]["tags"] == ["x", "y"]
    with pytest.raises(ex.OpNotApplicable):
        aero.operate(key, [lo.list_size("d", ctx=[ctx.cdt_ctx_map_key("nobody")])])
    # create contexts: a key-ordered map at "new", then a list padded out to index 2
    aero.operate(key, [lo.list_append("d", 7, ctx=[ctx.cdt_ctx_map_key_create("new", aerospike.MAP_KEY_ORDERED)])])
    aero.operate(key, [mo.map_put("d", "k", "v", ctx=[
        ctx.cdt_ctx_map_key_create("pad", aerospike.MAP_UNORDERED),
        ctx.cdt_ctx_list_index_create(2, aerospike.LIST_UNORDERED, True)])])
    bins = aero.get(key)[2]["d"]
    assert bins["new"] == [7]
    assert bins["pad"] == [None, None, {"k": "v"}]
    # on a record that does not exist yet
    fresh = (NS, SET, "created")
    aero.operate(fresh, [mo.map_put("m", "z", 1, ctx=[ctx.cdt_ctx_map_key_create("a", aerospike.MAP_UNORDERED)])])
    assert aero.get(fresh)[2] == {"m": {"a": {"z": 1}}}


def test_wildcard_and_infinity_in_value_ranges(aero):
    key = (NS, SET, "wild")
    aero.put(key, {"l": [[1, "a"], [2, "b"], [2, "c"], [3, "d"]]})
    assert results(aero, key, [
        lo.list_get_by_value("l", [2, aerospike.CDTWildcard()], aerospike.LIST_RETURN_VALUE),
        lo.list_get_by_value_range("l", aerospike.LIST_RETURN_INDEX, [2, aerospike.CDTWildcard()],
                                   [3, aerospike.CDTInfinite()]),
        lo.list_get_by_value_range("l", aerospike.LIST_RETURN_COUNT, [3], None),
    ]) == [[[2, "b"], [2, "c"]], [1, 2, 3], 1]


def test_several_ops_on_one_bin_each_answer(aero):
    key = (NS, SET, "multi")
    _, _, ordered = aero.operate_ordered(key, [lo.list_append("l", 1), lo.list_append("l", 2),
                                               lo.list_size("l"), op.read("l")])
    assert ordered == [("l", 1), ("l", 2), ("l", 2), ("l", [1, 2])]
    assert aero.operate(key, [lo.list_append("l", 3), lo.list_size("l")])[2] == {"l": 3}
    # a read of a bin that is not there answers nothing for that op
    assert results(aero, key, [lo.list_size("missing"), mo.map_size("missing")]) == [None, None]


def test_map_contexts_relative_removes_and_batch(aero):
    key = (NS, SET, "mapctx")
    aero.put(key, {"m": {"a": [3, 1], "b": {"x": 1}, "c": 5}})
    assert results(aero, key, [
        lo.list_size("m", ctx=[ctx.cdt_ctx_map_index(0)]),
        mo.map_size("m", ctx=[ctx.cdt_ctx_map_rank(-1)]),  # maps sort above lists and ints
        lo.list_get("m", 0, ctx=[ctx.cdt_ctx_map_value([3, 1])]),
        mo.map_remove_by_key_index_range_relative("m", "b", 0, aerospike.MAP_RETURN_KEY, count=1),
        mo.map_remove_by_value_rank_range_relative("m", 5, 0, aerospike.MAP_RETURN_VALUE, count=1),
        lo.list_remove_by_value_rank_range_relative("m", 2, 0, aerospike.LIST_RETURN_VALUE,
                                                    ctx=[ctx.cdt_ctx_map_key("a")]),
    ]) == [2, 1, 3, ["b"], [5], [3]]
    assert aero.get(key)[2]["m"] == {"a": [1]}
    with pytest.raises(ex.BinIncompatibleType):  # rank 0 is the list [1]... a map op on it
        aero.operate(key, [mo.map_size("m", ctx=[ctx.cdt_ctx_map_rank(0)])])
    keys = [(NS, SET, "batch1"), (NS, SET, "batch2")]
    rows = aero.batch_operate(keys, [lo.list_append("l", 1), lo.list_append("l", 2), lo.list_size("l")])
    assert [(row.result, row.record[2]) for row in rows.batch_records] == [(0, {"l": 2}), (0, {"l": 2})]
    assert aero.get(keys[1])[2] == {"l": [1, 2]}
