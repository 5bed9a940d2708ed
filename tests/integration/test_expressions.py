"""Filter expressions and expression ops through the official client against a node process,
answered as the real server answers them (as/src/transaction/read.c, write.c, delete.c,
batch.c, query.c)."""

import aerospike
import pytest
from aerospike import exception as ex
from aerospike_helpers import expressions as exp
from aerospike_helpers.batch import records as br
from aerospike_helpers.operations import expression_operations as eop
from aerospike_helpers.operations import operations as op

from cluster.deploy.local import LocalNode, free_port_block
from cluster.wire.result_codes import ResultCode
from tests.conftest import SMALL_DEVICE

NS = "test"
A_IS_1 = {"expressions": exp.Eq(exp.IntBin("a"), 1).compile()}
A_IS_2 = {"expressions": exp.Eq(exp.IntBin("a"), 2).compile()}


@pytest.fixture(scope="module")
def exp_node(tmp_path_factory):
    """One node for the module: every test works in a set of its own."""
    node = LocalNode(tmp_path_factory.mktemp("expressions"), free_port_block(3), SMALL_DEVICE).start()
    yield node
    node.kill()


@pytest.fixture(scope="module")
def client(exp_node):
    c = aerospike.client({"hosts": [exp_node.address], "policies": {"total_timeout": 5000}}).connect()
    yield c
    c.close()


def code_of(call) -> int:
    try:
        call()
    except ex.AerospikeError as exc:
        return exc.code
    return ResultCode.OK


def counters(node) -> dict[str, int]:
    text = node.info(f"namespace/{NS}")
    return {k: int(v) for k, v in (kv.split("=", 1) for kv in text.split(";")) if k.endswith("_filtered_out")}


def test_reads_that_fail_the_filter_are_filtered_out(client, exp_node):
    key = (NS, "reads", 1)
    client.put(key, {"a": 1, "b": "x"})
    before = counters(exp_node)
    assert client.get(key, policy=A_IS_1)[2] == {"a": 1, "b": "x"}
    assert code_of(lambda: client.get(key, policy=A_IS_2)) == ResultCode.FILTERED_OUT
    assert code_of(lambda: client.select(key, ["b"], policy=A_IS_2)) == ResultCode.FILTERED_OUT
    assert code_of(lambda: client.exists(key, policy=A_IS_2)) == ResultCode.FILTERED_OUT
    assert client.exists(key, policy=A_IS_1)[1]["gen"] == 1
    assert code_of(lambda: client.get((NS, "reads", "missing"), policy=A_IS_2)) == ResultCode.KEY_NOT_FOUND
    assert counters(exp_node)["client_read_filtered_out"] == before["client_read_filtered_out"] + 3


def test_writes_deletes_and_touches_of_a_record_failing_the_filter_change_nothing(client, exp_node):
    key = (NS, "writes", 1)
    client.put(key, {"a": 1})
    before = counters(exp_node)
    for call in (lambda: client.put(key, {"a": 5}, policy=A_IS_2),
                 lambda: client.operate(key, [op.increment("a", 1)], policy=A_IS_2),
                 lambda: client.touch(key, 100, policy=A_IS_2),
                 lambda: client.remove(key, policy=A_IS_2)):
        assert code_of(call) == ResultCode.FILTERED_OUT
    assert client.get(key)[1]["gen"] == 1 and client.get(key)[2] == {"a": 1}
    after = counters(exp_node)
    assert after["client_write_filtered_out"] == before["client_write_filtered_out"] + 3
    assert after["client_delete_filtered_out"] == before["client_delete_filtered_out"] + 1
    client.operate(key, [op.increment("a", 1)], policy=A_IS_1)
    assert client.get(key)[2] == {"a": 2}
    client.remove(key, policy=A_IS_2)  # a = 2 now
    assert client.exists(key)[1] is None


