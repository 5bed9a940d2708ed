"""Our pure-Python client (cluster.client) against a real node process."""

import subprocess
import sys
import textwrap

import aerospike
import pytest

from cluster.client import Client, errors
from cluster.client import operations as op

NS, SET = "test", "demo"

EVERY_TYPE = {
    "int": -(2**63),
    "big": 2**63 - 1,
    "float": 3.25,
    "str": "héllo wörld",
    "blob": b"\x00\x01\xffbytes",
    "bool": True,
    "false": False,
    "list": [1, "two", 3.0, b"four", [5], {"six": 6}, True, None],
    "map": {"a": 1, "b": [1, 2], "c": {"d": "e"}, 7: "seven", b"k": 1.5},
}


@pytest.fixture
def ours(node):
    client = Client({"hosts": [node.address], "policies": {"total_timeout": 5000}}).connect()
    yield client
    client.close()


def test_connects_to_the_node(ours, node):
    assert ours.is_connected() and ours.get_nodes() == [node.address]
    assert ours.info("namespaces") == "test"
    assert ours.info_all("build") == {name: ours.info("build") for name in ours._cluster.nodes}


def test_every_particle_type_round_trips(ours):
    key = (NS, SET, "all-types")
    ours.put(key, EVERY_TYPE)
    rkey, meta, bins = ours.get(key)
    assert bins == EVERY_TYPE and meta == {"gen": 1, "ttl": 0xFFFFFFFF}
    assert rkey[:3] == key and len(rkey[3]) == 20
    ours.put(key, {"int": 5, "str": None})  # None removes a bin
    _, meta, bins = ours.get(key)
    assert meta["gen"] == 2 and bins["int"] == 5 and "str" not in bins


@pytest.mark.parametrize("user_key", [1, -5, "string key", b"blob key", 2.5])
def test_key_types_and_digest_only_keys(ours, user_key):
    ours.put((NS, SET, user_key), {"k": 1}, policy={"key": "send"})
    digest = ours.get((NS, SET, user_key))[0][3]
    assert ours.get((NS, SET, None, digest))[2] == {"k": 1}


def test_select_exists_touch_remove(ours):
    key = (NS, SET, 42)
    assert ours.exists(key)[1] is None
    with pytest.raises(errors.RecordNotFound) as info:
        ours.get(key)
    assert info.value.code == 2
    ours.put(key, {"a": 1, "b": "two", "c": 3.0}, meta={"ttl": 1000})
    assert ours.select(key, ["a", "c"])[2] == {"a": 1, "c": 3.0}
    _, meta = ours.exists(key)
    assert meta["gen"] == 1 and 990 <= meta["ttl"] <= 1000
    ours.touch(key, 5000)
    _, meta = ours.exists(key)
    assert meta["gen"] == 2 and 4990 <= meta["ttl"] <= 5000
    ours.remove(key)
    assert ours.exists(key)[1] is None
    with pytest.raises(errors.RecordNotFound):
        ours.remove(key)


def test_operate_and_conveniences(ours):
    key = (NS, SET, "counter")
    ours.put(key, {"n": 10, "s": "mid", "f": 1.5, "b": b"mid"})
    _, meta, bins = ours.operate(key, [
        op.increment("n", 5), op.increment("f", 0.25), op.append("s", "-end"), op.prepend("s", "start-"),
        op.append("b", b"!"), op.write("new", [1, {"x": "y"}]),
        op.read("n"), op.read("s"), op.read("f"), op.read("b"), op.read("new"),
    ])
    assert bins == {"n": 15, "s": "start-mid-end", "f": 1.75, "b": b"mid!", "new": [1, {"x": "y"}]}
    assert meta["gen"] == 2
    ours.increment(key, "missing", 3)
    ours.append(key, "s", "+")
    ours.prepend(key, "s", "+")
    assert ours.select(key, ["missing", "s"])[2] == {"missing": 3, "s": "+start-mid-end+"}
    assert ours.operate(key, [op.read("n")])[2] == {"n": 15}  # read-only operate
    with pytest.raises(errors.BinIncompatibleType):
        ours.increment(key, "s", 1)
    _, meta, bins = ours.operate(key, [op.touch(100), op.read("n")])
    assert bins == {"n": 15} and 90 <= meta["ttl"] <= 100
    ours.operate(key, [op.delete()])
    assert ours.exists(key)[1] is None


def test_remove_bin_and_last_bin_deletes_record(ours):
    key = (NS, SET, "bins")
    ours.put(key, {"a": 1, "b": 2})
    ours.remove_bin(key, ["a"])
    assert ours.get(key)[2] == {"b": 2}
    ours.remove_bin(key, ["b"])
    assert ours.exists(key)[1] is None


