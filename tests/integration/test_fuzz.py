"""Thousands of malformed frames: the node stays up, answers valid requests, loses nothing."""

import random
import socket
import struct
import zlib

import aerospike

from cluster.wire import message as wm
from cluster.wire import proto
from cluster.wire.batch import encode_read_rows
from cluster.wire.digest import compute_digest
from cluster.wire.message import FieldType, Info1, Info2, Message, Op, OpType, value_op

SEED = 20261122
CASES = 3000


def _base_messages() -> list[bytes]:
    """Valid AS_MSG bodies of every request shape; the fuzzer mutates these."""
    d = compute_digest("fuzz", 1)
    fields = {FieldType.NAMESPACE: b"test", FieldType.SET: b"fuzz", FieldType.DIGEST: d}
    put = Message(info2=Info2.WRITE, fields=fields, ops=[
        value_op(OpType.WRITE, "a", 7),
        value_op(OpType.WRITE, "l", [1, "x", {"k": b"v"}]),
    ])
    operate = Message(info1=Info1.READ, info2=Info2.WRITE, fields=fields, ops=[
        value_op(OpType.INCR, "a", 1), Op(OpType.READ, 0, "a")])
    get = Message(info1=Info1.READ | Info1.GET_ALL, fields=fields)
    batch = Message(info1=Info1.BATCH, fields={FieldType.BATCH_INDEX: encode_read_rows(
        [(i, compute_digest("fuzz", i), Info1.READ | Info1.GET_ALL,
          {FieldType.NAMESPACE: b"test", FieldType.SET: b"fuzz"}, []) for i in range(3)])})
    scan = Message(info1=Info1.READ, info3=wm.Info3.PARTITION_DONE, fields={
        FieldType.NAMESPACE: b"test", FieldType.PID_ARRAY: struct.pack("<3H", 0, 1, 4095)})
    return [wm.encode(m) for m in (put, operate, get, batch, scan)]


def _mutate(rng: random.Random, bases: list[bytes]) -> bytes:
    """One malformed (or at least suspicious) frame, chosen among several failure shapes."""
    body = bytearray(rng.choice(bases))
    kind = rng.randrange(9)
    if kind == 0:  # random garbage, header included
        return rng.randbytes(rng.randrange(1, 64))
    if kind == 1:  # flip bytes inside a valid AS_MSG
        for _ in range(rng.randrange(1, 6)):
            body[rng.randrange(len(body))] = rng.randrange(256)
        return proto.frame(proto.TYPE_MSG, bytes(body))
    if kind == 2:  # truncated body, header claims more
        cut = rng.randrange(len(body))
        return proto.pack_header(proto.TYPE_MSG, len(body)) + bytes(body[:cut])
    if kind == 3:  # absurd or forbidden lengths / versions / types
        return rng.choice([
            struct.pack(">Q", (2 << 56) | (3 << 48) | (200 << 20)),
            struct.pack(">Q", (9 << 56) | (3 << 48) | 10) + bytes(10),
            struct.pack(">Q", (2 << 56) | (77 << 48) | 4) + bytes(4),
            struct.pack(">Q", (2 << 56) | (3 << 48) | 0),
        ])
    if kind == 4:  # lying counts in the header
        struct.pack_into(">HH", body, 18, rng.randrange(65536), rng.randrange(65536))
        return proto.frame(proto.TYPE_MSG, bytes(body))
    if kind == 5:  # broken compression
        inner = proto.frame(proto.TYPE_MSG, bytes(body))
        packed = struct.pack(">Q", len(inner) + rng.randrange(-3, 4)) + zlib.compress(inner)[: rng.randrange(1, 40)]
        return proto.frame(proto.TYPE_COMPRESSED, packed)
    if kind == 6:  # info with non-UTF-8 bytes and odd separators
        return proto.frame(proto.TYPE_INFO, rng.randbytes(rng.randrange(0, 40)) + b"\n")
    if kind == 7:  # unknown op codes and particle types in a structurally valid message
        msg, _ = wm.parse(bytes(body))
        for op in msg.ops:
            op.op, op.ptype = rng.randrange(256), rng.randrange(256)
        return wm.encode_frame(msg)
    return proto.frame(proto.TYPE_ADMIN, rng.randbytes(rng.randrange(0, 32)))


def _send(addr, frame: bytes) -> None:
    with socket.create_connection(addr, timeout=2) as s:
        s.sendall(frame)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(0.5)
        try:
            while s.recv(65536):
                pass
        except (TimeoutError, ConnectionResetError):
            pass


def test_node_survives_malformed_frames(node):
    client = aerospike.client({"hosts": [node.address]}).connect()
    keep = {i: {"v": i, "s": f"keep-{i}"} for i in range(100)}
    for i, bins in keep.items():
        client.put(("test", "keep", i), bins)

    rng = random.Random(SEED)
    bases = _base_messages()
    for case in range(CASES):
        _send(node.address, _mutate(rng, bases))
        if case % 500 == 499:
            assert node.is_running(), f"node died after case {case}; log:\n{node.log_tail()}"
            client.put(("test", "probe", case), {"ok": case})
            assert client.get(("test", "probe", case))[2] == {"ok": case}

    assert node.is_running()
    for i, bins in keep.items():
        assert client.get(("test", "keep", i))[2] == bins
    client.close()
