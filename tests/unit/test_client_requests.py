"""Request bytes and reply decoding, through a real socket to a scripted fake node.

Every command goes the client's whole way — framing, the retry loop, the connection pool,
reading the reply frame — to `FakeNode`, which keeps the exact request bytes and answers
with real wire bytes (`cluster.wire` encodes them), so the client's own reply decoding
(headers, particles, void times, compressed and multi-frame streams) is what is checked.
"""

import time

import pytest

from cluster.client import Client, errors
from cluster.client import operations as op
from cluster.client.command import CITRUSLEAF_EPOCH, ttl_from_void_time
from cluster.client.keys import Key
from cluster.client.policies import Policy, resolve
from cluster.wire import message as wm
from cluster.wire import proto
from cluster.wire.batch import parse_rows
from cluster.wire.message import FieldType, Info1, Info3, Message, OpType
from cluster.wire.result_codes import AerospikeError
from tests.unit.client_fakes import FakeNode

PUT_CAPTURED = bytes.fromhex(  # captured from the official client 19.3: put(("test","demo",1), {"a": 7, "s": "hi"})
    "02030000000000 5d"
    "16 00 01 00 00 00" "00000000 00000000 000003e8" "0003 0002"
    "00000005 00 74657374"
    "00000005 01 64656d6f"
    "00000015 04 b7f4b83889e2da67de683e1df6919a1eacc446c8"
    "0000000d 02 01 00 01 61 0000000000000007"
    "00000007 02 03 00 01 73 6869"
)
KEY_FIELDS = PUT_CAPTURED[8 + 22 : 8 + 22 + 43]


@pytest.fixture
def fake():
    node = FakeNode()
    yield node
    node.stop()


@pytest.fixture
def client(fake):
    client = Client({"hosts": [fake.address], "tend_interval": 60_000}).connect()
    yield client
    client.close()


@pytest.fixture
def sent(fake, client):
    """The exact bytes of each AS_MSG request the fake node received, in order."""
    return fake.frames


def header(frame: bytes) -> Message:
    return wm.parse(frame[8:])[0]


def test_put_matches_captured_official_bytes(sent, client):
    client.put(("test", "demo", 1), {"a": 7, "s": "hi"})
    assert sent[0] == PUT_CAPTURED


def test_get_matches_captured_official_bytes(sent, client, fake):
    fake.reply = Message(generation=3, ops=[wm.value_op(OpType.READ, "a", 7)])
    key, meta, bins = client.get(("test", "demo", 1))
    expected = bytes.fromhex("0203000000000041" "16 03 00 00 00 00 00000000 00000000 000003e8 0003 0000") + KEY_FIELDS
    assert sent[0] == expected
    assert key == ("test", "demo", 1, bytearray.fromhex("b7f4b83889e2da67de683e1df6919a1eacc446c8"))
    assert meta == {"gen": 3, "ttl": 0xFFFFFFFF} and bins == {"a": 7}


@pytest.mark.parametrize("call, info1, info2, ttl, ops", [
    (lambda c, k: c.exists(k), 0x21, 0, 0, []),
    (lambda c, k: c.select(k, ["a", "b"]), 0x01, 0, 0, [(OpType.READ, "a"), (OpType.READ, "b")]),
    (lambda c, k: c.remove(k), 0, 0x03, 0, []),
    (lambda c, k: c.touch(k, 500), 0, 0x01, 500, [(OpType.TOUCH, "")]),
    (lambda c, k: c.remove_bin(k, ["x"]), 0, 0x01, 0, [(OpType.WRITE, "x")]),
    (lambda c, k: c.increment(k, "n", 2), 0, 0x01, 0, [(OpType.INCR, "n")]),
    (lambda c, k: c.operate(k, [op.append("s", "!"), op.read("s")], meta={"ttl": 9}), 0x01, 0x01, 9,
     [(OpType.APPEND, "s"), (OpType.READ, "s")]),
    (lambda c, k: c.operate(k, [op.prepend("s", "<"), op.touch(77), op.delete()]), 0, 0x01, 77,
     [(OpType.PREPEND, "s"), (OpType.TOUCH, ""), (OpType.DELETE, "")]),
])
def test_command_shapes(sent, client, call, info1, info2, ttl, ops):
    call(client, ("test", "demo", 1))
    msg = header(sent[0])
    assert (msg.info1, msg.info2, msg.info3, msg.record_ttl) == (info1, info2, 0, ttl)
    assert [(o.op, o.name) for o in msg.ops] == ops
    assert list(msg.fields) == [FieldType.NAMESPACE, FieldType.SET, FieldType.DIGEST]


