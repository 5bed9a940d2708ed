"""CDT values: msgpack round trips, flags headers, and the server's cross-type order."""

import msgpack
import pytest

from cluster.core.cdt import values as V
from cluster.wire import particles
from cluster.wire.result_codes import AerospikeError


def test_cross_type_order_is_the_servers():
    # nil < false < true < int < string < list < map < blob < double (msgpack_in.h)
    expected = [None, False, True, -5, 3, "a", "b", [1], [1, 2], {"k": 1}, b"x", -1.5, 2.5]
    shuffled = [2.5, b"x", "b", [1, 2], True, -5, {"k": 1}, None, "a", -1.5, [1], 3, False]
    got = sorted((V.from_python(v) for v in shuffled), key=V.sort_key)
    assert [V.to_python(v) for v in got] == expected


def test_every_int_sorts_below_every_double():
    assert V.compare(10**12, 0.5) == -1
    assert V.compare(1.0, 1) == 1


def test_lists_compare_element_wise_then_by_length():
    L = V.from_python
    assert V.compare(L([1, 2]), L([1, 3])) == -1
    assert V.compare(L([1, 2]), L([1, 2, 0])) == -1
    assert V.compare(L([2]), L([1, 9, 9])) == 1


def test_wildcard_ends_a_comparison_as_equal_and_inf_is_above_all():
    assert V.compare(V.CdtList([1, V.WILDCARD]), V.from_python([1, "x", 3])) == 0
    assert V.compare(V.CdtList([2, V.WILDCARD]), V.from_python([1, "x"])) == 1
    assert V.compare(V.from_python({"a": [1, 2]}), V.INF) == -1
    assert V.compare(V.WILDCARD, 5) == 0


def test_strings_keep_their_particle_prefix_and_round_trip():
    data = particles.encode(["héllo", b"\x00\x01", 1.25, -7, None, True, {"k": [1]}])[1]
    value = V.unpack(data)
    assert value[0] == b"\x03" + "héllo".encode()
    assert value[1] == b"\x04\x00\x01"
    assert V.pack(value) == data


def test_ordered_list_and_map_flags_are_an_extension_header():
    lst = V.CdtList([1, 2], V.LIST_ORDERED)
    packed = V.pack(lst)
    assert packed[:4] == bytes([0x93, 0xC7, 0x00, V.LIST_ORDERED])
    again = V.unpack(packed)
    assert again == [1, 2] and again.flags == V.LIST_ORDERED

    m = V.CdtMap({1: 2}, V.MAP_KV_ORDERED)
    packed = V.pack(m)
    assert packed[:5] == bytes([0x82, 0xC7, 0x00, V.MAP_KV_ORDERED, 0xC0])
    again = V.unpack(packed)
    assert again.items == {1: 2} and again.flags == V.MAP_KV_ORDERED
    # and the client-side msgpack library reads them back as the client would
    assert msgpack.unpackb(V.pack(V.CdtMap({1: 2})), strict_map_key=False) == {1: 2}


def test_wildcard_and_inf_are_ext_ff():
    assert V.pack(V.WILDCARD) == b"\xd4\xff\x00" and V.unpack(b"\xd4\xff\x00") is V.WILDCARD
    assert V.pack(V.INF) == b"\xd4\xff\x01" and V.unpack(b"\xd4\xff\x01") is V.INF
    assert not V.is_storable(V.CdtList([1, V.INF]))


def test_ints_of_every_width_round_trip():
    for v in (0, 127, 128, -32, -33, 255, 256, 65535, 65536, 2**32, 2**63 - 1, -(2**63), -129, -32769):
        assert V.unpack(V.pack(v)) == v


def test_malformed_msgpack_is_a_parameter_error():
    with pytest.raises(AerospikeError) as caught:
        V.unpack(b"\x92\x01")
    assert caught.value.code == 4
    with pytest.raises(AerospikeError):
        V.unpack(b"\x01\x02")


def test_map_keys_are_ints_strings_and_blobs_only():
    assert V.is_map_key(1) and V.is_map_key(b"\x03a") and V.is_map_key(b"\x04a")
    assert not V.is_map_key(1.5) and not V.is_map_key(True) and not V.is_map_key(None)


def test_particles_decode_skips_the_order_header_of_a_stored_ordered_list():
    ordered = V.pack(V.CdtList([1, b"\x03a"], V.LIST_ORDERED))
    assert particles.decode(particles.ParticleType.LIST, ordered) == [1, "a"]


def test_maps_compare_by_size_then_pairs_in_stored_order():
    M = V.from_python
    assert V.compare(M({"z": 1}), M({"a": 1, "b": 2})) == -1
    assert V.compare(M({"a": 1, "b": 2}), M({"a": 1, "b": 3})) == -1
    assert V.compare(V.CdtMap({b"\x03a": V.WILDCARD}), M({"a": [1, 2]})) == 0
