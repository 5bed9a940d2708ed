"""The wire codec on its own: framing rules, round trips, digests against vectors computed by the official client."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cluster.wire import info, particles, proto
from cluster.wire import message as wm
from cluster.wire.batch import REPEAT, encode_read_rows, parse_rows
from cluster.wire.digest import compute_digest, partition_id
from cluster.wire.result_codes import AerospikeError

# (set, key, digest hex, pid) as the official client's calc_digest computes them.
DIGEST_VECTORS = [
    ("demo", 1, "b7f4b83889e2da67de683e1df6919a1eacc446c8", 1207),
    ("demo", -5, "0ee7f6935bf149a69f3bafad97ed118bdaefdf21", 1806),
    ("demo", "get_key_digest", "f187722e80990aa701a602a73a6a4a6180c9a195", 2033),
    ("", "abc", "1eb1347a48b490c41bf131f660602f7b8e32d366", 286),
    ("demo", b"askluy3oijs", "5e7263746424c66c85d920190e6b94622f8461c7", 606),
    ("set", 1, "82d7213b469812947c109a6d341e3b5b1dedec1f", 1922),
    ("set", 0, "93d943aae37b017ad7e011b0c1d2e2143c2fb37d", 2451),
    ("set", -1, "22116d253745e29fc63fdf760b6e26f7e197e01d", 290),
    ("set", 123444, "6fa3f682162b45d3a96cd8a5adc86e20c68c3a9c", 879),
    ("set", "", "2819b1ff6e346a43b4f5f6b77a88bc3eaac22a83", 2344),
    ("set", "someValue", "fd70ae4e48c2cfa71b37cfcf05d0ae75f46796c7", 253),
    ("set", b"", "327e2877b8815c7aeede0d5a8620d4ef8df4a4b4", 3634),
    ("set", b"aaaaaaaaaa", "d10982327b2b04c7360579f252e164a75f83cd99", 2513),
]


@pytest.mark.parametrize("set_name,key,hexdigest,pid", DIGEST_VECTORS)
def test_digest_vectors(set_name, key, hexdigest, pid):
    digest = compute_digest(set_name, key)
    assert digest.hex() == hexdigest
    assert partition_id(digest) == pid


def test_captured_put_bytes():
    """The exact bytes the official client sent for put(("test","demo",1), {"a":7,"s":"hi"})."""
    msg = wm.Message(info2=wm.Info2.WRITE, transaction_ttl=1000, fields={
        0: b"test", 1: b"demo", 4: bytes.fromhex("b7f4b83889e2da67de683e1df6919a1eacc446c8")},
        ops=[wm.value_op(2, "a", 7), wm.value_op(2, "s", "hi")])
    expected = bytes.fromhex(
        "0203000000000" "05d" "160001000000" "00000000" "00000000" "000003e8" "00030002"
        "0000000500" "74657374" "0000000501" "64656d6f"
        "0000001504b7f4b83889e2da67de683e1df6919a1eacc446c8"
        "0000000d020100016100000000000000 07".replace(" ", "")
        + "000000070203000173" "6869")
    assert wm.encode_frame(msg) == expected


def test_header_rules():
    assert proto.unpack_header(proto.pack_header(3, 10)) == (3, 10)
    with pytest.raises(proto.ProtoError, match="version"):
        proto.unpack_header(struct.pack(">Q", (1 << 56) | (3 << 48)))
    with pytest.raises(proto.ProtoError, match="type"):
        proto.unpack_header(struct.pack(">Q", (2 << 56) | (9 << 48)))
    with pytest.raises(proto.ProtoError, match="exceeds"):
        proto.unpack_header(proto.pack_header(3, proto.MAX_BODY + 1))


def test_compression_round_trip_and_garbage():
    body = wm.encode(wm.Message(info1=1, fields={0: b"test"}))
    framed = proto.compress(proto.TYPE_MSG, body)
    msg_type, size = proto.unpack_header(framed[:8])
    assert msg_type == proto.TYPE_COMPRESSED
    assert proto.decompress(framed[8:]) == (proto.TYPE_MSG, body)
    with pytest.raises(proto.ProtoError):
        proto.decompress(framed[8:20])
    with pytest.raises(proto.ProtoError):
        proto.decompress(struct.pack(">Q", 10**12) + b"x")


def test_info_parsing():
    assert info.split_request(b"node\nbuild\npartial") == ["node", "build"]
    assert info.parse_command("namespace/test") == ("namespace", ["test"], {})
    assert info.parse_command("set-config:context=service;migrate-threads=4") == (
        "set-config", [], {"context": "service", "migrate-threads": "4"})
    frame = info.build_response([("node", "BB9"), ("build", "7.2.0.0")])
    assert info.parse_response(frame[8:]) == {"node": "BB9", "build": "7.2.0.0"}


values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=20) | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.text(max_size=5) | st.integers(-100, 100), children, max_size=4),
    max_leaves=10,
)


@given(values)
def test_particle_round_trip(value):
    ptype, data = particles.encode(value)
    assert particles.decode(ptype, data) == value


@given(st.binary(max_size=200))
def test_parse_never_raises_anything_but_aerospike_errors(data):
    try:
        wm.parse(data)
    except AerospikeError as exc:
        assert exc.code == 4


def test_batch_rows_round_trip_and_repeat():
    digests = [compute_digest("s", i) for i in range(3)]
    data = encode_read_rows([(i, d, 3, {0: b"test", 1: b"s"}, []) for i, d in enumerate(digests)])
    rows = parse_rows(data)
    assert [(r.index, r.digest, r.info1, r.fields) for r in rows] == [
        (i, d, 3, {0: b"test", 1: b"s"}) for i, d in enumerate(digests)]
    # A REPEAT row reuses the previous row's namespace and flags.
    repeated = data[:5] + data[5:] + struct.pack(">I20sB", 9, digests[0], REPEAT)
    repeated = struct.pack(">I", 4) + repeated[4:]
    assert parse_rows(repeated)[-1].fields == {0: b"test", 1: b"s"}
    with pytest.raises(AerospikeError):
        parse_rows(struct.pack(">IB", 1, 0) + struct.pack(">I20sB", 0, digests[0], REPEAT))
