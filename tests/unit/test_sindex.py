"""cluster/core/sindex.py and cluster/node/query.py: index definitions as SMD entries (the
server's create / rename / delete rules, merge by stamp), the info parameters' checks, the
query fields, which records an index selects, and the (bval, digest) order and resume."""

import base64
import struct

import pytest

from cluster.core import bins as binops
from cluster.core import sindex as si
from cluster.core.cdt.values import pack
from cluster.core.records import LIVE, RecordImage, store
from cluster.node.query import count_entries, query_partition, resume_bvals
from cluster.storage.memory import MemoryStore
from cluster.wire.particles import ParticleType
from cluster.wire.result_codes import AerospikeError

NS = "test"


def create(**kv) -> tuple[str, str, si.IndexDef]:
    return si.parse_create({k: str(v) for k, v in kv.items()})


def test_both_create_forms_give_one_definition():
    old = create(ns=NS, set="s", indexname="i", indextype="list", indexdata="tags,numeric")
    new = create(namespace=NS, set="s", indexname="i", indextype="LIST", bin="tags", type="NUMERIC")
    assert old == new == (NS, "i", si.IndexDef("s", "tags", si.LIST, si.NUMERIC))
    assert old[2].smd_key(NS) == "test|s|tags|L|I"
    ctx = base64.b64encode(pack([0x10, 0])).decode()
    with_ctx = create(ns=NS, indexname="c", context=ctx, indexdata="l,string")[2]
    assert with_ctx.smd_key(NS) == f"test||l|c{ctx}|.|S"
    assert si.IndexDef.from_smd_key(with_ctx.smd_key(NS)) == with_ctx


@pytest.mark.parametrize("kv, code, message", [
    (dict(ns=NS, indexname="i"), 4, "both 'indexdata' and 'type' are missing"),
    (dict(ns=NS, indexname="i", indexdata="b,string", type="string"), 4, "both 'indexdata' and 'type' are specified"),
    (dict(ns=NS, indexname="i", indexdata="b"), 4, "'indexdata' missing bin type"),
    (dict(ns=NS, indexname="i", indexdata=",string"), 4, "'indexdata' missing bin name"),
    (dict(ns=NS, indexname="i", indexdata="b" * 16 + ",string"), 4, "'indexdata' bin name too long"),
    (dict(ns=NS, indexname="i", bin="b" * 16, type="string"), 4, "'bin' value too long"),
    (dict(ns=NS, indexname="i", type="string"), 4, "both 'bin' and 'exp' are missing"),
    (dict(ns=NS, indexname="i", indexdata="b,float"), 4, "bad 'indexdata' bin type - must be one of"),
    (dict(ns=NS, indexname="i", indextype="tree", indexdata="b,string"), 4, "bad 'indextype'"),
    (dict(ns=NS, indexname="i", indextype="mapkeys", indexdata="b,geo2dsphere"), 4, "bad 'indexdata' bin type for"),
    (dict(ns=NS, indexname="i", set="", indexdata="b,string"), 4, "missing 'set' value"),
    (dict(ns=NS, indexname="i", set="s" * 64, indexdata="b,string"), 4, "'set' value too long"),
    (dict(ns=NS, indexname="i" * 64, indexdata="b,string"), 4, "'indexname' value too long"),
    (dict(ns="n" * 32, indexname="i", indexdata="b,string"), 20, "'namespace' value too long"),
    (dict(indexname="i", indexdata="b,string"), 20, "missing 'namespace'"),
    (dict(ns=NS, indexdata="b,string"), 4, "missing 'indexname'"),
    (dict(ns=NS, indexname="i", context="!!", indexdata="b,string"), 4, "'context' invalid base64"),
    (dict(ns=NS, indexname="i", context="kgA=", indexdata="b,string"), 4, "'context' invalid cdt context"),
    (dict(ns=NS, indexname="i", exp="kgA=", type="numeric"), 16, "expression indexes are not implemented"),
    (dict(ns=NS, indexname="i", set="s", indextype="set"), 16, "set indexes are not implemented"),
])
def test_create_refusals_are_the_servers(kv, code, message):
    with pytest.raises(si.SindexError) as err:
        create(**kv)
    assert err.value.code == code and str(err.value).startswith(message)


