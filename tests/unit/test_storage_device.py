"""DeviceStore specifics: cold start, tombstones, torn writes, defrag, space, durability."""

import hashlib
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from cluster.storage import layout
from cluster.storage.device import DeviceStore
from cluster.storage.engine import (
    N_PARTITIONS,
    NSUP_PARTITIONS_PER_TICK,
    CorruptRecord,
    OutOfSpace,
    RecordTooBig,
)
from cluster.storage.record import RecordMeta

WBS = 4096
N_BLOCKS = 32
FILESIZE = layout.FILE_HEADER_SIZE + N_BLOCKS * WBS


def key(i: int) -> bytes:
    return hashlib.sha1(str(i).encode()).digest()


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "device.dat")


def open_store(path, **kw) -> DeviceStore:
    kw.setdefault("filesize", FILESIZE)
    kw.setdefault("write_block_size", WBS)
    return DeviceStore(path, **kw)


def reopen(store: DeviceStore, **kw) -> DeviceStore:
    store.close()
    return open_store(store.path, **kw)


def settle(store: DeviceStore, now_ms: int = 0) -> None:
    """Tick through a full nsup sweep and until defrag has nothing left to do."""
    for _ in range(N_PARTITIONS // NSUP_PARTITIONS_PER_TICK):
        store.tick(now_ms)
    for _ in range(1000):
        store.tick(now_ms)
        if not store.stats().defrag_queue:
            return
    raise AssertionError("defrag did not settle")


def test_argument_validation(path):
    with pytest.raises(ValueError, match="power of 2"):
        open_store(path, write_block_size=3000)
    with pytest.raises(ValueError, match="too small"):
        open_store(path, filesize=layout.FILE_HEADER_SIZE + 3 * WBS)
    with pytest.raises(ValueError, match="defrag_lwm_pct"):
        open_store(path, defrag_lwm_pct=0)
    with pytest.raises(ValueError, match="defrag_reserve_wblocks"):
        open_store(path, defrag_reserve_wblocks=1)
    open_store(path).close()
    with pytest.raises(ValueError, match="write-block-size 4096"):
        open_store(path, write_block_size=2 * WBS)
    with pytest.raises(ValueError, match="shrink"):
        open_store(path, filesize=FILESIZE - WBS)
    with open(path, "r+b") as f:
        f.write(b"garbage!")
    with pytest.raises(ValueError, match="not a refcluster device file"):
        open_store(path)


def test_record_too_big(path):
    store = open_store(path)
    with pytest.raises(RecordTooBig):
        store.put(key(1), RecordMeta(1, 0, 0), b"x" * WBS)
    store.put(key(1), RecordMeta(1, 0, 0), b"x" * (WBS - 100))  # header + entry fit
    assert store.get(key(1), 0)[1] == b"x" * (WBS - 100)


def test_cold_start_restores_newest_versions(path):
    store = open_store(path)
    for gen in range(1, 4):
        for i in range(100):
            store.put(key(i), RecordMeta(gen, 0, 1000 * gen + i, "set"), f"{i}@{gen}".encode())
    store = reopen(store)
    for i in range(100):
        assert store.get(key(i), 0) == (RecordMeta(3, 0, 3000 + i, "set"), f"{i}@3".encode())
    assert store.record_count() == 100
    assert store.verify() == []
    # Writing after a restart continues the sequence: the new versions win the next time.
    store.put(key(0), RecordMeta(4, 0, 0), b"newest")
    store = reopen(store)
    assert store.get(key(0), 0)[1] == b"newest"
    store.close()


def test_growing_the_file_keeps_records(path):
    store = open_store(path)
    store.put(key(1), RecordMeta(1, 0, 0), b"kept")
    store = reopen(store, filesize=FILESIZE + 8 * WBS)
    assert store.get(key(1), 0)[1] == b"kept"
    assert store.stats().free_wblocks == N_BLOCKS + 8 - 1
    store.close()


def test_deletes_stay_deleted_across_restart_and_defrag(path):
    store = open_store(path)
    for i in range(60):
        store.put(key(i), RecordMeta(1, 0, 0), b"v" * 100)
    for i in range(0, 60, 2):
        assert store.delete(key(i))
    store = reopen(store)
    assert all(store.get(key(i), 0) is None for i in range(0, 60, 2))
    assert store.stats().tombstones == 30
    # Churn the survivors so every old wblock is defragged: records and tombstones move.
    for rnd in range(2, 8):
        for i in range(1, 60, 2):
            store.put(key(i), RecordMeta(rnd, 0, 0), b"w" * 100)
        settle(store)
    assert store.stats().defrag_reads > 0
    store = reopen(store)
    assert all(store.get(key(i), 0) is None for i in range(0, 60, 2))
    assert all(store.get_meta(key(i), 0).generation == 7 for i in range(1, 60, 2))
    # With the deleted records' old copies gone, their tombstones were reclaimed too.
    assert store.stats().tombstones == 0
    assert store.verify() == []
    store.close()


def test_tombstone_lives_exactly_as_long_as_an_older_copy(path):
    store = open_store(path, defrag_lwm_pct=50)
    big = b"f" * 1800
    store.put(key(0), RecordMeta(1, 0, 0), b"doomed")
    store.put(key(1), RecordMeta(1, 0, 0), big)  # filler keeps wblock 0 live
    store.put(key(2), RecordMeta(1, 0, 0), big)  # rolls over to wblock 1
    store.delete(key(0))
    settle(store)
    assert store.stats().tombstones == 1  # "doomed" is still in wblock 0
    store = reopen(store)
    assert store.get(key(0), 0) is None and store.stats().tombstones == 1
    store.put(key(1), RecordMeta(2, 0, 0), big)  # wblock 0 drops below the lwm
    store.put(key(3), RecordMeta(1, 0, 0), big)  # and the open wblock closes
    settle(store)
    assert store.stats().tombstones == 0
    store = reopen(store)
    assert store.get(key(0), 0) is None
    assert store.verify() == []
    store.close()


def _find(path: str, needle: bytes) -> int:
    """Offset of the first occurrence of `needle` in the file, -1 if none."""
    with open(path, "rb") as f:
        return f.read().find(needle)


def test_garbled_tail_entry_is_skipped(path):
    store = open_store(path)
    store.put(key(1), RecordMeta(1, 0, 0), b"first version")
    store.put(key(2), RecordMeta(1, 0, 0), b"other")
    store.put(key(1), RecordMeta(2, 0, 0), b"LATEST-VERSION")
    store.close()
    pos = _find(path, b"LATEST-VERSION")
    with open(path, "r+b") as f:
        f.seek(pos + 3)
        f.write(b"\xff\x00")
    store = open_store(path)
    assert store.get(key(1), 0) == (RecordMeta(1, 0, 0), b"first version")
    assert store.get(key(2), 0)[1] == b"other"
    assert store.verify() == []
    store.close()


def test_truncated_tail_is_skipped(path):
    store = open_store(path)
    store.put(key(1), RecordMeta(1, 0, 0), b"complete")
    store.put(key(2), RecordMeta(1, 0, 0), b"cut-short-" * 20)
    store.close()
    os.truncate(path, _find(path, b"cut-short-") + 50)  # the write never finished
    store = open_store(path)
    assert store.get(key(1), 0)[1] == b"complete"
    assert store.get(key(2), 0) is None
    store.put(key(3), RecordMeta(1, 0, 0), b"after")
    store = reopen(store)
    assert store.get(key(3), 0)[1] == b"after" and store.record_count() == 2
    store.close()


def test_corruption_under_a_live_record_is_reported_on_read(path):
    store = open_store(path)
    store.put(key(1), RecordMeta(1, 0, 0), b"ROTTING-PAYLOAD")
    store.put(key(2), RecordMeta(1, 0, 0), b"x" * (WBS - 100))  # closes the first wblock
    with open(path, "r+b") as f:
        f.seek(_find(path, b"ROTTING-PAYLOAD"))
        f.write(b"!")
    with pytest.raises(CorruptRecord):
        store.get(key(1), 0)
    assert store.get_meta(key(1), 0) == RecordMeta(1, 0, 0)  # the index alone is intact
    store.close()


def test_post_write_cache_serves_recent_wblocks_from_memory(path):
    store = open_store(path, post_write_cache=2 * WBS)
    fill = b"x" * (WBS - 100)  # one record per wblock
    for i in range(4):
        store.put(key(i), RecordMeta(1, 0, 0), fill + bytes([i]))
    # key(3) is in the open buffer, key(2) and key(1) in the cache, key(0) pushed out of it
    with open(path, "r+b") as f:  # rot the file under a cached record: memory is what is read
        f.seek(_find(path, fill + bytes([2])))
        f.write(b"!")
    for i in (3, 2, 1):
        assert store.get(key(i), 0)[1] == fill + bytes([i])
    assert (store.cache_reads, store.device_reads) == (3, 0)
    assert store.get(key(0), 0)[1] == fill + bytes([0])
    assert (store.cache_reads, store.device_reads) == (3, 1)
    store.close()


def test_defrag_takes_a_cached_wblock_from_memory_and_drops_it_from_the_cache(path):
    store = open_store(path, post_write_cache=4 * WBS, defrag_lwm_pct=90)
    store.put(key(1), RecordMeta(1, 0, 0), b"keep")
    store.put(key(2), RecordMeta(1, 0, 0), b"d" * (WBS - 200))
    store.put(key(3), RecordMeta(1, 0, 0), b"n" * (WBS - 200))  # closes the first wblock
    store.delete(key(2))  # the first wblock falls under the lwm: queued for defrag
    with open(path, "r+b") as f:  # the file's copy would not verify: defrag must use memory
        f.seek(_find(path, b"keep"))
        f.write(b"!")
    settle(store)
    assert store.stats().defrag_reads >= 1
    assert store.get(key(1), 0)[1] == b"keep"  # moved by defrag, readable from its new place
    store = reopen(store)
    assert store.get(key(1), 0)[1] == b"keep" and store.verify() == []
    store.close()


def test_expired_records_space_is_reclaimed(path):
    store = open_store(path)
    for i in range(200):
        store.put(key(i), RecordMeta(1, 50, 0), b"e" * 200)
    store.put(key(999), RecordMeta(1, 0, 0), b"forever")
    before = store.stats()
    assert before.free_wblocks < N_BLOCKS - 10
    settle(store, 51_000)  # void-time 50 is alive through second 50
    after = store.stats()
    assert after.objects == 1 and after.used_bytes < 200
    assert after.free_wblocks >= N_BLOCKS - 2
    store = reopen(store, now_s=51)
    assert store.record_count() == 1 and store.verify() == []
    store.close()


def test_expired_records_dropped_at_cold_start(path):
    store = open_store(path)
    store.put(key(1), RecordMeta(1, 50, 0), b"short-lived")
    store.put(key(2), RecordMeta(1, 0, 0), b"forever")
    store.close()
    store = open_store(path, now_s=60)
    assert store.record_count() == 1 and store.get(key(2), 60)[1] == b"forever"
    store.put(key(1), RecordMeta(1, 0, 0), b"reborn")
    store.delete(key(1))
    store = reopen(store, now_s=60)
    assert store.get(key(1), 60) is None and store.verify() == []
    store.close()


def test_defrag_frees_wblocks_and_accounting_follows(path):
    store = open_store(path)
    size = layout.entry_size(b"", 300)
    for i in range(120):
        store.put(key(i), RecordMeta(1, 0, 0), b"a" * 300)
    full = store.stats()
    assert full.used_bytes == 120 * size
    for i in range(100):  # most records of the early wblocks die
        store.delete(key(i))
    assert store.stats().defrag_queue > 0
    settle(store)
    st = store.stats()
    assert st.defrag_reads > 0 and st.free_wblocks > full.free_wblocks
    assert st.avail_pct == pytest.approx(st.free_wblocks * WBS * 100 / FILESIZE)
    assert st.used_pct == pytest.approx(st.used_bytes * 100 / FILESIZE)
    assert st.objects == 20 and st.used_bytes >= 20 * size
    assert all(store.get(key(i), 0)[1] == b"a" * 300 for i in range(100, 120))
    assert store.verify() == []
    store.close()


def test_fill_until_out_of_space_then_recover(path):
    store = open_store(path, defrag_reserve_wblocks=3)
    written = 0
    with pytest.raises(OutOfSpace):
        while True:
            store.put(key(written), RecordMeta(1, 0, 0), b"z" * 500)
            written += 1
    st = store.stats()
    assert st.free_wblocks == 3 and st.avail_pct < 10
    for i in range(written):  # deletes may use the reserve; the node ticks meanwhile
        assert store.delete(key(i))
        if i % 20 == 0:
            store.tick(0)
    settle(store)
    assert store.stats().free_wblocks > N_BLOCKS - 4
    for i in range(written // 2):
        store.put(key(i), RecordMeta(2, 0, 0), b"z" * 500)
    assert store.verify() == []
    store.close()


def test_deletes_never_jam_a_full_device(path):
    # Puts stop with two wblocks free; the deletes' tombstones may take only one of them,
    # every wblock is above the lwm and no tick comes in between to defrag anything.
    store = open_store(path, defrag_reserve_wblocks=2)
    written = 0
    with pytest.raises(OutOfSpace):
        while True:
            store.put(key(written), RecordMeta(1, 0, 0), b"j" * 300)
            written += 1
    for i in sorted(range(written), key=lambda i: (i % 7, i)):  # spread over all wblocks
        assert store.delete(key(i))
    assert store.record_count() == 0 and store.stats().defrag_reads > 0  # compacted on demand
    store = reopen(store)
    assert store.record_count() == 0 and store.verify() == []
    store.close()


def test_buffered_writes_flush_after_flush_max_ms(path):
    store = open_store(path, flush_max_ms=100)
    store.put(key(1), RecordMeta(1, 0, 0), b"buffered")
    assert _find(path, b"buffered") == -1
    store.tick(1000)
    store.tick(1050)
    assert _find(path, b"buffered") == -1
    store.tick(1100)
    assert _find(path, b"buffered") > 0
    store.close()


CHILD = textwrap.dedent("""
    import hashlib, sys
    from cluster.storage.device import DeviceStore
    from cluster.storage.record import RecordMeta

    def key(k):
        return hashlib.sha1(str(k).encode()).digest()

    store = DeviceStore(sys.argv[1], filesize=int(sys.argv[2]), write_block_size=4096, flush_max_ms=10_000)
    gens = {}
    for k in range(40):
        meta = store.get_meta(key(k), 0)
        gens[k] = meta.generation if meta else 0
    i = 0
    while True:
        k = i % 40
        if i % 7 == 3:
            store.delete(key(k))
            gens[k] = 0
        else:
            gens[k] += 1
            store.put(key(k), RecordMeta(gens[k], 0, i), bytes([k]) * (50 + i % 300))
        store.commit()  # commit-to-device: durable before it is acknowledged
        print(k, gens[k], flush=True)
        if i % 10 == 0:
            store.tick(i)  # defrag under commit-to-device too
        i += 1
""")


@pytest.mark.parametrize("kill_after", [300, 1700])
def test_commit_to_device_survives_sigkill(path, kill_after):
    state: dict[int, int] = {}  # key -> generation the child reported after its op (0 = deleted)
    for rnd in range(2):
        child = subprocess.Popen([sys.executable, "-c", CHILD, path, str(FILESIZE)], stdout=subprocess.PIPE,
                                 env={**os.environ, "PYTHONPATH": os.getcwd()})
        reported = 0
        while reported < kill_after + rnd * 211:
            line = child.stdout.readline()
            assert line, "child died early"
            k, gen = map(int, line.split())
            state[k] = gen
            reported += 1
        os.kill(child.pid, signal.SIGKILL)
        for line in child.stdout.read().splitlines(keepends=True):
            if line.endswith(b"\n"):  # a line cut short was not reported
                k, gen = map(int, line.split())
                state[k] = gen
                reported += 1
        child.wait(10)
        child.stdout.close()
        # Op number `reported` was in flight: it may or may not have landed.
        in_flight = reported % 40
        landed = 0 if reported % 7 == 3 else state.get(in_flight, 0) + 1
        store = open_store(path)
        for k in range(40):
            meta = store.get_meta(key(k), 0)
            found = meta.generation if meta else 0
            allowed = {state.get(k, 0), landed} if k == in_flight else {state.get(k, 0)}
            assert found in allowed, (k, state.get(k), found)
            state[k] = found
        assert store.verify() == []
        store.close()


# -- durable tombstones ---------------------------------------------------------------------


def test_durable_tombstone_entry_layout():
    buf = bytearray(256)
    meta = RecordMeta(7, 0, 99, "set")
    size = layout.write_entry(buf, 0, 1234, 5, key(1), meta, b"set", b"", tombstone=True, durable=True)
    assert buf[38] == layout.FLAG_TOMBSTONE | layout.FLAG_DURABLE == 0x03  # the flags byte
    e = layout.parse_entry(memoryview(buf), 0, 1234)
    assert (e.size, e.meta, e.tombstone, e.durable, e.lasting) == (size, meta, True, True, True)
    layout.write_entry(buf, 0, 1234, 5, key(1), meta, b"set", b"", tombstone=True)
    e = layout.parse_entry(memoryview(buf), 0, 1234)
    assert (e.tombstone, e.durable, e.lasting) == (True, False, False)
    with pytest.raises(ValueError):
        layout.write_entry(buf, 0, 1234, 5, key(1), meta, b"set", b"data", tombstone=False, durable=True)


def test_durable_tombstone_survives_cold_start_and_stays_hidden(path):
    store = open_store(path)
    store.put(key(1), RecordMeta(1, 0, 10, "s"), b"buried alive")
    store.bury(key(1), RecordMeta(2, 0, 20, "s"))
    store.bury(key(2), RecordMeta(1, 0, 30))  # nothing to hide: an internal one would not last
    store.put(key(3), RecordMeta(1, 0, 0), b"kept")
    store = reopen(store, now_s=10**6)
    assert store.get(key(1), 0) is None and store.get_meta(key(1), 0) is None
    assert store.lookup(key(1)) == (RecordMeta(2, 0, 20, "s"), True)
    assert store.lookup(key(2)) == (RecordMeta(1, 0, 30), True)
    assert store.record_count() == 1 and store.stats().tombstones == 2
    assert store.verify() == []
    store.put(key(1), RecordMeta(3, 0, 40, "s"), b"revived")
    store = reopen(store)
    assert store.get(key(1), 0) == (RecordMeta(3, 0, 40, "s"), b"revived")
    assert store.stats().tombstones == 1 and store.verify() == []
    store.close()


def test_durable_tombstones_outlive_every_older_copy(path):
    # Unlike test_deletes_stay_deleted_across_restart_and_defrag: the garbage collection of
    # internal tombstones must not touch durable ones, and defrag moves them like records.
    store = open_store(path)
    for i in range(60):
        store.put(key(i), RecordMeta(1, 0, 0), b"v" * 100)
    for i in range(0, 60, 2):
        store.bury(key(i), RecordMeta(2, 0, i))
    where = {i: store._current(key(i)).block for i in range(0, 60, 2)}
    for rnd in range(2, 8):
        for i in range(1, 60, 2):
            store.put(key(i), RecordMeta(rnd, 0, 0), b"w" * 100)
        settle(store)
    assert store.stats().defrag_reads > 0
    moved = sum(store._current(key(i)).block != block for i, block in where.items())
    assert moved > 0  # defrag relocated tombstones
    assert store.verify() == []
    store = reopen(store)
    assert store.stats().tombstones == 30 and store.record_count() == 30
    assert all(store.lookup(key(i)) == (RecordMeta(2, 0, i), True) for i in range(0, 60, 2))
    assert all(store.get(key(i), 0) is None for i in range(0, 60, 2))
    assert store.verify() == []
    store.close()


def test_a_stale_durable_tombstone_does_not_come_back(path):
    # bury, put, delete: the internal tombstone must outlive the durable one it superseded,
    # or a cold start would find the durable tombstone as the newest entry of its digest.
    store = open_store(path, defrag_lwm_pct=40)
    big = b"f" * 1950  # two do not fit one wblock
    store.bury(key(0), RecordMeta(1, 0, 0))  # wblock 0, kept above the lwm by the filler
    store.put(key(1), RecordMeta(1, 0, 0), big)
    store.put(key(2), RecordMeta(1, 0, 0), big)  # wblock 1
    store.put(key(0), RecordMeta(2, 0, 0), b"revived")
    store.delete(key(0))
    assert store._current(key(0)).block == 1 and store._current(key(1)).block == 0
    for i in range(3, 12):  # churn: wblock 1 onwards get defragged, wblock 0 stays
        store.put(key(i), RecordMeta(1, 0, 0), big)
        store.put(key(2), RecordMeta(i, 0, 0), big)
        settle(store)
    assert store.lookup(key(0)) is None
    assert store.stats().tombstones == 1  # the internal one, hiding the stale durable one
    assert store.verify() == []
    store = reopen(store)
    assert store.lookup(key(0)) is None and store.verify() == []
    # once wblock 0 goes, nothing is left to hide
    store.put(key(1), RecordMeta(2, 0, 0), big)
    store.put(key(20), RecordMeta(1, 0, 0), big)
    settle(store)
    assert store.stats().tombstones == 0
    store = reopen(store)
    assert store.lookup(key(0)) is None and store.verify() == []
    store.close()


def test_drop_partition_writes_nothing_and_keeps_the_accounting_exact(path):
    from cluster.storage.engine import partition_id

    store = open_store(path)
    for i in range(200):
        store.put(key(i), RecordMeta(1, 0, i), b"d" * 200)
    for i in range(0, 200, 3):
        store.bury(key(i), RecordMeta(2, 0, i))
    for i in range(1, 200, 3):
        store.delete(key(i))
    pids = {partition_id(key(i)) for i in range(0, 200, 2)}
    store.flush()
    with open(path, "rb") as f:
        image = f.read()
    used = store.stats().used_bytes
    dropped = sum(store.drop_partition(pid) for pid in pids)
    gone = [i for i in range(200) if partition_id(key(i)) in pids]
    assert dropped == sum(i % 3 != 1 for i in gone)
    assert store.stats().used_bytes < used
    store.flush()
    with open(path, "rb") as f:
        assert f.read() == image  # nothing written
    assert store.verify() == []
    # A cold start now may bring dropped entries back; the accounting stays exact.
    store = reopen(store)
    assert store.verify() == []
    assert any(store.lookup(key(i)) is not None for i in gone)
    for pid in pids:
        store.drop_partition(pid)
    # Writing to a dropped digest again, then letting defrag reclaim everything dropped.
    for i in gone[:10]:
        store.put(key(i), RecordMeta(5, 0, 0), b"new")
    for rnd in range(2, 6):
        for i in range(200):
            if partition_id(key(i)) not in pids and i % 3 == 2:
                store.put(key(i), RecordMeta(rnd, 0, 0), b"d" * 200)
        settle(store)
    assert store.verify() == []
    store = reopen(store)
    assert store.verify() == []
    assert [i for i in gone if store.lookup(key(i)) is not None] == gone[:10]
    assert store.stats().free_wblocks > N_BLOCKS // 2
    store.close()


def test_bury_commits_to_device(path):
    store = open_store(path, flush_max_ms=10**6)
    store.put(key(1), RecordMeta(1, 0, 0), b"gone")
    store.bury(key(1), RecordMeta(2, 0, 5))
    store.commit()
    crashed = str(path) + ".crash"
    with open(path, "rb") as f, open(crashed, "wb") as g:
        g.write(f.read())  # what a SIGKILL right after bury() would leave
    image = open_store(crashed)
    assert image.lookup(key(1)) == (RecordMeta(2, 0, 5), True) and image.verify() == []
    image.close()
    store.close()