def test_exists_and_generation_policies(ours):
    key = (NS, SET, "policies")
    with pytest.raises(errors.RecordNotFound):
        ours.put(key, {"a": 1}, policy={"exists": "update_only"})
    with pytest.raises(errors.RecordNotFound):
        ours.put(key, {"a": 1}, policy={"exists": "replace_only"})
    ours.put(key, {"a": 1, "b": 2}, policy={"exists": "create_only"})
    with pytest.raises(errors.RecordExists):
        ours.put(key, {"a": 1}, policy={"exists": "create_only"})
    ours.put(key, {"c": 3}, policy={"exists": "replace"})
    assert ours.get(key)[2] == {"c": 3}
    ours.put(key, {"d": 4}, policy={"exists": "update_only"})
    assert ours.get(key)[1]["gen"] == 3
    with pytest.raises(errors.GenerationError):
        ours.put(key, {"e": 5}, meta={"gen": 1}, policy={"gen": "eq"})
    ours.put(key, {"e": 5}, meta={"gen": 3}, policy={"gen": "eq"})
    with pytest.raises(errors.GenerationError):
        ours.remove(key, meta={"gen": 9}, policy={"gen": "eq"})
    ours.put(key, {"e": 6}, meta={"gen": 9}, policy={"gen": "gt"})
    assert ours.get(key)[1]["gen"] == 5


def test_batch_read(ours):
    keys = [(NS, SET, i) for i in range(50)]
    for i, key in enumerate(keys[:40]):
        ours.put(key, {"i": i, "sq": i * i, "t": EVERY_TYPE["list"]})
    records = ours.batch_read(keys)
    assert len(records) == 50
    for i, (key, meta, bins) in enumerate(records):
        assert key[:3] == keys[i]
        if i < 40:
            assert meta["gen"] == 1 and bins == {"i": i, "sq": i * i, "t": EVERY_TYPE["list"]}
        else:
            assert meta is None and bins is None
    assert [r[2] for r in ours.batch_read(keys[:5], ["i"])] == [{"i": i} for i in range(5)]
    assert [(r[1]["gen"], r[2]) for r in ours.batch_read(keys[:2], [])] == [(1, {}), (1, {})]
    assert ours.batch_read([keys[3]])[0][2]["i"] == 3  # one key: sent as a plain read


def test_scan(ours):
    for i in range(300):
        ours.put((NS, "scanned", i), {"i": i, "v": EVERY_TYPE["map"]}, policy={"key": "send"})
    ours.put((NS, "other", 1), {"i": -1})
    got = ours.scan(NS, "scanned").results()
    assert sorted(bins["i"] for _, _, bins in got) == list(range(300))
    assert all(key[2] == bins["i"] and key[1] == "scanned" and bins["v"] == EVERY_TYPE["map"]
               for key, _, bins in got)
    assert all(set(bins) == {"i"} for _, _, bins in ours.scan(NS, "scanned").select("i").results())
    everything = ours.scan(NS).results()
    assert len([r for r in everything if r[0][1] in ("scanned", "other")]) == 301
    seen = []
    ours.scan(NS, "scanned").foreach(lambda rec: seen.append(rec) or len(seen) < 10)
    assert len(seen) == 10
    with pytest.raises(errors.NamespaceNotFound):
        ours.scan("nope").results()


def test_compressed_requests(ours):
    big = {"text": "x" * 5000, "list": list(range(500))}
    ours.put((NS, SET, "compressed"), big, policy={"compress": True})
    assert ours.get((NS, SET, "compressed"), policy={"compress": True})[2] == big
    assert ours.batch_read([(NS, SET, "compressed")] * 2, policy={"compress": True})[1][2] == big


def test_unknown_namespace(ours):
    with pytest.raises(errors.NamespaceNotFound) as info:
        ours.put(("nope", SET, 1), {"a": 1})
    assert info.value.code == 20


def test_interoperates_with_the_official_client(ours, aero):
    ours.put((NS, SET, "ours"), EVERY_TYPE, policy={"key": "send"})
    _, meta, bins = aero.get((NS, SET, "ours"))
    assert bins == EVERY_TYPE and meta["gen"] == 1
    aero.put((NS, SET, "official"), EVERY_TYPE, policy={"key": aerospike.POLICY_KEY_SEND})
    assert ours.get((NS, SET, "official"))[2] == EVERY_TYPE
    scanned = {key[2] for key, _, _ in ours.scan(NS, SET).results()}
    assert {"ours", "official"} <= scanned


def test_works_under_gevent_monkey_patching(node):
    """Locust runs users as greenlets: blocking sockets must become cooperative, tend included."""
    script = textwrap.dedent(f"""
        from gevent import monkey; monkey.patch_all()
        import time
        import gevent
        from cluster.client import Client
        client = Client({{"hosts": [("127.0.0.1", {node.port})], "tend_interval": 50}}).connect()
        cluster = client._cluster
        tends, real_tend = [], cluster.tend
        cluster.tend = lambda: tends.append(1) or real_tend()  # counts background tends from now on
        def user(u):
            i, deadline = 0, time.monotonic() + 20
            # 50 operations each, and on until the tend ran twice while the users were working
            while i < 50 or (len(tends) < 2 and time.monotonic() < deadline):
                client.put(("test", "gevent", u * 100_000 + i), {{"i": i}})
                assert client.get(("test", "gevent", u * 100_000 + i))[2] == {{"i": i}}
                i += 1
        gevent.joinall([gevent.spawn(user, u) for u in range(8)], raise_error=True)
        assert len(tends) >= 2, tends  # tend ran alongside the users, as a greenlet
        node = next(iter(cluster.nodes.values()))
        assert 1 < node._open <= 8, node._open  # the users really ran concurrently, sharing the pool
        client.close()
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr
