"""The storage-engine API, run against both engines."""

import hashlib

import pytest

from cluster.storage.device import DeviceStore
from cluster.storage.engine import N_PARTITIONS, NSUP_PARTITIONS_PER_TICK, OutOfSpace, partition_id
from cluster.storage.memory import MemoryStore
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
    assert store.get(key(1), 99) is not None
    assert store.get(key(1), 100) is None and store.get_meta(key(1), 100) is None
    assert store.partition_digests(partition_id(key(1)), 100) == []
    used = store.stats().used_bytes
    for _ in range(N_PARTITIONS // NSUP_PARTITIONS_PER_TICK):  # one full nsup sweep
        store.tick(100_000)
    assert store.record_count() == 1
    assert store.stats().used_bytes < used
    assert store.get(key(2), 100) == (RecordMeta(1, 0, 0), b"y")


def test_record_meta_validation():
    with pytest.raises(ValueError, match="generation"):
        RecordMeta(0, 0, 0)
    with pytest.raises(ValueError, match="set name"):
        RecordMeta(1, 0, 0, "s" * 64)
    assert RecordMeta(1, 5, 0).expired(5) and not RecordMeta(1, 0, 0).expired(10**9)


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
