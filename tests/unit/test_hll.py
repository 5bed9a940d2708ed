"""HyperLogLog: layout, hash, estimators and op rules, against answers of the real server
(Aerospike 8.1, single node, memory namespace; recorded with the official client)."""

import hashlib
import math
import struct

import msgpack
import pytest

from cluster.core import hll
from cluster.core.hll import sketch
from cluster.core.hll.sketch import Sketch, murmur3_128
from cluster.wire.particles import ParticleType
from cluster.wire.result_codes import AerospikeError, ResultCode


def s(text: str) -> bytes:
    """A string as the client sends it inside an op: msgpack str with the particle-type prefix."""
    return b"\x03" + text.encode()


def op(*args) -> bytes:
    return msgpack.packb(list(args), use_bin_type=False)


def add(particle, elements, index_bits=-1, minhash_bits=-1, flags=0):
    return hll.apply_modify(particle, op(hll.ADD, elements, index_bits, minhash_bits, flags))


def read(particle, *args):
    return hll.apply_read(particle, op(*args))


def as_int(result) -> int:
    assert result[0] == ParticleType.INTEGER
    return struct.unpack(">q", result[1])[0]


def as_float(result) -> float:
    assert result[0] == ParticleType.FLOAT
    return struct.unpack(">d", result[1])[0]


def hll_arg(particle: bytes) -> bytes:
    return bytes((ParticleType.HLL,)) + particle  # how the client sends an HLL value


KEYS = [s(f"k{i}") for i in range(1000)]
OTHER = [s(f"k{i}") for i in range(500, 1500)]


def test_murmur3_is_the_reference_x64_128():
    h1, h2 = murmur3_128(b"The quick brown fox jumps over the lazy dog")
    assert (h1.to_bytes(8, "little") + h2.to_bytes(8, "little")).hex() == "6c1b07bc7bbc4be347939ac4a93c437a"
    assert murmur3_128(b"") == (0, 0)


def test_layout_and_hash_match_the_server_byte_for_byte():
    # hll_add(["a", 1, -1, 300, 2**40, "x" * 40], 4, 0) on the real server: 5 registers changed
    particle, result = add(None, [s("a"), 1, -1, 300, 2**40, s("x" * 40)], 4, 0)
    assert as_int(result) == 5
    assert particle.hex() == "0004000000000000000000000000004040001000080005"
    particle, _ = add(None, KEYS, 10, 0)
    assert hashlib.sha256(particle).hexdigest() == "bcd91fa216260242ff979b947a514c4d1253163f3b80adf28a45d05c30ecc186"
    particle, result = add(None, KEYS, 8, 8)
    assert as_int(result) == 476
    assert hashlib.sha256(particle).hexdigest() == "7ebfd6a5c0ae9ee9acd11f46a5be257a9043eed2bfc9bb31af359f75629de6a5"


def test_elements_are_hashed_in_compact_msgpack():
    # the same integer sent in a longer encoding, and a short blob header, hash as the compact form
    compact, _ = add(None, [1, s("a")], 8, 0)
    long_int = b"\xcf" + (1).to_bytes(8, "big")
    long_str = b"\xd9\x02\x03a"
    loose, _ = hll.apply_modify(None, b"\x95\x01\x92" + long_int + long_str + b"\x08\x00\x00")
    assert loose == compact


def test_estimators_match_the_server():
    a, _ = add(None, KEYS, 10, 0)
    b, _ = add(None, OTHER, 10, 0)
    assert as_int(read(a, hll.COUNT)) == 991
    assert as_int(read(a, hll.UNION_COUNT, [hll_arg(b)])) == 1484
    assert as_int(read(a, hll.INTERSECT_COUNT, [hll_arg(b)])) == 468
    assert as_float(read(a, hll.SIMILARITY, [hll_arg(b)])) == 0.31536388140161725
    ma, _ = add(None, KEYS, 8, 8)
    mb, _ = add(None, OTHER, 8, 8)
    assert as_int(read(ma, hll.COUNT)) == 1064
    assert as_int(read(ma, hll.INTERSECT_COUNT, [hll_arg(mb)])) == 469
    assert as_float(read(ma, hll.SIMILARITY, [hll_arg(mb)])) == 0.3091401374696461


def test_register_packing_round_trips_at_every_width():
    for index_bits, minhash_bits in ((4, 0), (5, 4), (8, 13), (4, 51)):
        hll_ = Sketch(index_bits, minhash_bits)
        width = sketch.HLL_BITS + minhash_bits
        hll_.registers = [(i * 2654435761) % (1 << width) for i in range(1 << index_bits)]
        data = hll_.encode()
        assert len(data) == sketch.particle_size(index_bits, minhash_bits)
        assert Sketch.decode(data).registers == hll_.registers


def test_empty_sketch_counts_zero_and_similarity_of_empties_is_nan():
    empty, _ = hll.apply_modify(None, op(hll.INIT, 8, 4))
    assert as_int(read(empty, hll.COUNT)) == 0
    assert math.isnan(as_float(read(empty, hll.SIMILARITY, [hll_arg(empty)])))
    full, _ = add(None, KEYS[:10], 8, 4)
    assert as_float(read(empty, hll.SIMILARITY, [hll_arg(full)])) == 0.0


def test_add_counts_registers_changed_and_may_contain():
    particle, result = add(None, [s("x"), s("y")], 8, 0)
    assert as_int(result) == 2
    particle, result = add(particle, [s("x")])  # an existing sketch keeps its bits
    assert as_int(result) == 0
    assert as_int(read(particle, hll.MAY_CONTAIN, [s("x"), s("y")])) == 1
    assert read(particle, hll.DESCRIBE) == (ParticleType.LIST, msgpack.packb([8, 0]))