@pytest.mark.parametrize("policy, meta, info2, info3, gen", [
    ({"exists": "create_only"}, None, 0x21, 0, 0),
    ({"exists": "update_only"}, None, 0x01, 0x08, 0),
    ({"exists": "replace"}, None, 0x01, 0x10, 0),
    ({"exists": "replace_only"}, None, 0x01, 0x20, 0),
    ({"gen": "eq"}, {"gen": 4}, 0x05, 0, 4),
    ({"gen": "gt"}, {"gen": 4}, 0x09, 0, 4),
    ({}, {"gen": 4}, 0x01, 0, 0),  # a generation without a gen policy is not checked
])
def test_write_policies_set_header_bits(sent, client, policy, meta, info2, info3, gen):
    client.put(("test", "demo", 1), {"a": 1}, meta=meta, policy=policy)
    msg = header(sent[0])
    assert (msg.info2, msg.info3, msg.generation) == (info2, info3, gen)


def test_key_send_adds_user_key_field_before_digest(sent, client):
    client.put(("test", "demo", "k"), {"a": 1}, policy={"key": "send"})
    msg = header(sent[0])
    assert list(msg.fields) == [FieldType.NAMESPACE, FieldType.SET, FieldType.KEY, FieldType.DIGEST]
    assert msg.fields[FieldType.KEY] == b"\x03k"


def test_digest_only_key_and_empty_set(sent, client):
    digest = bytes(range(20))
    client.get(("test", None, None, bytearray(digest)))
    msg = header(sent[0])
    assert msg.fields[FieldType.SET] == b"" and msg.fields[FieldType.DIGEST] == digest


def test_compression_only_above_threshold(sent, client):
    client.put(("test", "demo", 1), {"a": 7, "s": "hi"}, policy={"compress": True})
    assert sent[0] == PUT_CAPTURED  # 101 bytes: below the 128-byte threshold
    client.put(("test", "demo", 1), {"big": "x" * 1000}, policy={"compress": True})
    msg_type, size = proto.unpack_header(sent[1][:8])
    assert msg_type == proto.TYPE_COMPRESSED and size < 200
    inner_type, body = proto.decompress(sent[1][8:])
    assert wm.parse(body)[0].ops[0].value == b"x" * 1000


def test_server_error_codes_raise_matching_exceptions(client, fake):
    fake.reply = Message(result_code=2)
    with pytest.raises(errors.RecordNotFound) as info:
        client.get(("test", "demo", 1))
    assert info.value.code == 2 and isinstance(info.value, AerospikeError)
    assert client.exists(("test", "demo", 1))[1] is None
    fake.reply = Message(result_code=5)
    with pytest.raises(errors.RecordExists):
        client.put(("test", "demo", 1), {"a": 1}, policy={"exists": "create_only"})
    fake.reply = Message(result_code=25)  # no dedicated class: the base class, code kept
    with pytest.raises(AerospikeError) as info:
        client.remove(("test", "demo", 1))
    assert type(info.value) is AerospikeError and info.value.code == 25
    assert len(fake.requests) == 4  # none of these codes is retried


EVERY_TYPE = {
    "int": -(2**63), "big": 2**63 - 1, "float": 3.25, "str": "héllo", "blob": b"\x00\xff", "bool": True,
    "list": [1, "two", 3.0, b"four", [5], {"six": 6}, None], "map": {"a": 1, 7: "seven", b"k": 1.5},
}


