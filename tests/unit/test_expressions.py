"""The expression evaluator on expressions compiled by the official client.

`aerospike_helpers.expressions` builds an expression; the client's C core turns it into
the wire bytes the node receives (`Client.get_expression_base64`), which needs a client
connected to something: the scripted fake node of the client tests is enough.
"""

import base64
import math
import struct

import aerospike
import msgpack
import pytest
from aerospike_helpers import cdt_ctx
from aerospike_helpers import expressions as exp
from aerospike_helpers.expressions import string as exp_string

from cluster.core import bins as binops
from cluster.core import expressions
from cluster.core.expressions import RecordView, compile_expression, compile_filter
from cluster.core.expressions.nodes import UNKNOWN
from cluster.storage.record import CITRUSLEAF_EPOCH, RecordMeta
from cluster.wire import particles
from cluster.wire.message import Op, OpType
from cluster.wire.particles import ParticleType
from cluster.wire.result_codes import AerospikeError, ResultCode
from tests.unit.client_fakes import FakeNode

NOW_MS = 500_000_000_000  # citrusleaf ms
LUT = NOW_MS - 4_000
VOID_TIME = NOW_MS // 1000 + 100
DIGEST = bytes(range(20))
BINS = {"i": 7, "neg": -8, "f": 2.5, "s": "hello", "blob": b"\x01\x02", "t": True, "l": [1, "a", 2.5],
        "m": {"k": 1}}
KEY = (ParticleType.STRING, b"the-key")


@pytest.fixture(scope="module")
def wire():
    """exp -> the bytes the official client sends for it."""
    fake = FakeNode()
    client = aerospike.client({"hosts": [fake.address]})
    yield lambda e: base64.b64decode(client.get_expression_base64(e.compile()))
    client.close()
    fake.stop()


def record(bins=None, key=KEY, void_time=VOID_TIME, set_name="demo", in_memory=False) -> RecordView:
    encoded = {name: particles.encode(value) for name, value in (BINS if bins is None else bins).items()}
    payload = binops.encode_payload(encoded, key)
    return RecordView(DIGEST, RecordMeta(3, void_time, LUT, set_name), payload, NOW_MS, in_memory)


def value(wire, e, rec=None):
    return compile_expression(wire(e)).evaluate(rec or record())


def refused(wire, e_or_bytes) -> int:
    data = e_or_bytes if isinstance(e_or_bytes, bytes) else wire(e_or_bytes)
    with pytest.raises(AerospikeError) as caught:
        compile_filter(data)
    return caught.value.code


@pytest.mark.parametrize("e, expected", [
    (exp.Eq(exp.IntBin("i"), 7), True),
    (exp.NE(exp.IntBin("i"), 7), False),
    (exp.GT(exp.IntBin("neg"), -9), True),
    (exp.LT(exp.FloatBin("f"), 2.5), False),
    (exp.LE(exp.FloatBin("f"), 2.5), True),
    (exp.Eq(exp.StrBin("s"), "hello"), True),
    (exp.GT(exp.StrBin("s"), "help"), False),  # bytes order: "hell" then 'o' < 'p'
    (exp.GE(exp.StrBin("s"), "hell"), True),  # a longer string after its prefix
    (exp.Eq(exp.BlobBin("blob"), bytearray(b"\x01\x02")), True),
    (exp.Eq(exp.BoolBin("t"), True), True),
    (exp.Eq(exp.ListBin("l"), [1, "a", 2.5]), True),
    (exp.LT(exp.ListBin("l"), [1, "b"]), True),  # element by element
    (exp.GT(exp.ListBin("l"), [1, "a"]), True),  # a prefix is smaller
    (exp.LT(exp.ListBin("l"), [1, 0]), False),  # strings sort after integers
])
def test_comparisons_of_every_bin_type(wire, e, expected):
    assert value(wire, e) is expected


def test_a_missing_or_differently_typed_bin_is_unknown_and_filters_out(wire):
    for e in (exp.Eq(exp.IntBin("nope"), 1), exp.Eq(exp.IntBin("s"), 1), exp.Not(exp.Eq(exp.IntBin("nope"), 1))):
        assert value(wire, e) is UNKNOWN
        assert not compile_filter(wire(e)).matches(record())


