"""storage-engine memory: records live in the index itself, bounded by `data_size` bytes.

Used bytes are payload + set-name bytes, and TOMBSTONE_BYTES for each durable tombstone
(bury). Nothing is persisted and there is no fragmentation, so "available" is simply the
unused part of the budget and deletes need no internal tombstones.
"""

from cluster.storage.engine import (
    OutOfSpace,
    StorageEngine,
    StorageStats,
    check_digest,
    partition_id,
    tombstone_meta,
)
from cluster.storage.record import RecordMeta

# What a durable tombstone costs: about a primary-index entry (Aerospike's is 64 bytes).
TOMBSTONE_BYTES = 64


class _Entry:
    """An index entry; its size (what it counts against data_size) is taken once, as every
    put asks it of the new entry and of the one it replaces."""

    __slots__ = ("meta", "payload", "tombstone", "size")

    def __init__(self, meta: RecordMeta, payload: bytes, tombstone: bool = False):
        self.meta, self.payload, self.tombstone = meta, payload, tombstone
        self.size = TOMBSTONE_BYTES if tombstone else len(payload) + len(meta.set_name)


class MemoryStore(StorageEngine):
    def __init__(self, data_size: int):
        if data_size <= 0:
            raise ValueError(f"data_size must be positive, got {data_size}")
        super().__init__()
        self.data_size = data_size
        self._used = 0

    def _payload(self, entry: _Entry) -> bytes:
        return entry.payload

    def _expire(self, digest: bytes, entry: _Entry) -> None:
        self.delete(digest)

    def _replace(self, digest: bytes, new: _Entry) -> None:
        pid = partition_id(digest)
        index, buried = self._index[pid], self._buried[pid]
        old = index.get(digest) or buried.get(digest)
        used = self._used + new.size - (old.size if old else 0)
        if used > self.data_size:
            raise OutOfSpace(f"memory budget of {self.data_size} bytes is full")
        if old is not None:  # a digest is in one of the two
            del (buried if old.tombstone else index)[digest]
        (buried if new.tombstone else index)[digest] = new
        self._used = used

    def put(self, digest: bytes, meta: RecordMeta, payload: bytes) -> None:
        check_digest(digest)
        if self.truncated(meta):
            return
        self._replace(digest, _Entry(meta, bytes(payload)))

    def bury(self, digest: bytes, meta: RecordMeta) -> None:
        check_digest(digest)
        if self.truncated(meta):
            return
        self._replace(digest, _Entry(tombstone_meta(meta), b"", tombstone=True))

    def delete(self, digest: bytes) -> bool:
        old = self._index[partition_id(digest)].pop(digest, None)
        if old is None:
            return False
        self._used -= old.size
        return True

    def _unbury(self, digest: bytes) -> None:
        self._used -= self._buried[partition_id(digest)].pop(digest).size

    def drop_partition(self, pid: int) -> int:
        dropped = 0
        for part in (self._index[pid], self._buried[pid]):
            self._used -= sum(e.size for e in part.values())
            dropped += len(part)
            part.clear()
        return dropped

    def tick(self, now_ms: int) -> None:
        self._expire_some(now_ms // 1000)

    def space_pct(self) -> tuple[float, float]:
        return self._used * 100 / self.data_size, (self.data_size - self._used) * 100 / self.data_size

    def stats(self) -> StorageStats:
        return StorageStats(
            total_bytes=self.data_size,
            used_bytes=self._used,
            used_pct=self._used * 100 / self.data_size,
            avail_pct=(self.data_size - self._used) * 100 / self.data_size,
            free_wblocks=0,
            defrag_queue=0,
            wblocks_written=0,
            defrag_reads=0,
            cache_reads=0,
            device_reads=0,
            objects=self.record_count(),
            tombstones=self._buried_count(),
        )

    def flush(self) -> None:
        pass  # nothing to persist

    def close(self) -> None:
        pass
