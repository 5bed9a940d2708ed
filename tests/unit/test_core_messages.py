"""The membership message codec, node ids, and the purity rule of cluster/core."""

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cluster.core.messages import (
    ChangeApplied,
    DecodeError,
    ExchangeData,
    JoinRequest,
    Learn,
    MergeMove,
    Prepare,
    PrepareNack,
    Pulse,
    decode,
    encode,
)
from cluster.core.node_id import derive_node_id, format_node_id, parse_node_id

U64 = (1 << 64) - 1
SAMPLES = [
    Pulse(U64, "refcluster", 7, 123, "10.0.0.1:3002", "10.0.0.1:3001", (1, 2), ((1, "h:1"),), 0x42, (U64, 1), 9),
    Prepare(1, 2),
    PrepareNack(1, 2, 3, 4),
    Learn(1, 2, 0xFFFFFFFFFFFF, (3, 2, 1)),
    ChangeApplied(1, 0x42, ()),
    JoinRequest(5),
    MergeMove(1, 2, 3),
    ExchangeData(1, 0x42, {"test": {0x42_0_00_0_0_0_0: (0, 1, 4095)}, "bar": {}}),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(msg):
    assert decode(encode(msg)) == msg


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        msgpack.packb({"a": 1}),
        msgpack.packb([]),
        msgpack.packb([999, 1]),
        msgpack.packb([10, 1]),  # Prepare with a missing field
        msgpack.packb([10, 1, 2, 3]),  # one too many
        msgpack.packb([10, -1, 2]),  # negative node id
        msgpack.packb([10, "1", 2]),
        msgpack.packb([10, True, 2]),
        msgpack.packb([16, 1, 2, 3, [1, "x"]]),  # succession with a string
        msgpack.packb([30, 1, 2, {"ns": {"v": [1]}}]),  # version must be an int
    ],
)
def test_garbage_raises_decode_error(data):
    with pytest.raises(DecodeError):
        decode(data)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_else(data):
    try:
        decode(data)
    except DecodeError:
        pass


def test_encode_rejects_foreign_objects():
    with pytest.raises(TypeError):
        encode(object())


def test_node_id_from_port_and_mac_like_aerospike():
    node = derive_node_id(3001, bytes.fromhex("0242ac110004"))
    assert format_node_id(node) == "BB9040011AC4202"
    assert parse_node_id("BB9040011AC4202") == node
    assert format_node_id(derive_node_id(3000, bytes(5) + b"\x01")) == "BB8010000000000"


def test_node_id_rules():
    assert format_node_id(1) == "1"
    assert len(format_node_id(derive_node_id(3001, bytes(range(20))))) == 15  # long address: digest
    for bad in ("", "0", "xyz", "0x12", "-1", "1" * 17):
        with pytest.raises(ValueError):
            parse_node_id(bad)
    with pytest.raises(ValueError):
        derive_node_id(0, bytes(6))
    with pytest.raises(ValueError):
        derive_node_id(3001, b"\x01")


def test_core_imports_no_io_clock_or_randomness():
    import ast
    import pathlib

    import cluster.core

    forbidden = {"asyncio", "socket", "time", "random", "threading", "os", "selectors", "subprocess"}
    for path in pathlib.Path(cluster.core.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            assert not {n.split(".")[0] for n in names} & forbidden, f"{path.name} imports {names}"