def test_and_or_let_a_decided_operand_absorb_the_unknown_one(wire):
    missing = exp.Eq(exp.IntBin("nope"), 1)
    assert value(wire, exp.Or(missing, exp.Eq(exp.IntBin("i"), 7))) is True
    assert value(wire, exp.And(missing, exp.Eq(exp.IntBin("i"), 0))) is False
    assert value(wire, exp.And(missing, exp.Eq(exp.IntBin("i"), 7))) is UNKNOWN
    assert value(wire, exp.Exclusive(exp.Eq(exp.IntBin("i"), 7), exp.Eq(exp.IntBin("i"), 8))) is True
    assert value(wire, exp.Exclusive(exp.Eq(exp.IntBin("i"), 7), exp.GT(exp.IntBin("i"), 1))) is False


T, F, U = exp.Eq(exp.IntBin("i"), 7), exp.Eq(exp.IntBin("i"), 0), exp.Eq(exp.IntBin("nope"), 1)


@pytest.mark.parametrize("e, expected", [
    (exp.And(T, T), True), (exp.And(T, F), False), (exp.And(U, T), UNKNOWN), (exp.And(U, F), False),
    (exp.Or(F, F), False), (exp.Or(F, T), True), (exp.Or(U, F), UNKNOWN), (exp.Or(U, T), True),
    (exp.Exclusive(F, F), False), (exp.Exclusive(F, T), True), (exp.Exclusive(U, T), UNKNOWN),
], ids=["TT", "TF", "UT", "UF", "FF", "FT", "UF-or", "UT-or", "xFF", "xFT", "xUT"])
def test_and_or_exclusive_truth_tables_with_unknown(wire, e, expected):
    assert value(wire, e) is expected


def test_bin_exists_and_bin_type(wire):
    assert value(wire, exp.BinExists("s")) is True
    assert value(wire, exp.BinExists("nope")) is False
    assert value(wire, exp.BinType("l")) == ParticleType.LIST
    assert value(wire, exp.BinType("nope")) == 0


def test_reading_bins_of_every_type(wire):
    rec = record()
    assert [value(wire, e, rec) for e in (exp.IntBin("i"), exp.FloatBin("f"), exp.StrBin("s"), exp.BlobBin("blob"),
                                          exp.BoolBin("t"))] == [7, 2.5, b"hello", b"\x01\x02", True]
    assert msgpack.unpackb(value(wire, exp.ListBin("l"), rec), raw=True) == [1, b"\x03a", 2.5]
    assert msgpack.unpackb(value(wire, exp.MapBin("m"), rec), raw=True) == {b"\x03k": 1}


def test_metadata(wire):
    rec = record()
    assert value(wire, exp.TTL(), rec) == 100
    assert value(wire, exp.TTL(), record(void_time=0)) == -1
    assert value(wire, exp.VoidTime(), rec) == (VOID_TIME + CITRUSLEAF_EPOCH) * 10**9
    assert value(wire, exp.VoidTime(), record(void_time=0)) == -1
    assert value(wire, exp.LastUpdateTime(), rec) == (LUT + CITRUSLEAF_EPOCH * 1000) * 10**6
    assert value(wire, exp.SinceUpdateTime(), rec) == 4_000
    assert value(wire, exp.SetName(), rec) == b"demo"
    assert value(wire, exp.KeyExists(), rec) is True
    assert value(wire, exp.KeyExists(), record(key=None)) is False
    assert value(wire, exp.IsTombstone(), rec) is False
    assert value(wire, exp.DigestMod(7), rec) == int.from_bytes(DIGEST[16:20], "little") % 7
    size = rec.size
    assert [value(wire, e, rec) for e in (exp.RecordSize(), exp.DeviceSize(), exp.MemorySize())] == [size, size, 0]
    in_memory = record(in_memory=True)
    assert [value(wire, e, in_memory) for e in (exp.DeviceSize(), exp.MemorySize())] == [0, size]


def test_the_stored_key_by_type(wire):
    assert value(wire, exp.KeyStr()) == b"the-key"
    assert value(wire, exp.KeyInt()) is UNKNOWN
    assert value(wire, exp.KeyInt(), record(key=(ParticleType.INTEGER, struct.pack(">q", -5)))) == -5
    assert value(wire, exp.KeyBlob(), record(key=None)) is UNKNOWN


