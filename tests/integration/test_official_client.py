"""The official `aerospike` client (C-based, 19.x) against a real node process."""

import aerospike
import pytest
from aerospike import exception as ex
from aerospike_helpers.operations import operations as op

from cluster.wire.digest import compute_digest

NS, SET = "test", "demo"

EVERY_TYPE = {
    "int": -(2**63),
    "big": 2**63 - 1,
    "float": 3.25,
    "str": "héllo wörld",
    "blob": b"\x00\x01\xffbytes",
    "bool": True,
    "list": [1, "two", 3.0, b"four", [5], {"six": 6}],
    "map": {"a": 1, "b": [1, 2], "c": {"d": "e"}, 7: "seven"},
}


@pytest.mark.parametrize("key", [1, -5, 0, 2**40, "get_key_digest", "", "ünïcode", bytearray(b"askluy3oijs")])
@pytest.mark.parametrize("set_name", ["demo", ""])
def test_digest_matches_official_client(key, set_name):
    expected = aerospike.calc_digest(NS, set_name, key)
    assert compute_digest(set_name, bytes(key) if isinstance(key, bytearray) else key) == bytes(expected)


def test_every_particle_type_round_trips(aero):
    key = (NS, SET, "all-types")
    aero.put(key, EVERY_TYPE)
    _, meta, bins = aero.get(key)
    assert bins == EVERY_TYPE
    assert meta["gen"] == 1
    aero.put(key, {"int": 5, "none": None})  # writing None removes nothing that isn't there
    _, meta, bins = aero.get(key)
    assert meta["gen"] == 2 and bins["int"] == 5 and "none" not in bins


def test_select_exists_touch_remove(aero):
    key = (NS, SET, 42)
    assert aero.exists(key)[1] is None
    with pytest.raises(ex.RecordNotFound):
        aero.get(key)
    aero.put(key, {"a": 1, "b": "two", "c": 3.0}, meta={"ttl": 1000})
    assert aero.select(key, ["a", "c"])[2] == {"a": 1, "c": 3.0}
    _, meta = aero.exists(key)
    assert meta["gen"] == 1 and 990 <= meta["ttl"] <= 1000
    aero.touch(key, 5000)
    _, meta = aero.exists(key)
    assert meta["gen"] == 2 and 4990 <= meta["ttl"] <= 5000
    aero.remove(key)
    assert aero.exists(key)[1] is None
    with pytest.raises(ex.RecordNotFound):
        aero.remove(key)
    with pytest.raises(ex.RecordNotFound):
        aero.touch(key, 10)


def test_no_ttl_record_reports_never_expire(aero):
    key = (NS, SET, "forever")
    aero.put(key, {"x": 1}, meta={"ttl": aerospike.TTL_NEVER_EXPIRE})
    assert aero.exists(key)[1]["ttl"] == 0xFFFFFFFF


def test_operate_mixed_ops(aero):
    key = (NS, SET, "counter")
    aero.put(key, {"n": 10, "s": "mid", "f": 1.5, "b": b"mid"})
    _, meta, bins = aero.operate(key, [
        op.increment("n", 5),
        op.increment("f", 0.25),
        op.append("s", "-end"),
        op.prepend("s", "start-"),
        op.append("b", b"!"),
        op.write("new", "value"),
        op.read("n"),
        op.read("s"),
        op.read("f"),
        op.read("b"),
    ])
    assert bins == {"n": 15, "s": "start-mid-end", "f": 1.75, "b": b"mid!"}
    assert meta["gen"] == 2
    assert aero.get(key)[2]["new"] == "value"
    aero.increment(key, "missing", 3)
    assert aero.get(key)[2]["missing"] == 3
    with pytest.raises(ex.BinIncompatibleType):
        aero.increment(key, "s", 1)
    _, _, bins = aero.operate(key, [op.touch(100), op.read("n")])
    assert bins == {"n": 15}
    aero.operate(key, [op.delete()])
    assert aero.exists(key)[1] is None


def test_remove_bin_and_last_bin_deletes_record(aero):
    key = (NS, SET, "bins")
    aero.put(key, {"a": 1, "b": 2})
    aero.remove_bin(key, ["a"])
    assert aero.get(key)[2] == {"b": 2}
    aero.remove_bin(key, ["b"])
    assert aero.exists(key)[1] is None