def test_a_write_that_creates_the_record_does_not_look_at_the_filter(client):
    key = (NS, "creates", 1)
    client.put(key, {"a": 9}, policy=A_IS_2)
    assert client.get(key)[2] == {"a": 9}
    broken = {"expressions": exp.Eq(exp.IntBin("a"), "not an int").compile()}
    client.put((NS, "creates", 2), {"a": 1}, policy=broken)  # the server does not even compile it
    assert code_of(lambda: client.put((NS, "creates", 2), {"a": 1}, policy=broken)) == ResultCode.PARAMETER


def test_the_filter_is_checked_after_the_generation(client):
    key = (NS, "gen", 1)
    client.put(key, {"a": 1})
    policy = dict(A_IS_2, gen=aerospike.POLICY_GEN_EQ)
    assert code_of(lambda: client.put(key, {"a": 3}, meta={"gen": 5}, policy=policy)) == ResultCode.GENERATION


def test_an_ill_typed_filter_is_a_parameter_error(client, exp_node):
    key = (NS, "bad", 1)
    client.put(key, {"a": 1})
    for bad in (exp.Eq(exp.IntBin("a"), 1.5), exp.Add(exp.IntBin("a"), 1)):
        assert code_of(lambda b=bad: client.get(key, policy={"expressions": b.compile()})) == ResultCode.PARAMETER
    assert "expression refused" in exp_node.log_tail(200)


def test_batch_filter_applies_to_each_row(client):
    keys = [(NS, "batch", i) for i in range(4)]
    for i, key in enumerate(keys[:3]):
        client.put(key, {"a": i})
    rows = client.batch_read(keys, policy=A_IS_1).batch_records
    assert [r.result for r in rows] == [ResultCode.FILTERED_OUT, ResultCode.OK, ResultCode.FILTERED_OUT,
                                        ResultCode.KEY_NOT_FOUND]
    assert rows[1].record[2] == {"a": 1}


def test_batch_rows_with_their_own_filter(client):
    keys = [(NS, "batchw", i) for i in range(2)]
    for key in keys:
        client.put(key, {"a": 1})
    rows = client.batch_write(br.BatchRecords([
        br.Write(keys[0], [op.write("b", 1)], policy=A_IS_2),
        br.Write(keys[1], [op.write("b", 1)], policy=A_IS_1),
    ])).batch_records
    assert [r.result for r in rows] == [ResultCode.FILTERED_OUT, ResultCode.OK]
    assert [client.get(k)[2].get("b") for k in keys] == [None, 1]


def test_a_bad_batch_filter_fails_the_batch(client):
    key = (NS, "batchbad", 1)
    client.put(key, {"a": 1})
    bad = {"expressions": exp.Eq(exp.IntBin("a"), "x").compile()}
    assert client.batch_read([key, (NS, "batchbad", 2)], policy=bad).result == ResultCode.PARAMETER


def test_scans_leave_out_records_failing_the_filter(client):
    for i in range(20):
        client.put((NS, "scan", i), {"a": i, "even": i % 2 == 0})
    policy = {"expressions": exp.And(exp.BoolBin("even"), exp.GE(exp.IntBin("a"), 10)).compile()}
    assert sorted(b["a"] for _, _, b in client.scan(NS, "scan").results(policy=policy)) == [10, 12, 14, 16, 18]
    query = client.query(NS, "scan")
    query.select("a")
    assert sorted(b["a"] for _, _, b in query.results(policy=A_IS_1)) == [1]
    bad = {"expressions": exp.IntBin("a").compile()}
    assert code_of(lambda: client.scan(NS, "scan").results(policy=bad)) == ResultCode.PARAMETER


