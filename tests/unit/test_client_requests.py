"""Request bytes and reply decoding, checked without a server.

Single-record commands are captured at `execute` (the last step before the socket);
batch and scan go through a stub connection that records what is sent and plays back
canned reply frames.
"""

from contextlib import contextmanager
from types import SimpleNamespace

import pytest

from cluster.client import Client, errors
from cluster.client import operations as op
from cluster.client.batch import batch_read
from cluster.client.command import CITRUSLEAF_EPOCH, frame_request, read_stream, ttl_from_void_time
from cluster.client.keys import Key
from cluster.client.policies import Policy, resolve
from cluster.client.scan import Scan
from cluster.wire import message as wm
from cluster.wire import proto
from cluster.wire.batch import parse_rows
from cluster.wire.message import FieldType, Info3, Message, OpType
from cluster.wire.result_codes import AerospikeError

NODE = SimpleNamespace(host="127.0.0.1", port=3000)

PUT_CAPTURED = bytes.fromhex(  # spec §3.4: put(("test","demo",1), {"a": 7, "s": "hi"})
    "02030000000000 5d"
    "16 00 01 00 00 00" "00000000 00000000 000003e8" "0003 0002"
    "00000005 00 74657374"
    "00000005 01 64656d6f"
    "00000015 04 b7f4b83889e2da67de683e1df6919a1eacc446c8"
    "0000000d 02 01 00 01 61 0000000000000007"
    "00000007 02 03 00 01 73 6869"
)
KEY_FIELDS = PUT_CAPTURED[8 + 22 : 8 + 22 + 43]


class Sent(list):
    """Frames the client would send; every command is answered with `reply`."""

    reply = Message(generation=1)


@pytest.fixture
def sent(monkeypatch):
    frames = Sent()

    def fake_execute(cluster, key, msg, policy, write):
        frames.append(frame_request(msg, policy))
        return frames.reply, NODE

    monkeypatch.setattr("cluster.client.client.execute", fake_execute)
    return frames


@pytest.fixture
def client():
    return Client({"hosts": [("127.0.0.1", 1)]})


def header(frame: bytes) -> Message:
    return wm.parse(frame[8:])[0]


def test_put_matches_captured_official_bytes(sent, client):
    client.put(("test", "demo", 1), {"a": 7, "s": "hi"})
    assert sent[0] == PUT_CAPTURED


def test_get_matches_captured_official_bytes(sent, client):
    sent.reply = Message(generation=3, ops=[wm.value_op(OpType.READ, "a", 7)])
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


def test_server_error_codes_raise_matching_exceptions(sent, client):
    sent.reply = Message(result_code=2)
    with pytest.raises(errors.RecordNotFound) as info:
        client.get(("test", "demo", 1))
    assert info.value.code == 2 and isinstance(info.value, AerospikeError)
    assert client.exists(("test", "demo", 1))[1] is None
    sent.reply = Message(result_code=5)
    with pytest.raises(errors.RecordExists):
        client.put(("test", "demo", 1), {"a": 1}, policy={"exists": "create_only"})
    sent.reply = Message(result_code=25)  # no dedicated class: the base class, code kept
    with pytest.raises(AerospikeError) as info:
        client.remove(("test", "demo", 1))
    assert type(info.value) is AerospikeError and info.value.code == 25


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


# -- batch and scan through a stub connection ---------------------------------------------------

class StubConn:
    address = ("127.0.0.1", 3000)

    def __init__(self, frames):
        self.frames = list(frames)
        self.sent = []

    def set_timeout(self, _):
        pass

    def send(self, data):
        self.sent.append(data)

    def read_frame(self):
        msg_type, body = self.frames.pop(0)
        return (proto.TYPE_MSG, proto.decompress(body)[1]) if msg_type == proto.TYPE_COMPRESSED else (msg_type, body)

    def where(self):
        return "127.0.0.1:3000"


class StubNode:
    host, port, closed = "127.0.0.1", 3000, False

    def __init__(self, frames):
        self.conn = StubConn(frames)

    @contextmanager
    def connection(self):
        yield self.conn


class StubCluster:
    def __init__(self, node):
        self.node = node
        self.partitions = SimpleNamespace(node=lambda ns, pid, column: self.node)

    def node_for(self, namespace, pid, attempt=0, sequence=False):
        return self.node

    def require_namespace(self, namespace):
        return self.partitions