def test_catalog_create_rename_delete_and_limit():
    cat = si.Catalog(NS)
    age = si.IndexDef("s", "age", si.DEFAULT, si.NUMERIC)
    key = cat.create("a", age)
    assert key == "test|s|age|.|I" and cat.merge(key, "a", 10)
    assert cat.create("a", age) is None  # same name, same definition: ok, nothing to do
    with pytest.raises(si.SindexError) as err:
        cat.create("a", si.IndexDef("s", "age", si.DEFAULT, si.STRING))
    assert err.value.code == si.INDEX_FOUND
    assert cat.merge(cat.create("b", age), "b", 11)  # a new name for the definition: a rename
    assert cat.live() == {"b": age}
    assert cat.delete("a") is None  # gone already: the server's ok
    assert cat.merge(cat.delete("b"), None, 12) and cat.live() == {}
    for i in range(si.MAX_INDEXES):
        cat.merge(si.IndexDef("s", f"b{i}", si.DEFAULT, si.NUMERIC).smd_key(NS), f"i{i}", 20 + i)
    with pytest.raises(si.SindexError) as err:
        cat.create("one-more", age)
    assert err.value.code == si.INDEX_MAX_COUNT


def test_catalog_merge_keeps_the_newest_stamp_and_one_owner_per_name():
    cat = si.Catalog(NS)
    key = "test|s|age|.|I"
    assert cat.merge(key, "a", 5)
    assert not cat.merge(key, None, 4)  # an older delete changes nothing
    assert cat.merge(key, None, 6) and cat.live() == {}
    assert not cat.merge(key, None, 6)  # the same entry again
    assert cat.next_stamp(key, 3) == 7
    cat.merge("test|s|x|.|S", "dup", 8)
    cat.merge("test|s|y|.|S", "dup", 9)  # two nodes created one name at once: the older wins
    assert cat.live()["dup"].bin_name == "x"
    with pytest.raises(si.SindexError):
        cat.create("dup", si.IndexDef("s", "x", si.DEFAULT, si.STRING))
    with pytest.raises(ValueError):
        cat.merge("not a key", "z", 10)


def range_field(bin_name: str, low: int, high: int) -> bytes:
    name = bin_name.encode()
    return bytes((1, len(name))) + name + bytes((si.NUMERIC,)) + struct.pack(">IqIq", 8, low, 8, high)


def value_field(bin_name: str, ptype: int, value: bytes) -> bytes:
    name = bin_name.encode()
    return (bytes((1, len(name))) + name + bytes((ptype,)) + struct.pack(">I", len(value)) + value
            + struct.pack(">I", len(value)) + value)


def catalog_with(*defs: si.IndexDef) -> si.Catalog:
    cat = si.Catalog(NS)
    for i, d in enumerate(defs):
        cat.merge(d.smd_key(NS), f"idx{i}", i + 1)
    return cat


def test_query_fields_find_the_index_or_say_why_not():
    age = si.IndexDef("s", "age", si.DEFAULT, si.NUMERIC)
    anywhere = si.IndexDef("", "name", si.DEFAULT, si.STRING)
    tags = si.IndexDef("s", "tags", si.LIST, si.NUMERIC)
    cat = catalog_with(age, anywhere, tags)
    q = si.parse_query({22: range_field("age", 3, 9)}, "s", cat)
    assert (q.index, q.low, q.high) == (age, 3, 9)
    assert si.parse_query({22: value_field("name", 3, b"ann")}, "other", cat).value == b"\x03ann"  # set-less
    assert si.parse_query({22: range_field("tags", 1, 1), 26: b"\x01"}, "s", cat).index == tags
    assert si.parse_query({22: range_field("", 1, 1), 21: b"idx0"}, "s", cat).index == age
    for fields, set_name in [({22: range_field("age", 3, 9)}, "other"),  # the index is on set s only
                             ({22: range_field("age", 3, 9)}, ""),
                             ({22: range_field("tags", 1, 1)}, "s"),  # a list index, asked as default
                             ({22: value_field("age", 3, b"x")}, "s")]:  # a string index on age: none
        with pytest.raises(AerospikeError) as err:
            si.parse_query(fields, set_name, cat)
        assert err.value.code == si.INDEX_NOT_FOUND
    for fields, code in [({22: range_field("age", 9, 3)}, 4), ({22: b"\x02\x00"}, 4),
                         ({22: value_field("age", 23, b"{}")}, 16), ({22: range_field("age", 1, 2), 24: b"x"}, 16),
                         ({22: value_field("age", 7, b"x")}, 4), ({22: range_field("age", 1, 2), 23: b"\x01"}, 4)]:
        with pytest.raises(AerospikeError) as err:
            si.parse_query(fields, "s", cat)
        assert err.value.code == code


