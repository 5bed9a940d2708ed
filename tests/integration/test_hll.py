"""HyperLogLog operations and HLL expressions with the official client against a node
process. Expected numbers are the real server's answers to the same requests (Aerospike
8.1, recorded side by side): an HLL estimate is exact arithmetic on exact registers, so
ours must equal them, not merely be close."""

import aerospike
import pytest
from aerospike import exception as ex
from aerospike_helpers import expressions as exp
from aerospike_helpers.operations import expression_operations as eo
from aerospike_helpers.operations import hll_operations as h
from aerospike_helpers.operations import operations as op

NS, SET = "test", "hll"
WORDS = [f"w{i}" for i in range(1000)]


def results(aero, key, ops):
    return [value for _, value in aero.operate_ordered(key, ops)[2]]


@pytest.fixture
def sketches(aero):
    """A record with HLLs of overlapping word sets: a/b plain (10 index bits), m/n with 8 minhash bits."""
    key = (NS, SET, "sketches")
    assert results(aero, key, [
        h.hll_add("a", WORDS[:600], 10, 0), h.hll_add("b", WORDS[400:], 10, 0),
        h.hll_add("m", WORDS[:600], 8, 8), h.hll_add("n", WORDS[400:], 8, 8),
        h.hll_get_count("a"), h.hll_describe("m"),
    ]) == [494, 499, 374, 361, 589, [8, 8]]  # add answers how many registers changed
    return key, aero.get(key)[2]


def test_estimates_equal_the_real_servers(aero, sketches):
    key, bins = sketches
    assert type(bins["a"]).__name__ == "HyperLogLog" and len(bins["a"]) == 11 + 6 * 1024 // 8
    assert results(aero, key, [
        h.hll_get_union_count("a", [bins["b"]]), h.hll_get_intersect_count("a", [bins["b"]]),
        h.hll_get_similarity("a", [bins["b"]]), h.hll_get_intersect_count("m", [bins["n"]]),
        h.hll_get_similarity("m", [bins["n"]]), h.hll_get_intersect_count("m", [bins["n"], bins["m"]]),
    ]) == [960, 222, 0.23125, 224, 0.2251504394515994, 225]


def test_union_refresh_and_fold(aero, sketches):
    key, bins = sketches
    assert results(aero, key, [
        h.hll_set_union("u", [bins["a"], bins["b"]]), h.hll_get_count("u"), h.hll_refresh_count("u"),
        h.hll_fold("u", 6), h.hll_get_count("u"),
    ]) == [None, 960, 960, None, 1383]
    assert results(aero, key, [h.hll_describe("u")]) == [[6, 0]]
    union = results(aero, key, [h.hll_get_union("a", [bins["b"]])])[0]
    aero.operate(key, [h.hll_set_union("v", [bins["a"], bins["b"]])])
    assert union == aero.get(key)[2]["v"]  # the same registers, byte for byte


def test_policies_and_errors_answer_as_the_server(aero, sketches):
    key, _ = sketches
    create_only = {"flags": aerospike.HLL_WRITE_CREATE_ONLY}
    for ops, error in (([h.hll_init("a", 12, 0, create_only)], ex.BinExistsError),
                       ([h.hll_init("new", 12, 0, {"flags": aerospike.HLL_WRITE_UPDATE_ONLY})], ex.BinNotFound),
                       ([h.hll_refresh_count("missing")], ex.BinNotFound),
                       ([h.hll_fold("m", 6)], ex.OpNotApplicable),  # minhash bits cannot be folded
                       ([h.hll_set_union("a", [aero.get(key)[2]["m"]])], ex.OpNotApplicable),  # no allow-fold
                       ([h.hll_init("q", 16, 49)], ex.InvalidRequest),  # more than 64 bits
                       ([h.hll_add("q", [[1]], 8, 0)], ex.InvalidRequest)):  # lists cannot be added
        with pytest.raises(error):
            aero.operate(key, ops)
    no_fail = {"flags": aerospike.HLL_WRITE_CREATE_ONLY | aerospike.HLL_WRITE_NO_FAIL}
    aero.operate(key, [h.hll_init("a", 12, 0, no_fail)])  # quietly left alone
    assert results(aero, key, [h.hll_describe("a"), h.hll_get_count("missing")]) == [[10, 0], None]
    aero.put(key, {"i": 1})
    with pytest.raises(ex.BinIncompatibleType):
        aero.operate(key, [h.hll_add("i", ["x"], 8, 0)])
    with pytest.raises(ex.BinIncompatibleType):
        aero.operate(key, [op.increment("a", 1)])


def test_hll_in_expressions(aero, sketches):
    key, bins = sketches
    assert results(aero, key, [
        eo.expression_read("x", exp.HLLGetCount(exp.HLLAdd(None, ["q", "r"], 8, 0, exp.HLLBin("a"))).compile()),
        eo.expression_read("y", exp.HLLMayContain(["w1", "w999"], exp.HLLBin("a")).compile()),
        eo.expression_read("z", exp.HLLGetUnionCount([bins["b"]], exp.HLLBin("a")).compile()),
        eo.expression_read("d", exp.HLLDescribe(exp.HLLBin("m")).compile()),
    ]) == [593, 0, 960, [8, 8]]
    aero.operate(key, [eo.expression_write("w", exp.HLLInit(None, 6, 0, exp.HLLBin("a")).compile())])
    assert results(aero, key, [h.hll_describe("w"), h.hll_get_count("w")]) == [[6, 0], 0]
    for threshold, passes in ((500, True), (700, False)):
        rule = exp.GT(exp.HLLGetCount(exp.HLLBin("a")), threshold).compile()
        if passes:
            assert aero.get(key, policy={"expressions": rule})[2]["a"] == bins["a"]
        else:
            with pytest.raises(ex.FilteredOut):
                aero.get(key, policy={"expressions": rule})