def test_reply_bins_meta_and_void_time_are_decoded(client, fake):
    void_time = int(time.time()) - CITRUSLEAF_EPOCH + 100
    fake.reply = Message(generation=7, record_ttl=void_time,
                         ops=[wm.value_op(OpType.READ, name, value) for name, value in EVERY_TYPE.items()])
    _key, meta, bins = client.get(("test", "demo", 1))
    assert bins == EVERY_TYPE and meta["gen"] == 7 and 98 <= meta["ttl"] <= 100
    assert client.exists(("test", "demo", 1))[1]["gen"] == 7
    fake.reply = Message(generation=2, ops=[wm.value_op(OpType.READ, "n", 1), wm.value_op(OpType.READ, "n", 2)])
    assert client.operate(("test", "demo", 1), [op.increment("n", 1), op.read("n")])[2] == {"n": 2}


def test_compressed_reply_is_inflated(client, fake):
    reply = Message(generation=1, ops=[wm.value_op(OpType.READ, "text", "x" * 5000)])
    fake.script.append(("raw", proto.compress(proto.TYPE_MSG, wm.encode(reply))))
    assert client.get(("test", "demo", 1), policy={"compress": True})[2] == {"text": "x" * 5000}
    assert fake.requests[0].info1 & Info1.COMPRESS_RESPONSE


@pytest.mark.parametrize("raw, match", [
    (proto.frame(proto.TYPE_MSG, b"\x16\x00\x01"), "malformed reply"),  # a header cut short
    (proto.frame(proto.TYPE_INFO, b"node\tX\n"), "unexpected reply"),
    (proto.frame(proto.TYPE_MSG, b""), "unexpected reply"),
], ids=["cut-short", "info-type", "empty"])
def test_bad_replies_are_client_errors(client, fake, raw, match):
    fake.script.append(("raw", raw))
    with pytest.raises(errors.ClientError, match=match) as info:
        client.get(("test", "demo", 1))
    assert info.value.code == -1
    assert client.get(("test", "demo", 1))[2] == {"a": 1}  # the next command is answered normally


@pytest.mark.parametrize("bad", [("test", "demo"), ("", "demo", 1), ("test", "demo", None), ("test", "demo", [1]),
                                 ("test", "demo", None, b"short")])
def test_bad_keys_raise_param_error(client, bad):
    with pytest.raises(errors.ParamError) as info:
        client.get(bad)
    assert info.value.code == -2


def test_ttl_from_void_time():
    now = CITRUSLEAF_EPOCH + 1000
    assert ttl_from_void_time(0, now) == 0xFFFFFFFF
    assert ttl_from_void_time(1500, now) == 500
    assert ttl_from_void_time(900, now) == 1  # already due: reported as about to expire


def test_policy_resolution_layers():
    policies = resolve({"total_timeout": 5000, "write": {"max_retries": 3}, "scan": {"socket_timeout": 7}})
    assert policies["read"].total_timeout == 5000 and policies["read"].max_retries == 2
    assert policies["write"] == Policy(total_timeout=5000, max_retries=3)
    assert policies["scan"].socket_timeout == 7 and policies["scan"].max_retries == 5
    assert policies["read"].merged({"replica": "master"}).replica == "master"
    assert Policy(total_timeout=1000, socket_timeout=300).server_timeout == 300
    assert Policy(total_timeout=0, socket_timeout=300).server_timeout == 300
    with pytest.raises(errors.ParamError):
        Policy().merged({"exists": "sometimes"})
    with pytest.raises(errors.ParamError):
        resolve({"timeout_total": 1})


# -- batch and scan: multi-frame streams ----------------------------------------------------------

def row_reply(index, result=0, **bins):
    return wm.encode(Message(result_code=result, generation=1, transaction_ttl=index,
                             ops=[wm.value_op(OpType.READ, k, v) for k, v in bins.items()]))


LAST = wm.encode_header_only(0, info3=Info3.LAST)