def test_metadata_filters(client):
    client.put((NS, "meta", 1), {"i": 1}, policy={"ttl": 1000})
    client.put((NS, "meta", 2), {"i": 2}, policy={"ttl": aerospike.TTL_NEVER_EXPIRE})
    client.put((NS, "meta", 3), {"i": 3}, policy={"ttl": 5000, "key": aerospike.POLICY_KEY_SEND})

    def scan(e) -> list[int]:
        return sorted(b["i"] for _, _, b in client.scan(NS, "meta").results(policy={"expressions": e.compile()}))
    assert scan(exp.Eq(exp.TTL(), -1)) == [2]
    assert scan(exp.And(exp.GT(exp.TTL(), 900), exp.LE(exp.TTL(), 1000))) == [1]
    assert scan(exp.KeyExists()) == [3]
    assert scan(exp.Eq(exp.KeyInt(), 3)) == [3]
    assert scan(exp.LT(exp.SinceUpdateTime(), 60_000)) == [1, 2, 3]
    assert scan(exp.Eq(exp.SetName(), "meta")) == [1, 2, 3]


def test_expression_ops_read_and_write(client):
    key = (NS, "ops", 1)
    client.put(key, {"a": 4, "l": [1, 2, 3]})
    _, _, bins = client.operate(key, [
        eop.expression_read("sum", exp.Add(exp.IntBin("a"), 10).compile()),
        eop.expression_read("big", exp.GT(exp.IntBin("a"), 3).compile()),
        eop.expression_read("list", exp.ListBin("l").compile()),
        eop.expression_write("double", exp.Mul(exp.IntBin("a"), 2).compile()),
    ])
    assert bins == {"sum": 14, "big": True, "list": [1, 2, 3], "double": None}
    assert client.get(key)[2] == {"a": 4, "l": [1, 2, 3], "double": 8}
    _, _, bins = client.operate(key, [eop.expression_read("sz", exp.RecordSize().compile())])
    assert bins["sz"] > 0
    assert code_of(lambda: client.operate(key, [eop.expression_read("x", exp.IntBin("nope").compile())])) == 26
    _, _, bins = client.operate(key, [eop.expression_read("x", exp.IntBin("nope").compile(),
                                                          aerospike.EXP_READ_EVAL_NO_FAIL)])
    assert bins == {"x": None}
    assert code_of(lambda: client.operate(key, [eop.expression_write("a", exp.IntBin("a").compile(),
                                                                     aerospike.EXP_WRITE_CREATE_ONLY)])) == \
        ResultCode.BIN_EXISTS


def test_expression_write_creates_a_record(client):
    key = (NS, "ops", 2)
    client.operate(key, [eop.expression_write("c", exp.Add(40, 2).compile())])
    assert client.get(key)[2] == {"c": 42}


def test_list_and_map_expressions(client):
    for i in range(4):
        client.put((NS, "cdt", i), {"l": list(range(i)), "m": {"n": i}})
    policy = {"expressions": exp.GE(exp.ListSize(None, exp.ListBin("l")), 2).compile()}
    assert sorted(len(b["l"]) for _, _, b in client.scan(NS, "cdt").results(policy=policy)) == [2, 3]
    get_n = exp.MapGetByKey(None, aerospike.MAP_RETURN_VALUE, exp.ResultType.INTEGER, "n", "m")
    _, _, bins = client.operate((NS, "cdt", 3), [eop.expression_read("n", exp.Mul(get_n, 10).compile())])
    assert bins == {"n": 30}


def test_geojson_bins_are_read_as_they_are(client):
    key = (NS, "geo", 1)
    point = aerospike.GeoJSON({"type": "Point", "coordinates": [2.0, 48.0]})
    client.put(key, {"g": point})
    _, _, bins = client.operate(key, [eop.expression_read("g", exp.GeoBin("g").compile())])
    assert bins["g"].unwrap() == point.unwrap()
    is_geo = {"expressions": exp.Eq(exp.BinType("g"), aerospike.AS_BYTES_GEOJSON).compile()}
    assert client.get(key, policy=is_geo)[2]["g"].unwrap() == point.unwrap()