def test_refresh_count_caches_the_count_in_the_header():
    particle, _ = add(None, KEYS, 10, 0)
    particle, result = hll.apply_modify(particle, op(hll.REFRESH_COUNT))
    assert as_int(result) == 991
    assert sketch.HEADER.unpack_from(particle)[3] == 991
    changed, _ = add(particle, [s("new one")])
    assert sketch.HEADER.unpack_from(changed)[3] == 0  # a change forgets the cached count


def test_fold_and_union_bits():
    particle, _ = add(None, KEYS, 10, 0)
    folded, _ = hll.apply_modify(particle, op(hll.FOLD, 6))
    assert read(folded, hll.DESCRIBE)[1] == msgpack.packb([6, 0])
    small, _ = add(None, OTHER, 6, 0)
    for flags in (0, hll.ALLOW_FOLD):
        if flags:
            union, _ = hll.apply_modify(particle, op(hll.SET_UNION, [hll_arg(small)], flags))
            assert read(union, hll.DESCRIBE)[1] == msgpack.packb([6, 0])
        else:
            with pytest.raises(AerospikeError) as caught:
                hll.apply_modify(particle, op(hll.SET_UNION, [hll_arg(small)], flags))
            assert caught.value.code == ResultCode.OP_NOT_APPLICABLE


@pytest.mark.parametrize("payload, particle, code", [
    (op(hll.INIT, 3, 0), None, ResultCode.PARAMETER),  # index bits below 4
    (op(hll.INIT, 16, 49), None, ResultCode.PARAMETER),  # more than 64 bits together
    (op(hll.INIT, -1, -1), None, ResultCode.OP_NOT_APPLICABLE),  # nothing to create it with
    (op(hll.INIT, 8, 0, hll.CREATE_ONLY | hll.UPDATE_ONLY), None, ResultCode.PARAMETER),
    (op(hll.ADD, [[1]], 8, 0), None, ResultCode.PARAMETER),  # lists cannot be added
    (op(hll.ADD, [], 8, 0), None, ResultCode.PARAMETER),
    (op(hll.ADD, [1], 8, 0, hll.ALLOW_FOLD), None, ResultCode.PARAMETER),  # not one of add's flags
    (op(hll.REFRESH_COUNT), None, ResultCode.BIN_NOT_FOUND),
    (op(hll.FOLD, 6), None, ResultCode.BIN_NOT_FOUND),
    (op(hll.INIT, 8, 0, hll.UPDATE_ONLY), None, ResultCode.BIN_NOT_FOUND),
    (op(hll.INIT, 8, 0, hll.CREATE_ONLY), "existing", ResultCode.BIN_EXISTS),
    (op(hll.FOLD, 6), "minhash", ResultCode.OP_NOT_APPLICABLE),
    (op(hll.COUNT), None, ResultCode.PARAMETER),  # a read op where a modify op is expected
])
def test_modify_errors(payload, particle, code):
    existing = {"existing": add(None, [1], 8, 0)[0], "minhash": add(None, [1], 8, 4)[0]}.get(particle)
    with pytest.raises(AerospikeError) as caught:
        hll.apply_modify(existing, payload)
    assert caught.value.code == code


def test_no_fail_leaves_the_bin_alone():
    existing, _ = add(None, [1], 8, 0)
    assert hll.apply_modify(existing, op(hll.INIT, 8, 0, hll.CREATE_ONLY | hll.NO_FAIL)) == (None, None)
    assert hll.apply_modify(None, op(hll.INIT, 8, 0, hll.UPDATE_ONLY | hll.NO_FAIL)) == (None, None)


def test_intersect_of_more_than_two_needs_equal_minhash_bits():
    plain, _ = add(None, KEYS, 8, 0)
    with_minhash, _ = add(None, KEYS, 8, 8)
    with pytest.raises(AerospikeError) as caught:  # 3 HLLs sent with no minhash bits: malformed
        read(with_minhash, hll.INTERSECT_COUNT, [hll_arg(plain)] * 3)
    assert caught.value.code == ResultCode.PARAMETER
    with pytest.raises(AerospikeError) as caught:  # the bin's bits do not match theirs
        read(plain, hll.INTERSECT_COUNT, [hll_arg(with_minhash)] * 3)
    assert caught.value.code == ResultCode.OP_NOT_APPLICABLE


def test_batched_hash_equals_one_at_a_time():
    items = [bytes((i * 7 + j) % 256 for j in range(n)) for n in range(1, 41) for i in range(3)]
    assert sketch.murmur3_128_many(items) == [murmur3_128(item) for item in items]
    many = [s(f"key{i}") for i in range(100)]  # above the batching threshold: same registers as one by one
    batched, _ = add(None, many, 8, 4)
    single = None
    for element in many:
        single, _ = add(single, [element], 8, 4)
    assert batched == single


def test_has_data_looks_only_where_the_server_looks():
    # 16 registers of 10 bits: the server reads the first 16 bytes = registers 0..11 and the
    # top 8 bits of register 12
    hll_ = Sketch(4, 4)
    hll_.registers[13] = 1
    assert not hll_.has_data()
    hll_.registers[12] = 0b11
    assert not hll_.has_data()  # its low bits lie beyond the 16th byte
    hll_.registers[12] = 0b100
    assert hll_.has_data()
    assert hll_.has_data() == any(hll_.encode()[sketch.HEADER.size:sketch.HEADER.size + 16])