def row_reply(index, result=0, **bins):
    return wm.encode(Message(result_code=result, generation=1, transaction_ttl=index,
                             ops=[wm.value_op(OpType.READ, k, v) for k, v in bins.items()]))


LAST = wm.encode_header_only(0, info3=Info3.LAST)


def test_batch_request_and_out_of_order_multi_frame_replies():
    keys = [Key.of(("test", "demo", i)) for i in range(3)]
    frames = [
        (proto.TYPE_MSG, row_reply(2, x=2) + row_reply(0, x=0)),
        (proto.TYPE_COMPRESSED, proto.compress(proto.TYPE_MSG, row_reply(1, result=2) + LAST)[8:]),
    ]
    node = StubNode(frames)
    replies = batch_read(StubCluster(node), keys, None, Policy())
    assert [r.result_code for r in replies] == [0, 2, 0]
    assert replies[2].ops[0].name == "x"
    request = node.conn.sent[0]
    msg = header(request)
    assert (msg.info1, msg.transaction_ttl, list(msg.fields)) == (0x08, 1000, [FieldType.BATCH_INDEX])
    rows = parse_rows(msg.fields[FieldType.BATCH_INDEX])
    assert [(r.index, r.digest, r.info1) for r in rows] == [(i, k.digest, 0x03) for i, k in enumerate(keys)]
    assert rows[0].fields == {FieldType.NAMESPACE: b"test", FieldType.SET: b"demo"}


def test_batch_of_one_key_per_node_is_a_plain_read():
    node = StubNode([(proto.TYPE_MSG, row_reply(0, x=1))])
    batch_read(StubCluster(node), [Key.of(("test", "demo", 1))], ["x"], Policy())
    msg = header(node.conn.sent[0])
    assert msg.info1 == 0x01 and [o.name for o in msg.ops] == ["x"] and FieldType.DIGEST in msg.fields


def test_batch_reply_for_unknown_row_is_rejected():
    node = StubNode([(proto.TYPE_MSG, row_reply(7) + LAST)])
    with pytest.raises(errors.ClientError):
        batch_read(StubCluster(node), [Key.of(("test", "demo", i)) for i in range(2)], None, Policy())


def test_stream_last_with_error_fails_the_command():
    conn = StubConn([(proto.TYPE_MSG, row_reply(0) + wm.encode_header_only(11, info3=Info3.LAST))])
    with pytest.raises(errors.ClusterError):
        list(read_stream(conn))


def test_scan_request_and_partition_resume():
    record = wm.encode(Message(generation=2, fields={FieldType.NAMESPACE: b"test", FieldType.DIGEST: bytes(20),
                                                     FieldType.KEY: b"\x01" + (5).to_bytes(8, "big")},
                               ops=[wm.value_op(OpType.READ, "i", 5)]))
    done = [wm.encode_header_only(0, generation=pid, info3=Info3.PARTITION_DONE) for pid in range(1, 4096)]
    # Partition 0 delivers a record but is reported unavailable (11): it is asked again, after that digest.
    first = record + wm.encode_header_only(11, generation=0, info3=Info3.PARTITION_DONE) + b"".join(done) + LAST
    second = wm.encode_header_only(0, generation=0, info3=Info3.PARTITION_DONE) + LAST
    node = StubNode([(proto.TYPE_MSG, first), (proto.TYPE_MSG, second)])
    got = Scan(StubCluster(node), "test", "demo", Policy(total_timeout=0, max_retries=1)).results()
    assert got == [(("test", None, 5, bytearray(20)), {"gen": 2, "ttl": 0xFFFFFFFF}, {"i": 5})]
    one, two = (header(f) for f in node.conn.sent)
    assert (one.info1, one.info3, one.record_ttl) == (0x01, 0x04, 0xFFFFFFFF)
    assert one.fields[FieldType.SET] == b"demo"
    assert one.fields[FieldType.PID_ARRAY] == b"".join(p.to_bytes(2, "little") for p in range(4096))
    assert FieldType.PID_ARRAY not in two.fields and two.fields[FieldType.DIGEST_ARRAY] == bytes(20)


def test_scan_callback_can_stop_early():
    record = wm.encode(Message(fields={FieldType.NAMESPACE: b"test", FieldType.DIGEST: bytes(20)}))
    node = StubNode([(proto.TYPE_MSG, record * 3 + LAST)])
    seen = []
    Scan(StubCluster(node), "test", None, Policy()).foreach(lambda rec: seen.append(rec) or False)
    assert len(seen) == 1