def test_exists_policies_and_generation(aero):
    key = (NS, SET, "policies")
    with pytest.raises(ex.RecordNotFound):
        aero.put(key, {"a": 1}, policy={"exists": aerospike.POLICY_EXISTS_UPDATE})
    with pytest.raises(ex.RecordNotFound):
        aero.put(key, {"a": 1}, policy={"exists": aerospike.POLICY_EXISTS_REPLACE})  # the client's REPLACE_ONLY
    aero.put(key, {"a": 1, "b": 2}, policy={"exists": aerospike.POLICY_EXISTS_CREATE})
    with pytest.raises(ex.RecordExistsError):
        aero.put(key, {"a": 1}, policy={"exists": aerospike.POLICY_EXISTS_CREATE})
    aero.put(key, {"c": 3}, policy={"exists": aerospike.POLICY_EXISTS_CREATE_OR_REPLACE})
    assert aero.get(key)[2] == {"c": 3}
    aero.put(key, {"d": 4}, policy={"exists": aerospike.POLICY_EXISTS_UPDATE})
    _, meta, bins = aero.get(key)
    assert bins == {"c": 3, "d": 4} and meta["gen"] == 3
    with pytest.raises(ex.RecordGenerationError):
        aero.put(key, {"e": 5}, meta={"gen": 1}, policy={"gen": aerospike.POLICY_GEN_EQ})
    aero.put(key, {"e": 5}, meta={"gen": 3}, policy={"gen": aerospike.POLICY_GEN_EQ})
    with pytest.raises(ex.RecordGenerationError):
        aero.put(key, {"e": 6}, meta={"gen": 4}, policy={"gen": aerospike.POLICY_GEN_GT})
    aero.put(key, {"e": 6}, meta={"gen": 9}, policy={"gen": aerospike.POLICY_GEN_GT})
    assert aero.get(key)[1]["gen"] == 5


def test_batch_read(aero):
    keys = [(NS, SET, i) for i in range(50)]
    for i, key in enumerate(keys[:40]):
        aero.put(key, {"i": i, "sq": i * i})
    records = aero.batch_read(keys).batch_records
    assert len(records) == 50
    for i, rec in enumerate(records):
        assert rec.key[:3] == keys[i], (i, rec.key)  # answered in request order
        if i < 40:
            assert rec.result == 0, (i, rec.result)
            _key, meta, bins = rec.record
            assert bins == {"i": i, "sq": i * i} and meta["gen"] == 1, (i, rec.record)
        else:  # a missing record: NOT_FOUND (2) and no record at all
            assert (rec.result, rec.record) == (2, None), (i, rec.result, rec.record)
    only_i = aero.batch_read(keys[:5], ["i"]).batch_records
    assert [(r.result, r.record[2]) for r in only_i] == [(0, {"i": i}) for i in range(5)]


def test_scan_and_query_return_every_record(aero):
    for i in range(300):
        aero.put((NS, "scanned", i), {"i": i}, policy={"key": aerospike.POLICY_KEY_SEND})
    aero.put((NS, "other", 1), {"i": -1})
    got = aero.scan(NS, "scanned").results()
    assert sorted(bins["i"] for _, _, bins in got) == list(range(300))
    assert all(key[2] == bins["i"] for key, _, bins in got)  # user keys were stored and returned
    queried = aero.query(NS, "scanned").results()
    assert len(queried) == 300
    everything = aero.scan(NS, None).results()
    assert len([r for r in everything if r[0][1] in ("scanned", "other")]) == 301


def test_unknown_namespace(aero):
    with pytest.raises(ex.NamespaceNotFound):
        aero.put(("nope", SET, 1), {"a": 1})


def test_info_commands(aero, node):
    assert node.info("namespaces") == "test"
    assert node.info("build").count(".") == 3
    assert node.info("bogus-command").startswith("ERROR:4:")
    stats = dict(kv.split("=", 1) for kv in node.info("namespace/test").split(";"))
    assert stats["stop_writes"] == "false"
    assert node.info("set-config:context=service;migrate-threads=3") == "ok"
    assert "migrate-threads=3" in node.info("get-config:context=service")
    assert node.info("set-config:context=service;migrate-threads=x").startswith("ERROR:4:")
    assert node.info("set-config:context=service;cluster-name=x").startswith("ERROR:4:")
    assert len(aero.get_nodes()) == 1
    assert aero.info_all("build")


def test_compressed_requests_and_login(node):
    client = aerospike.client({"hosts": [node.address], "user": "admin", "password": "admin",
                               "policies": {"write": {"compress": True}, "read": {"compress": True}}}).connect()
    try:
        big = {"text": "x" * 5000}
        client.put((NS, SET, "compressed"), big)
        assert client.get((NS, SET, "compressed"))[2] == big
    finally:
        client.close()