# Geo comparisons (CmpGeo), answered as the real server (CE 8.1, S2 geometry) answers them.
_SQUARE = [[2.0, 48.0], [3.0, 48.0], [3.0, 49.0], [2.0, 49.0], [2.0, 48.0]]  # counter-clockwise
_HOLE = [[2.4, 48.4], [2.6, 48.4], [2.6, 48.6], [2.4, 48.6], [2.4, 48.4]]
_GEO = {
    "in the square": {"type": "Point", "coordinates": [2.2, 48.2]},
    "in the hole": {"type": "Point", "coordinates": [2.5, 48.5]},
    "outside": {"type": "Point", "coordinates": [3.5, 48.5]},
    "square": {"type": "Polygon", "coordinates": [_SQUARE]},
    "square clockwise": {"type": "Polygon", "coordinates": [_SQUARE[::-1]]},
    "square with a hole": {"type": "Polygon", "coordinates": [_SQUARE, _HOLE]},
    "two squares": {"type": "MultiPolygon", "coordinates": [[_HOLE], [[[3.2, 48.2], [3.8, 48.2], [3.8, 48.8],
                                                                      [3.2, 48.8], [3.2, 48.2]]]]},
    "1 km circle": {"type": "AeroCircle", "coordinates": [[2.2, 48.2], 1000]},
    "near the circle": {"type": "Point", "coordinates": [2.2, 48.2089]},  # 990 m north
    "beyond the circle": {"type": "Point", "coordinates": [2.2, 48.2091]},  # 1012 m north
    "feature": {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [_SQUARE]}},
}


@pytest.mark.parametrize("candidate, query, matches", [
    ("in the square", "square", True),
    ("in the square", "square clockwise", True),  # a loop's inside is its smaller side
    ("outside", "square", False),
    ("in the hole", "square", True),
    ("in the hole", "square with a hole", False),
    ("in the square", "square with a hole", True),
    ("outside", "two squares", True),
    ("in the square", "two squares", False),
    ("near the circle", "1 km circle", True),
    ("beyond the circle", "1 km circle", False),
    ("in the square", "feature", True),
    ("square", "in the square", True),  # a region containing a point
    ("1 km circle", "near the circle", True),
    ("square", "outside", False),
    ("in the square", "in the square", False),  # two points, two regions: never
    ("square", "square", False),
])
def test_geo_comparison(client, candidate, query, matches):
    key = (NS, "geo", f"cmp-{candidate}-{query}")
    client.put(key, {"g": aerospike.GeoJSON(_GEO[candidate]), "q": aerospike.GeoJSON(_GEO[query])})
    policy = {"expressions": exp.CmpGeo(exp.GeoBin("g"), aerospike.GeoJSON(_GEO[query])).compile()}
    assert code_of(lambda: client.get(key, policy=policy)) == (ResultCode.OK if matches else ResultCode.FILTERED_OUT)
    both_bins = {"expressions": exp.CmpGeo(exp.GeoBin("g"), exp.GeoBin("q")).compile()}
    assert code_of(lambda: client.get(key, policy=both_bins)) == (ResultCode.OK if matches else ResultCode.FILTERED_OUT)


def test_geo_comparison_filters_a_query_and_an_operate(client):
    circle = aerospike.GeoJSON(_GEO["1 km circle"])
    client.put((NS, "geoq", 1), {"id": 1, "point": aerospike.GeoJSON(_GEO["near the circle"])})
    client.put((NS, "geoq", 2), {"id": 2, "point": aerospike.GeoJSON(_GEO["outside"])})
    query = client.query(NS, "geoq")
    found = query.results({"expressions": exp.CmpGeo(exp.GeoBin("point"), circle).compile()})
    assert [bins["id"] for _, _, bins in found] == [1]
    client.operate((NS, "geoq", 1), [op.increment("id", 1)],
                   policy={"expressions": exp.CmpGeo(exp.GeoBin("point"), circle).compile()})
    assert client.get((NS, "geoq", 1))[2]["id"] == 2
