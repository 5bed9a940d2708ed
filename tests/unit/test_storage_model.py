"""Seeded random operations against DeviceStore and a dict, with restarts and crash images.

The device is small and kept fairly full, so defrag, tombstone reclamation, expiry and
OutOfSpace all happen many times per run. `verify()` re-derives the engine's accounting
from the file at intervals. Durable tombstones (bury) and drop_partition are in the mix; a
dropped digest may come back at a cold start with any version it ever had.
"""

import hashlib
import random
import shutil

import pytest

from cluster.storage import layout
from cluster.storage.device import DeviceStore
from cluster.storage.engine import OutOfSpace, partition_id
from cluster.storage.record import RecordMeta

WBS = 4096
FILESIZE = layout.FILE_HEADER_SIZE + 20 * WBS
KEYS = 200
STEPS = 4000
DIGESTS = [hashlib.sha1(str(k).encode()).digest() for k in range(KEYS)]
PIDS = sorted({partition_id(d) for d in DIGESTS})

Model = dict[int, tuple[RecordMeta, bytes | None]]  # payload None = durable tombstone


def open_store(path: str, now_s: int | None, cache: int) -> DeviceStore:
    return DeviceStore(path, filesize=FILESIZE, write_block_size=WBS, flush_max_ms=500, defrag_reserve_wblocks=2,
                       defrag_wblocks_per_tick=2, post_write_cache=cache, now_s=now_s)


def live(model: Model, k: int, now_s: int) -> tuple[RecordMeta, bytes | None] | None:
    """The record or durable tombstone, unless expired."""
    found = model.get(k)
    return found if found and not found[0].expired(now_s) else None


def visible(model: Model, k: int, now_s: int) -> tuple[RecordMeta, bytes] | None:
    found = live(model, k, now_s)
    return found if found and found[1] is not None else None


def check_all(store: DeviceStore, model: Model, now_s: int) -> None:
    for k in range(KEYS):
        assert store.get(DIGESTS[k], now_s) == visible(model, k, now_s), k
        found = live(model, k, now_s)
        if found:
            assert store.lookup(DIGESTS[k]) == (found[0], found[1] is None), k
    expected = {pid: [] for pid in PIDS}
    for k in range(KEYS):
        if found := live(model, k, now_s):
            expected[partition_id(DIGESTS[k])].append((DIGESTS[k], found[0], found[1] is None))
    for pid in PIDS:
        assert store.partition_entries(pid, now_s) == sorted(expected[pid])
        assert store.partition_digests(pid, now_s) == [d for d, _, tomb in sorted(expected[pid]) if not tomb]
    st = store.stats()
    assert st.objects == store.record_count()
    assert st.tombstones >= sum(1 for k in model if model[k][1] is None)


def resync(store: DeviceStore, model: Model, dropped: set[int], history: dict[int, set]) -> Model:
    """After a cold start: what dropped digests came back with, each a version they had."""
    model = dict(model)
    for k in dropped:
        found = store.lookup(DIGESTS[k])
        if found is None:
            model.pop(k, None)
            continue
        meta, tomb = found
        payload = None if tomb else store.get(DIGESTS[k], 0)[1]
        assert (meta, payload) in history[k], k
        model[k] = (meta, payload)
    return model


@pytest.mark.parametrize("cache", [0, 8 * WBS], ids=["file-reads", "post-write-cache"])
@pytest.mark.parametrize("commit", [False, True], ids=["buffered", "commit"])
@pytest.mark.parametrize("seed", [1, 2])
def test_device_store_matches_a_dict(tmp_path, seed, commit, cache):
    rng = random.Random(seed)
    path = str(tmp_path / "device.dat")
    store = open_store(path, None, cache)
    model: Model = {}
    history: dict[int, set] = {k: set() for k in range(KEYS)}
    dropped: set[int] = set()  # digests a cold start may bring back
    now_ms = 5_000_000
    refused = restarts = crash_images = defrag_reads = buried = drops = 0
    for step in range(STEPS):
        now_s = now_ms // 1000
        k = rng.randrange(KEYS)
        roll = rng.random()
        filling = step // 500 % 2 == 0  # alternate phases that fill the device and drain it
        if roll < (0.7 if filling else 0.35):
            old = live(model, k, now_s)
            gen = old[0].generation % 0xFFFF + 1 if old else 1
            void_time = 0 if rng.random() < 0.8 else now_s + rng.randint(1, 20)
            meta = RecordMeta(gen, void_time, now_ms, rng.choice(["", "users", "x"]))
            payload = rng.randbytes(rng.choice([0, 30, 200, rng.randint(0, 2000)]))
            try:
                store.put(DIGESTS[k], meta, payload)
                model[k] = (meta, payload)
                history[k].add(model[k])
                dropped.discard(k)
            except OutOfSpace:
                refused += 1
        elif roll < 0.72:
            old = live(model, k, now_s)
            meta = RecordMeta(old[0].generation % 0xFFFF + 1 if old else 1, 0, now_ms, rng.choice(["", "x"]))
            try:
                store.bury(DIGESTS[k], meta)
            except OutOfSpace:
                refused += 1
                continue
            model[k] = (meta, None)
            history[k].add(model[k])
            dropped.discard(k)
            buried += 1
        elif roll < 0.8:
            was = model.get(k)
            try:
                deleted = store.delete(DIGESTS[k])
            except OutOfSpace:
                refused += 1
                continue
            if was is not None and was[1] is None:
                assert not deleted  # a durable tombstone is no record: it stays
                continue
            if was is None or not was[0].expired(now_s):
                assert deleted == (was is not None)
            if deleted or was is None or not was[0].expired(now_s):
                model.pop(k, None)
            if deleted:  # its internal tombstone hides every older copy
                dropped.discard(k)
            # else nsup got there first; a cold start may index the expired record again
        elif roll < 0.805:
            pid = partition_id(DIGESTS[k])
            store.drop_partition(pid)
            for j in range(KEYS):
                if partition_id(DIGESTS[j]) == pid:
                    model.pop(j, None)
                    if history[j]:
                        dropped.add(j)
            drops += 1
        elif roll < 0.975:
            now_ms += rng.choice([0, 10, 100, 1000, 3000])
            now_s = now_ms // 1000
            store.tick(now_ms)
        elif roll < 0.99:
            defrag_reads += store.stats().defrag_reads
            store.close()
            store = open_store(path, now_s if rng.random() < 0.5 else None, cache)
            model = resync(store, model, dropped, history)
            restarts += 1
        elif commit:
            # Commit-to-device acknowledges after a commit; a copy of the file then is what
            # a SIGKILL would leave: every acknowledged op.
            store.commit()
            image = str(tmp_path / "crash.dat")
            shutil.copyfile(path, image)
            crashed = open_store(image, now_s, cache)
            check_all(crashed, resync(crashed, model, dropped, history), now_s)
            assert crashed.verify() == []
            crashed.close()
            crash_images += 1
        assert store.get(DIGESTS[k], now_s) == visible(model, k, now_s), (step, k)
        if step % 400 == 0:
            check_all(store, model, now_s)
            assert store.verify() == []
    check_all(store, model, now_ms // 1000)
    assert store.verify() == []
    defrag_reads += store.stats().defrag_reads
    print(f"{defrag_reads=} {restarts=} {refused=} {crash_images=} {buried=} {drops=}")
    assert defrag_reads > 100 and restarts > 10 and refused > 0 and buried > 100 and drops > 5
    assert crash_images > 5 or not commit
    store.close()