def bins(**values) -> dict[str, tuple[int, bytes]]:
    from cluster.core.cdt.values import to_particle
    out = {}
    for name, v in values.items():
        if isinstance(v, str):
            out[name] = (int(ParticleType.STRING), v.encode())
        else:
            out[name] = to_particle(v)
    return out


def test_what_each_index_type_takes_from_a_record():
    from cluster.core.cdt.values import CdtList, CdtMap
    record = bins(n=7, s="ann", flag=True, l=CdtList([1, b"\x03x", 3, 3]), m=CdtMap({b"\x03k": 5, 2: b"\x03v"}),
                  nested=CdtList([CdtList([4, 5])]))
    assert si.IndexDef("", "n", si.DEFAULT, si.NUMERIC).values(record, None) == [7]
    assert si.IndexDef("", "n", si.LIST, si.NUMERIC).values(record, None) == []  # not a list
    assert si.IndexDef("", "s", si.DEFAULT, si.STRING).values(record, None) == [b"\x03ann"]
    assert si.IndexDef("", "s", si.DEFAULT, si.NUMERIC).values(record, None) == []
    assert si.IndexDef("", "flag", si.DEFAULT, si.NUMERIC).values(record, None) == []  # a bool is no integer
    assert si.IndexDef("", "l", si.LIST, si.NUMERIC).values(record, None) == [1, 3, 3]
    assert si.IndexDef("", "l", si.DEFAULT, si.NUMERIC).values(record, None) == []  # a list, default index
    assert si.IndexDef("", "m", si.MAPKEYS, si.STRING).values(record, None) == [b"\x03k"]
    assert si.IndexDef("", "m", si.MAPVALUES, si.NUMERIC).values(record, None) == [5]
    ctx = base64.b64encode(pack([0x10, 0, 0x10, -1])).decode()  # [0][-1]: the last of the first list
    nested = si.IndexDef("", "nested", si.DEFAULT, si.NUMERIC, ctx)
    assert nested.values(record, nested.steps()) == [5]
    missing = si.IndexDef("", "nested", si.DEFAULT, si.NUMERIC, base64.b64encode(pack([0x10, 3])).decode())
    assert missing.values(record, missing.steps()) == []
    assert si.IndexDef("", "absent", si.DEFAULT, si.NUMERIC).values(record, None) == []
    q = si.IndexQuery(si.IndexDef("", "l", si.LIST, si.NUMERIC), 2, 9)
    assert q.bval(record) == 3 and si.IndexQuery(q.index, 4, 9).bval(record) is None
    sq = si.IndexQuery(si.IndexDef("", "s", si.DEFAULT, si.STRING), value=b"\x03ann")
    assert sq.bval(record) == si.bval_of_bytes(b"ann")


def put(storage, digest: bytes, set_name: str, record_bins) -> None:
    store(storage, RecordImage(digest, 1, 0, 1, set_name, binops.encode_payload(record_bins, None), LIVE))


def test_a_partition_yields_matches_in_bval_digest_order_and_resumes_after_the_last():
    storage = MemoryStore(data_size=1 << 24)
    digests = [bytes([0, 0]) + bytes([i]) * 18 for i in range(1, 9)]  # all in partition 0
    for i, d in enumerate(digests):
        put(storage, d, "s" if i != 7 else "other", bins(age=i % 4))
    q = si.IndexQuery(si.IndexDef("s", "age", si.DEFAULT, si.NUMERIC), 1, 3)
    got = [(bval, digest) for digest, _m, _p, bval in query_partition(q, storage, 0, 0, "s", (None, None))]
    assert got == sorted(got) and [b for b, _ in got] == [1, 1, 2, 2, 3]  # age 3 of set "other" left out
    resumed = query_partition(q, storage, 0, 0, "s", (got[2][1], got[2][0]))
    assert [(bval, digest) for digest, _m, _p, bval in resumed] == got[3:]
    assert count_entries(q.index, storage, 0) == 7


def test_resume_bvals_pair_with_the_digests():
    raw = struct.pack("<qq", -5, 7)
    assert resume_bvals({15: raw}, 2, index_query=True) == [-5, 7]
    assert resume_bvals({}, 2, index_query=False) == [None, None]
    for fields, n, query in [({}, 1, True), ({15: raw}, 1, True), ({15: raw}, 2, False)]:
        with pytest.raises(AerospikeError):
            resume_bvals(fields, n, query)