@pytest.mark.parametrize("e, expected", [
    (exp.Add(exp.IntBin("i"), 3, -1), 9),
    (exp.Sub(exp.IntBin("i")), -7),
    (exp.Sub(10, exp.IntBin("i"), 1), 2),
    (exp.Mul(2**62, 4), 0),  # int64 wraps as the server's C does
    (exp.Add(2**63 - 1, 1), -(2**63)),
    (exp.Div(-7, 2), -3),  # truncates toward zero
    (exp.Div(100, 5, 2), 10),
    (exp.Div(2.0), 0.5),
    (exp.Mod(-7, 3), -1),  # C's remainder
    (exp.Pow(2.0, 10.0), 1024.0),
    (exp.Log(8.0, 2.0), 3.0),
    (exp.Abs(exp.IntBin("neg")), 8),
    (exp.Floor(2.7), 2.0),
    (exp.Ceil(-2.7), -2.0),
    (exp.ToInt(-2.9), -2),
    (exp.ToFloat(exp.IntBin("i")), 7.0),
    (exp.Min(3, exp.IntBin("i"), 1), 1),
    (exp.Max(1.0, exp.FloatBin("f")), 2.5),
    (exp.IntAnd(0b1100, 0b1010), 0b1000),
    (exp.IntOr(0b1100, 0b1010), 0b1110),
    (exp.IntXOr(0b1100, 0b1010), 0b0110),
    (exp.IntNot(0), -1),
    (exp.IntLeftShift(1, 63), -(2**63)),
    (exp.IntRightShift(-1, 60), 15),  # logical
    (exp.IntArithmeticRightShift(-16, 2), -4),
    (exp.IntCount(-1), 64),
    (exp.IntLeftScan(1, True), 63),
    (exp.IntLeftScan(-1, False), -1),
    (exp.IntRightScan(8, True), 60),
])
def test_arithmetic_and_bits_as_the_server_computes_them(wire, e, expected):
    assert value(wire, e) == expected


def test_what_c_arithmetic_makes_of_the_undefined(wire):
    assert value(wire, exp.Div(exp.IntBin("i"), 0)) is UNKNOWN
    assert value(wire, exp.Mod(exp.IntBin("i"), 0)) is UNKNOWN
    assert value(wire, exp.Div(1.0, 0.0)) == math.inf
    assert math.isnan(value(wire, exp.Log(-1.0, 2.0)))
    assert value(wire, exp.ToInt(float("nan"))) == -(2**63)
    assert value(wire, exp.Add(exp.IntBin("nope"), 1)) is UNKNOWN


def test_cond_let_and_var(wire):
    pick = exp.Cond(exp.Eq(exp.IntBin("i"), 1), "one", exp.Eq(exp.IntBin("i"), 7), "seven", "other")
    assert value(wire, pick) == b"seven"
    assert value(wire, exp.Cond(exp.Eq(exp.IntBin("i"), 7), exp.Unknown(), 5)) is UNKNOWN
    assert value(wire, exp.Let(exp.Def("x", exp.IntBin("i")), exp.Def("y", exp.Mul(exp.Var("x"), 2)),
                               exp.Add(exp.Var("x"), exp.Var("y")))) == 21


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # CmpRegex: the client now prefers its string calls
def test_regex_flags_are_the_servers_posix_flags(wire):
    assert value(wire, exp.CmpRegex(aerospike.REGEX_NONE, "^hel*o$", exp.StrBin("s"))) is True
    assert value(wire, exp.CmpRegex(aerospike.REGEX_NONE, "l+", exp.StrBin("s"))) is False  # basic RE: '+' is literal
    assert value(wire, exp.CmpRegex(aerospike.REGEX_EXTENDED, "l+o", exp.StrBin("s"))) is True
    assert value(wire, exp.CmpRegex(aerospike.REGEX_ICASE, "HELLO", exp.StrBin("s"))) is True
    assert value(wire, exp.CmpRegex(aerospike.REGEX_EXTENDED, "^[[:alpha:]]+$", exp.StrBin("s"))) is True
    assert refused(wire, exp.CmpRegex(aerospike.REGEX_EXTENDED, "a(", exp.StrBin("s"))) == ResultCode.PARAMETER


