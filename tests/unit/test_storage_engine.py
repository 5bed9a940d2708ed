"""The storage-engine API, run against both engines."""

import hashlib

import pytest

from cluster.storage.device import DeviceStore
from cluster.storage.engine import N_PARTITIONS, NSUP_PARTITIONS_PER_TICK, OutOfSpace, partition_id
from cluster.storage.memory import TOMBSTONE_BYTES, MemoryStore
from cluster.storage.record import CITRUSLEAF_EPOCH, RecordMeta, now_cl_ms, now_cl_seconds


def key(i: int) -> bytes:
    return hashlib.sha1(str(i).encode()).digest()


@pytest.fixture(params=["memory", "device"])
def store(request, tmp_path):
    if request.param == "memory":
        engine = MemoryStore(data_size=1 << 20)
    else:
        engine = DeviceStore(str(tmp_path / "dev"), filesize=1 << 20, write_block_size=16 << 10)
    yield engine
    engine.close()


def test_put_get_overwrite_delete(store):
    store.put(key(1), RecordMeta(1, 0, 10, "s"), b"one")
    assert store.get(key(1), 0) == (RecordMeta(1, 0, 10, "s"), b"one")
    store.put(key(1), RecordMeta(2, 0, 11, "s"), b"uno")
    assert store.get(key(1), 0) == (RecordMeta(2, 0, 11, "s"), b"uno")
    assert store.get_meta(key(1), 0) == RecordMeta(2, 0, 11, "s")
    assert store.get(key(2), 0) is None
    assert store.delete(key(1)) is True
    assert store.delete(key(1)) is False
    assert store.get(key(1), 0) is None and store.get_meta(key(1), 0) is None
    assert store.record_count() == 0


def test_partition_index(store):
    for i in range(300):
        store.put(key(i), RecordMeta(1, 0, i), b"v")
    pid = partition_id(key(7))
    assert pid == (key(7)[0] | key(7)[1] << 8) & 0xFFF
    mine = sorted(key(i) for i in range(300) if partition_id(key(i)) == pid)
    assert store.partition_digests(pid, 0) == mine
    assert store.partition_count(pid) == len(mine)
    assert sum(store.partition_count(p) for p in range(N_PARTITIONS)) == store.record_count() == 300


def test_spec_partition_ids():
    # Test vectors from the internals spec, section 5.
    assert partition_id(bytes.fromhex("82d7213b469812947c109a6d341e3b5b1dedec1f")) == 1922
    assert partition_id(bytes.fromhex("22116d253745e29fc63fdf760b6e26f7e197e01d")) == 290