def test_batch_request_and_out_of_order_multi_frame_replies(client, fake, sent):
    keys = [("test", "demo", i) for i in range(3)]
    fake.script.append(("raw", proto.frame(proto.TYPE_MSG, row_reply(2, x=2) + row_reply(0, x=0))
                        + proto.compress(proto.TYPE_MSG, row_reply(1, result=2) + LAST)))
    records = client.batch_read(keys)
    assert [(r[0][:3], r[1], r[2]) for r in records] == [
        (keys[0], {"gen": 1, "ttl": 0xFFFFFFFF}, {"x": 0}), (keys[1], None, None),
        (keys[2], {"gen": 1, "ttl": 0xFFFFFFFF}, {"x": 2})]
    msg = header(sent[0])
    assert (msg.info1, msg.transaction_ttl, list(msg.fields)) == (0x08, 1000, [FieldType.BATCH_INDEX])
    rows = parse_rows(msg.fields[FieldType.BATCH_INDEX])
    assert [(r.index, r.digest, r.info1) for r in rows] == [(i, Key.of(k).digest, 0x03) for i, k in enumerate(keys)]
    assert rows[0].fields == {FieldType.NAMESPACE: b"test", FieldType.SET: b"demo"}


def test_batch_of_one_key_per_node_is_a_plain_read(client, fake):
    assert client.batch_read([("test", "demo", 1)], ["a"])[0][2] == {"a": 1}
    msg = fake.requests[0]
    assert msg.info1 == 0x01 and [o.name for o in msg.ops] == ["a"] and FieldType.DIGEST in msg.fields


def test_batch_reply_for_unknown_row_is_rejected(client, fake):
    fake.script.append(("raw", proto.frame(proto.TYPE_MSG, row_reply(7) + LAST)))
    with pytest.raises(errors.ClientError, match="row 7"):
        client.batch_read([("test", "demo", i) for i in range(2)])


def test_stream_last_with_error_fails_the_command(client, fake):
    fake.script.append(("raw", proto.frame(proto.TYPE_MSG, row_reply(0) + wm.encode_header_only(11, info3=Info3.LAST))))
    with pytest.raises(errors.ClusterError):
        client.batch_read([("test", "demo", i) for i in range(2)], policy={"max_retries": 0})


def test_scan_request_and_partition_resume(client, fake, sent):
    record = wm.encode(Message(generation=2, fields={FieldType.NAMESPACE: b"test", FieldType.DIGEST: bytes(20),
                                                     FieldType.KEY: b"\x01" + (5).to_bytes(8, "big")},
                               ops=[wm.value_op(OpType.READ, "i", 5)]))
    done = [wm.encode_header_only(0, generation=pid, info3=Info3.PARTITION_DONE) for pid in range(1, 4096)]
    # Partition 0 delivers a record but is reported unavailable (11): it is asked again, after that digest.
    first = record + wm.encode_header_only(11, generation=0, info3=Info3.PARTITION_DONE) + b"".join(done) + LAST
    second = wm.encode_header_only(0, generation=0, info3=Info3.PARTITION_DONE) + LAST
    fake.script.extend([("raw", proto.frame(proto.TYPE_MSG, first)), ("raw", proto.frame(proto.TYPE_MSG, second))])
    got = client.scan("test", "demo", policy={"total_timeout": 0, "max_retries": 1}).results()
    assert got == [(("test", None, 5, bytearray(20)), {"gen": 2, "ttl": 0xFFFFFFFF}, {"i": 5})]
    one, two = (header(f) for f in sent)
    assert (one.info1, one.info3, one.record_ttl) == (0x01, 0x04, 0xFFFFFFFF)
    assert one.fields[FieldType.SET] == b"demo"
    assert one.fields[FieldType.PID_ARRAY] == b"".join(p.to_bytes(2, "little") for p in range(4096))
    assert FieldType.PID_ARRAY not in two.fields and two.fields[FieldType.DIGEST_ARRAY] == bytes(20)


def test_scan_callback_can_stop_early(client, fake):
    record = wm.encode(Message(fields={FieldType.NAMESPACE: b"test", FieldType.DIGEST: bytes(20)}))
    fake.script.append(("raw", proto.frame(proto.TYPE_MSG, record * 3 + LAST)))
    seen = []
    client.scan("test").foreach(lambda rec: seen.append(rec) or False)
    assert len(seen) == 1