def test_ill_typed_expressions_are_parameter_errors(wire):
    for e in (exp.Eq(exp.IntBin("i"), "x"), exp.Add(1, 1.5), exp.And(exp.IntBin("i"), True), exp.IntBin("i"),
              exp.Mod(1.0, 2.0), exp.Let(exp.Def("x", 1), exp.Eq(exp.Var("y"), 1))):
        assert refused(wire, e) == ResultCode.PARAMETER, e


def test_malformed_wire_forms_are_parameter_errors():
    for data in (b"", b"\x93\x01", msgpack.packb([1, [81, 2, "i"], 1]) + b"\x00", msgpack.packb([99, 1]),
                 msgpack.packb([1, 2]), msgpack.packb([81, 2, "i" * 16]), msgpack.packb([64, 0])):
        with pytest.raises(AerospikeError) as caught:
            compile_filter(data)
        assert caught.value.code == ResultCode.PARAMETER, data


def test_what_is_not_implemented_is_refused_as_unsupported(wire):
    for e in (exp.Eq(exp.BitCount(0, 8, exp.BlobBin("blob")), 1),
              exp.SelectByPath([cdt_ctx.cdt_ctx_list_index(0)], exp.ResultType.LIST, aerospike.EXP_PATH_SELECT_VALUE,
                               exp.ListBin("l"))):
        assert refused(wire, e) == ResultCode.UNSUPPORTED_FEATURE, e


def test_list_and_map_reads_inside_expressions(wire):
    rec = record({"l": [5, 1, 9], "m": {"k": "v", "j": 2}, "a": 4, "nested": [[1, 2], [3]]})
    assert value(wire, exp.ListGetByIndex(None, aerospike.LIST_RETURN_VALUE, exp.ResultType.INTEGER, 2, "l"),
                 rec) == 9
    assert value(wire, exp.ListSize(None, exp.ListBin("l")), rec) == 3
    assert value(wire, exp.MapGetByKey(None, aerospike.MAP_RETURN_VALUE, exp.ResultType.STRING, "k", "m"),
                 rec) == b"v"
    count_between = exp.ListGetByValueRange(None, aerospike.LIST_RETURN_COUNT, exp.IntBin("a"), 10, "l")
    assert value(wire, count_between, rec) == 2  # an argument that is itself an expression: 5 and 9 in [4, 10)
    inner = exp.ListGetByIndex([cdt_ctx.cdt_ctx_list_index(1)], aerospike.LIST_RETURN_VALUE,
                               exp.ResultType.INTEGER, 0, "nested")
    assert value(wire, inner, rec) == 3
    assert value(wire, exp.ListGetByValueList(None, aerospike.LIST_RETURN_COUNT, [1, 9, 7], "l"), rec) == 2
    appended = exp.ListAppend(None, None, 7, "l")  # modifies a copy: the call yields the new list
    assert msgpack.unpackb(value(wire, appended, rec)) == [5, 1, 9, 7]
    assert value(wire, exp.InList(1, exp.ListBin("l")), rec) is True
    assert value(wire, exp.InList(2, exp.ListBin("l")), rec) is False
    assert msgpack.unpackb(value(wire, exp.MapGetKeys("m"), rec), raw=True) == [b"\x03k", b"\x03j"]
    assert msgpack.unpackb(value(wire, exp.MapGetValues("m"), rec), raw=True) == [b"\x03v", 2]


def test_list_calls_that_fail_or_answer_another_type_are_unknown(wire):
    rec = record({"l": [5, 1, 9], "s": "x"})
    wrong_type = exp.ListGetByIndex(None, aerospike.LIST_RETURN_VALUE, exp.ResultType.STRING, 0, "l")
    assert value(wire, wrong_type, rec) is UNKNOWN
    assert value(wire, exp.ListSize(None, exp.ListBin("missing")), rec) is UNKNOWN
    too_far = exp.ListGetByIndex(None, aerospike.LIST_RETURN_VALUE, exp.ResultType.INTEGER, 10, "l")
    assert value(wire, too_far, rec) is UNKNOWN