def test_expired_records_are_invisible_then_reclaimed(store):
    store.put(key(1), RecordMeta(1, 100, 0), b"x" * 100)
    store.put(key(2), RecordMeta(1, 0, 0), b"y")
    assert store.get(key(1), 100) is not None  # alive through its void-time second, as on the server
    store.tick(100_999)
    assert store.record_count() == 2
    assert store.get(key(1), 101) is None and store.get_meta(key(1), 101) is None
    assert store.partition_digests(partition_id(key(1)), 101) == []
    used = store.stats().used_bytes
    for _ in range(N_PARTITIONS // NSUP_PARTITIONS_PER_TICK):  # one full nsup sweep
        store.tick(101_000)
    assert store.record_count() == 1
    assert store.stats().used_bytes < used
    assert store.get(key(2), 100) == (RecordMeta(1, 0, 0), b"y")


def test_record_meta_validation():
    with pytest.raises(ValueError, match="generation"):
        RecordMeta(0, 0, 0)
    with pytest.raises(ValueError, match="set name"):
        RecordMeta(1, 0, 0, "s" * 64)
    assert RecordMeta(1, 5, 0).expired(6) and not RecordMeta(1, 5, 0).expired(5) and not RecordMeta(1, 0, 0).expired(10**9)


def test_clock_helpers_use_the_citrusleaf_epoch():
    assert CITRUSLEAF_EPOCH == 1262304000
    assert abs(now_cl_ms() // 1000 - now_cl_seconds()) <= 1


def test_memory_budget():
    store = MemoryStore(data_size=1000)
    store.put(key(1), RecordMeta(1, 0, 0), b"x" * 600)
    with pytest.raises(OutOfSpace):
        store.put(key(2), RecordMeta(1, 0, 0), b"x" * 600)
    store.put(key(1), RecordMeta(2, 0, 0), b"x" * 900)  # replacing frees the old bytes first
    assert store.stats().used_bytes == 900
    store.delete(key(1))
    assert store.stats().avail_pct == 100


# -- durable deletes (bury) -----------------------------------------------------------------


def same_partition_keys(n: int) -> list[bytes]:
    """n digests of one partition (the partition of key(0))."""
    pid = partition_id(key(0))
    found = [key(i) for i in range(200_000) if partition_id(key(i)) == pid]
    assert len(found) >= n
    return found[:n]


def test_bury_over_a_record_hides_it(store):
    d, other = same_partition_keys(2)
    pid = partition_id(d)
    store.put(d, RecordMeta(1, 0, 10, "s"), b"doomed")
    store.put(other, RecordMeta(1, 0, 11, "s"), b"alive")
    store.bury(d, RecordMeta(2, 0, 20, "s"))
    assert store.get(d, 0) is None and store.get_meta(d, 0) is None
    assert store.partition_digests(pid, 0) == [other]
    assert store.partition_count(pid) == 1 and store.record_count() == 1
    st = store.stats()
    assert st.objects == 1 and st.tombstones == 1
    assert store.lookup(d) == (RecordMeta(2, 0, 20, "s"), True)
    assert store.lookup(other) == (RecordMeta(1, 0, 11, "s"), False)
    assert store.partition_entries(pid, 0) == sorted([(d, RecordMeta(2, 0, 20, "s"), True),
                                                      (other, RecordMeta(1, 0, 11, "s"), False)])
    # delete() is the non-durable delete of a record: a durable tombstone is no record
    assert store.delete(d) is False
    assert store.lookup(d) == (RecordMeta(2, 0, 20, "s"), True) and store.stats().tombstones == 1


def test_bury_without_a_record_and_over_a_tombstone(store):
    store.bury(key(1), RecordMeta(5, 0, 50))
    assert store.lookup(key(1)) == (RecordMeta(5, 0, 50), True)
    assert store.get(key(1), 0) is None and store.record_count() == 0
    store.bury(key(1), RecordMeta(6, 0, 60, "t"))  # replaces the tombstone
    assert store.lookup(key(1)) == (RecordMeta(6, 0, 60, "t"), True)
    assert store.stats().tombstones == 1
    store.bury(key(2), RecordMeta(1, 1234, 70))  # a tombstone never expires: void_time is dropped
    assert store.lookup(key(2)) == (RecordMeta(1, 0, 70), True)
    assert store.lookup(key(3)) is None
    with pytest.raises(ValueError):
        store.bury(b"short", RecordMeta(1, 0, 0))


def test_put_after_bury_revives(store):
    store.put(key(1), RecordMeta(1, 0, 10), b"first")
    store.bury(key(1), RecordMeta(2, 0, 20))
    store.put(key(1), RecordMeta(3, 0, 30), b"again")
    assert store.get(key(1), 0) == (RecordMeta(3, 0, 30), b"again")
    assert store.lookup(key(1)) == (RecordMeta(3, 0, 30), False)
    st = store.stats()
    assert st.objects == 1 and st.tombstones == 0
    assert store.partition_entries(partition_id(key(1)), 0) == [(key(1), RecordMeta(3, 0, 30), False)]
    assert store.delete(key(1)) is True and store.lookup(key(1)) is None


def test_partition_entries_and_lookup_with_expiry(store):
    a, b, c, d = same_partition_keys(4)
    pid = partition_id(a)
    store.put(a, RecordMeta(1, 100, 1), b"expires")
    store.put(b, RecordMeta(1, 0, 2), b"forever")
    store.bury(c, RecordMeta(3, 0, 3))
    store.put(d, RecordMeta(1, 0, 4), b"x")
    store.bury(d, RecordMeta(2, 0, 5))
    want = [(a, RecordMeta(1, 100, 1), False), (b, RecordMeta(1, 0, 2), False),
            (c, RecordMeta(3, 0, 3), True), (d, RecordMeta(2, 0, 5), True)]
    assert store.partition_entries(pid, 100) == sorted(want)
    assert store.partition_entries(pid, 101) == sorted(want[1:])  # expired records are left out
    assert store.lookup(a) == (RecordMeta(1, 100, 1), False)  # lookup ignores expiry
    assert store.partition_entries(pid ^ 1, 100) == []
    # nsup removes the expired record but no tombstone
    for _ in range(N_PARTITIONS // NSUP_PARTITIONS_PER_TICK):
        store.tick(10**9)
    assert store.lookup(a) is None
    assert store.partition_entries(pid, 10**6) == sorted(want[1:])
    assert store.stats().tombstones == 2


def test_drop_partition_forgets_everything_and_frees_space(store):
    mine = same_partition_keys(6)
    pid = partition_id(mine[0])
    others = [key(i) for i in range(1000, 1040) if partition_id(key(i)) != pid]
    for i, d in enumerate(others):
        store.put(d, RecordMeta(1, 0, i), b"o" * 50)
    store.bury(others[0], RecordMeta(2, 0, 0))
    before = store.stats()
    for i, d in enumerate(mine):
        store.put(d, RecordMeta(1, 0, i), b"m" * 100)
    store.bury(mine[0], RecordMeta(2, 0, 0))  # over a record
    store.bury(mine[5], RecordMeta(2, 0, 0))
    store.delete(mine[4])  # a plain delete (on the device: an internal tombstone)
    store.put(mine[3], RecordMeta(2, 0, 0), b"m" * 100)  # superseded versions
    store.put(mine[3], RecordMeta(3, 0, 0), b"m" * 100)
    assert store.stats().used_bytes > before.used_bytes
    assert store.drop_partition(pid) == 5  # 3 records and 2 durable tombstones; the deleted one is gone
    assert store.partition_entries(pid, 0) == [] and store.partition_digests(pid, 0) == []
    assert all(store.lookup(d) is None and store.get(d, 0) is None for d in mine)
    assert store.partition_count(pid) == 0
    after = store.stats()
    assert after.used_bytes == before.used_bytes
    assert (after.objects, after.tombstones) == (before.objects, before.tombstones) == (len(others) - 1, 1)
    assert all(store.lookup(d) is not None for d in others)
    assert store.drop_partition(pid) == 0
    # the partition can be filled again (e.g. migrated back)
    store.put(mine[0], RecordMeta(9, 0, 0), b"back")
    store.bury(mine[1], RecordMeta(9, 0, 0))
    assert store.partition_entries(pid, 0) == sorted([(mine[0], RecordMeta(9, 0, 0), False),
                                                      (mine[1], RecordMeta(9, 0, 0), True)])
    if isinstance(store, DeviceStore):
        assert store.verify() == []


def test_bury_is_accepted_when_puts_are_refused(store):
    written = 0
    with pytest.raises(OutOfSpace):
        while True:
            store.put(key(written), RecordMeta(1, 0, 0), b"q" * 1000)
            written += 1
    for i in range(written):  # replica deletes keep flowing under stop-writes
        store.bury(key(i), RecordMeta(2, 0, 0))
        if i % 50 == 0:
            store.tick(0)
    st = store.stats()
    assert st.objects == 0 and st.tombstones == written
    if isinstance(store, DeviceStore):
        assert store.verify() == []


def test_memory_tombstones_cost_a_fixed_size():
    store = MemoryStore(data_size=1000)
    store.put(key(1), RecordMeta(1, 0, 0, "set"), b"x" * 500)
    store.bury(key(1), RecordMeta(2, 0, 0, "set"))
    assert store.stats().used_bytes == TOMBSTONE_BYTES
    store.put(key(1), RecordMeta(3, 0, 0), b"y" * 900)
    assert store.stats().used_bytes == 900
    store.put(key(2), RecordMeta(1, 0, 0), b"z" * (101 - TOMBSTONE_BYTES))  # one byte too many
    with pytest.raises(OutOfSpace):  # even a tombstone does not fit
        store.bury(key(3), RecordMeta(1, 0, 0))
    assert store.lookup(key(3)) is None
    store.bury(key(1), RecordMeta(4, 0, 0))  # over a record: frees its bytes first
    assert store.stats().used_bytes == 101 and store.stats().tombstones == 1
    assert store.drop_partition(partition_id(key(1))) >= 1
    assert store.lookup(key(1)) is None


def test_truncate_drops_what_was_updated_before_the_cutoffs_and_refuses_older_copies(store):
    store.put(key(1), RecordMeta(1, 0, 100, "a"), b"old")
    store.put(key(2), RecordMeta(1, 0, 200, "a"), b"new")
    store.put(key(3), RecordMeta(1, 0, 100, "b"), b"other set")
    store.bury(key(4), RecordMeta(2, 0, 150, "a"))
    assert store.truncate(0, {"a": 200}) == 2  # key 1 and the tombstone: updated before 200
    assert store.get(key(1), 0) is None and store.lookup(key(4)) is None
    assert store.get(key(2), 0) is not None and store.get(key(3), 0) is not None
    store.put(key(1), RecordMeta(1, 0, 199, "a"), b"a stale copy")  # a migration or replica write
    store.bury(key(5), RecordMeta(1, 0, 199, "a"))
    assert store.lookup(key(1)) is None and store.lookup(key(5)) is None
    assert store.truncate(300, {}) == 2 and store.record_count() == 0
    assert store.set_counts() == {}
