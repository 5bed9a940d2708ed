"""Group commit over real device files: one fdatasync for the writes waiting, none acknowledged
before the flush that covers it, actions (fabric acks) released in order behind it."""

import asyncio
import hashlib
import shutil

import pytest

from cluster.storage import layout
from cluster.storage.device import DeviceStore
from cluster.storage.group_commit import GroupCommit
from cluster.storage.record import RecordMeta

WBS = 4096
FILESIZE = layout.FILE_HEADER_SIZE + 32 * WBS


def key(i: int) -> bytes:
    return hashlib.sha1(str(i).encode()).digest()


@pytest.fixture
def stores(tmp_path):
    opened = [DeviceStore(str(tmp_path / f"ns{i}.dat"), filesize=FILESIZE, write_block_size=WBS,
                          flush_max_ms=10**6) for i in range(2)]
    yield opened
    for s in opened:
        s.close()


def crash_image(store: DeviceStore, path) -> DeviceStore:
    """What a SIGKILL now would leave on disk."""
    shutil.copyfile(store.path, path)
    return DeviceStore(str(path), filesize=FILESIZE, write_block_size=WBS)


def test_concurrent_writers_share_one_flush_and_are_on_disk(stores, tmp_path):
    commit = GroupCommit(stores)

    async def writer(i: int) -> None:
        stores[i % 2].put(key(i), RecordMeta(1, 0, i), b"v%d" % i)
        await commit.barrier()

    async def main():
        await asyncio.gather(*(writer(i) for i in range(50)))

    asyncio.run(main())
    assert commit.flushes == 1
    assert all(s.committed == s.appended == 25 for s in stores)
    for i, s in enumerate(stores):
        image = crash_image(s, tmp_path / f"crash{i}.dat")
        assert sorted(d for pid in range(4096) for d in image.partition_digests(pid, 0)) == \
            sorted(key(j) for j in range(i, 50, 2))
        image.close()


def test_a_write_made_during_a_flush_waits_for_the_next(stores):
    commit = GroupCommit(stores[:1])
    store = stores[0]

    async def main():
        store.put(key(1), RecordMeta(1, 0, 1), b"first")
        first = asyncio.ensure_future(commit.barrier())
        while commit._flush is None:  # the first flush has started: its coverage is fixed
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        store.put(key(2), RecordMeta(1, 0, 2), b"second")
        mark = store.appended
        await commit.barrier()
        assert store.committed >= mark, "acknowledged before a flush covered the write"
        await first
        return commit.flushes

    assert asyncio.run(main()) == 2


def test_nothing_to_commit_costs_no_flush(stores):
    commit = GroupCommit(stores)
    asyncio.run(commit.barrier())
    assert commit.flushes == 0
    sent = []
    GroupCommit([]).after(lambda: sent.append(1))  # no commit-to-device store: at once
    assert sent == [1]


def test_actions_wait_for_the_writes_before_them_in_order(stores):
    commit = GroupCommit(stores[:1])
    store = stores[0]
    released: list[tuple[int, int, int]] = []  # (action, committed when run, appended when given)

    async def main():
        for i in range(6):
            if i % 2 == 0:
                store.put(key(i), RecordMeta(1, 0, i), b"x" * 100)
            mark = store.appended
            commit.after(lambda i=i, mark=mark: released.append((i, store.committed, mark)))
            if i == 3:
                await asyncio.sleep(0)  # a flush may start between actions
        while commit._releasing is not None:
            await asyncio.sleep(0.001)

    asyncio.run(main())
    assert [i for i, _, _ in released] == list(range(6))
    assert all(committed >= mark for _, committed, mark in released)