def test_maps_without_an_order_do_not_compare(wire):
    assert value(wire, exp.Eq(exp.MapBin("m"), {"k": 1})) is UNKNOWN  # as the server: no defined order
    assert value(wire, exp.Eq(exp.MapBin("m"), exp.MapBin("m"))) is UNKNOWN
    key_ordered = b"\x82" + msgpack.packb(msgpack.ExtType(1, b"")) + b"\xc0" + msgpack.packb(b"\x03k") + b"\x01"
    payload = binops.encode_payload({"m": (ParticleType.MAP, key_ordered)}, None)
    ordered = RecordView(DIGEST, RecordMeta(1, 0, LUT, ""), payload, NOW_MS)
    assert value(wire, exp.Eq(exp.MapBin("m"), exp.MapBin("m")), ordered) is True


def test_calls_to_a_system_the_server_does_not_know_are_parameter_errors(wire):
    assert refused(wire, exp_string.RegexCompare("a.*", "s")) == ResultCode.PARAMETER


def test_a_compiled_filter_is_reused(wire):
    data = wire(exp.Eq(exp.IntBin("i"), 7))
    assert compile_filter(data) is compile_filter(bytes(data))


# -- the expression ops ------------------------------------------------------------------------

def op_value(wire, e, flags=None) -> bytes:
    """An expression op's value as the client sends it: msgpack [expression, flags?]."""
    body = wire(e)
    return b"\x92" + body + msgpack.packb(flags) if flags is not None else b"\x91" + body


def test_exp_read_answers_the_value_under_the_ops_name(wire):
    bins = {name: particles.encode(v) for name, v in BINS.items()}
    plus_one = op_value(wire, exp.Add(exp.IntBin("i"), 1))
    out = expressions.read(bins, Op(OpType.EXP_READ, 4, "r", plus_one), None, NOW_MS)
    assert out == [Op(OpType.READ, ParticleType.INTEGER, "r", struct.pack(">q", 8))]
    lists = expressions.read(bins, Op(OpType.EXP_READ, 4, "r", op_value(wire, exp.ListBin("l"))), None, NOW_MS)
    assert lists == [Op(OpType.READ, ParticleType.LIST, "r", bins["l"][1])]
    with pytest.raises(AerospikeError) as caught:
        expressions.read(bins, Op(OpType.EXP_READ, 4, "r", op_value(wire, exp.IntBin("nope"))), None, NOW_MS)
    assert caught.value.code == ResultCode.OP_NOT_APPLICABLE
    quiet = op_value(wire, exp.IntBin("nope"), aerospike.EXP_READ_EVAL_NO_FAIL)
    assert expressions.read(bins, Op(OpType.EXP_READ, 4, "r", quiet), None, NOW_MS) == [
        Op(OpType.READ, ParticleType.NULL, "r")]


def modify(wire, bins, name, e, flags=None):
    expressions.modify(bins, Op(OpType.EXP_MODIFY, 4, name, op_value(wire, e, flags)), None, NOW_MS)


def test_exp_modify_writes_the_value_with_the_servers_flags(wire):
    bins = {"i": particles.encode(7)}
    modify(wire, bins, "j", exp.Mul(exp.IntBin("i"), 3))
    assert bins["j"] == particles.encode(21)
    for flags, code in ((aerospike.EXP_WRITE_CREATE_ONLY, ResultCode.BIN_EXISTS),
                        (aerospike.EXP_WRITE_DEFAULT, ResultCode.OP_NOT_APPLICABLE)):
        with pytest.raises(AerospikeError) as caught:
            modify(wire, bins, "j", exp.IntBin("j") if flags else exp.IntBin("nope"), flags)
        assert caught.value.code == code
    with pytest.raises(AerospikeError) as caught:
        modify(wire, bins, "new", exp.IntBin("i"), aerospike.EXP_WRITE_UPDATE_ONLY)
    assert caught.value.code == ResultCode.BIN_NOT_FOUND
    modify(wire, bins, "new", exp.IntBin("i"), aerospike.EXP_WRITE_UPDATE_ONLY | aerospike.EXP_WRITE_POLICY_NO_FAIL)
    modify(wire, bins, "j", exp.IntBin("nope"), aerospike.EXP_WRITE_EVAL_NO_FAIL)
    assert bins == {"i": particles.encode(7), "j": particles.encode(21)}
    nil = exp.Cond(exp.Eq(exp.IntBin("i"), 7), None, exp.Unknown())
    with pytest.raises(AerospikeError) as caught:  # nil would delete the bin
        modify(wire, bins, "j", nil)
    assert caught.value.code == ResultCode.OP_NOT_APPLICABLE
    # the server tests `flags && POLICY_NO_FAIL`, so any flag keeps the bin without an error
    modify(wire, bins, "j", nil, aerospike.EXP_WRITE_EVAL_NO_FAIL)
    assert bins["j"] == particles.encode(21)
    modify(wire, bins, "j", nil, aerospike.EXP_WRITE_ALLOW_DELETE)
    assert "j" not in bins


def test_exp_op_flags_it_does_not_take_are_parameter_errors(wire):
    with pytest.raises(AerospikeError) as caught:
        expressions.read({}, Op(OpType.EXP_READ, 4, "r", op_value(wire, exp.IntBin("i"), 1)), None, NOW_MS)
    assert caught.value.code == ResultCode.PARAMETER


def nested(depth: int) -> bytes:
    data = msgpack.packb([1, 1, 1])  # eq(1, 1)
    for _ in range(depth - 1):
        data = b"\x93\x01" + data + b"\xc3"  # eq(<data>, true)
    return data


def test_deep_nesting_is_refused_not_a_crash():
    assert compile_filter(nested(150)).matches(record())
    with pytest.raises(AerospikeError) as caught:
        compile_filter(nested(300))
    assert caught.value.code == ResultCode.PARAMETER and "nested" in caught.value.message


def _geo_bins(**shapes) -> RecordView:
    """A record whose bins are GeoJSON particles as the client sends them (no cell ids)."""
    import json

    encoded = {name: (ParticleType.GEOJSON, b"\x00\x00\x00" + json.dumps(shape).encode())
               for name, shape in shapes.items()}
    return RecordView(DIGEST, RecordMeta(3, VOID_TIME, LUT, "demo"), binops.encode_payload(encoded, KEY), NOW_MS,
                      False)


_SQUARE = [[2.0, 48.0], [3.0, 48.0], [3.0, 49.0], [2.0, 49.0], [2.0, 48.0]]


def test_geo_comparison_point_within_region_and_region_containing_point(wire):
    inside = {"type": "Point", "coordinates": [2.5, 48.5]}
    outside = {"type": "Point", "coordinates": [3.5, 48.5]}
    square = {"type": "Polygon", "coordinates": [_SQUARE]}
    rec = _geo_bins(inside=inside, outside=outside, square=square, bad={"type": "Nope"})
    within = exp.CmpGeo(exp.GeoBin("inside"), aerospike.GeoJSON(square))
    assert value(wire, within, rec) is True
    assert value(wire, exp.CmpGeo(exp.GeoBin("outside"), aerospike.GeoJSON(square)), rec) is False
    assert value(wire, exp.CmpGeo(exp.GeoBin("square"), exp.GeoBin("inside")), rec) is True
    assert value(wire, exp.CmpGeo(exp.GeoBin("inside"), exp.GeoBin("outside")), rec) is False  # two points
    # a bin the server could not read as GeoJSON, or no such bin: unknown
    assert value(wire, exp.CmpGeo(exp.GeoBin("bad"), aerospike.GeoJSON(square)), rec) is UNKNOWN
    assert value(wire, exp.CmpGeo(exp.GeoBin("none"), aerospike.GeoJSON(square)), rec) is UNKNOWN


@pytest.mark.parametrize("shape", [
    {"type": "Nope", "coordinates": [1, 2]},
    {"type": "Point", "coordinates": [1, 95]},
    {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]},  # not closed
    {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]},  # under 4 points
    {"type": "AeroCircle", "coordinates": [[1, 2]]},
])
def test_a_geojson_constant_the_server_cannot_read_is_a_parameter_error(wire, shape):
    assert refused(wire, exp.CmpGeo(exp.GeoBin("g"), aerospike.GeoJSON(shape))) == ResultCode.PARAMETER
