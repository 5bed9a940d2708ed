"""The storage-engine interface that the namespace layer talks to.

Two engines implement it: `MemoryStore` (storage-engine memory) and `DeviceStore`
(storage-engine device, one file). Both keep a primary index split into the 4096
partitions; a record is (digest: 20 bytes, RecordMeta, payload: opaque bytes).

    get(digest, now_s) -> (RecordMeta, bytes) | None     expired records are not returned
    get_meta(digest, now_s) -> RecordMeta | None        from the index only, no payload read
    put(digest, meta, payload) -> None                  raises OutOfSpace / RecordTooBig
    delete(digest) -> bool                              False if there is no record
    bury(digest, meta) -> None                          durable delete, see below
    lookup(digest) -> (RecordMeta, is_tombstone) | None record or durable tombstone, expired or not
    partition_entries(pid, now_s)                       [(digest, meta, is_tombstone)] of records
        -> list[(bytes, RecordMeta, bool)]              (unexpired) and durable tombstones, sorted
    drop_partition(pid) -> int                          forget its records and tombstones
    partition_digests(pid, now_s) -> list[bytes]        live digests of a partition, sorted
    partition_count(pid) -> int, record_count() -> int  indexed records (may include
                                                        expired ones nsup has not reached)
    set_counts() -> {set: (records, tombstones)}        the same counts per set name
    tick(now_ms) -> None                                housekeeping: nsup, defrag, flush
    stats() -> StorageStats, flush(), close()
    space_pct() -> (used_pct, avail_pct)                stats()' two, without counting records

Durable deletes. `bury` turns a digest into a durable tombstone: a cluster-level delete that
replication and migration can ship and that conflict resolution compares (by generation
and LUT) with a stale copy from another node. It replaces whatever the digest held (a
record, a tombstone, nothing) and keeps `meta` with void_time 0: it never expires. A
durable tombstone is invisible to get, get_meta, partition_digests, partition_count,
record_count and `stats().objects`; it is counted in `stats().tombstones` (with the
device's internal ones) and its bytes in `used_bytes`. Only `lookup`, `partition_entries`
and `stats().tombstones` see it. It goes away only through a later put (which revives the
record) or `drop_partition`; delete() and nsup leave it alone. `delete` stays the
non-durable delete: the record just vanishes. `drop_partition` is for a partition the node
no longer holds: everything of it leaves the index and its space is released (the device
writes nothing for it, so a cold start may bring dropped entries back).

Truncation (the server's `truncate` info command): `truncate(ns_lut, set_luts)` sets the
namespace's last-update-time cutoffs (citrusleaf ms, 0 = none; the namespace-wide one and
one per set name) and drops every record and durable tombstone updated before its cutoff.
While a cutoff stands, put and bury of a copy updated before it store nothing: a stale
copy from a replica write or a migration cannot bring truncated data back.

Time is always an argument, in citrusleaf units (see record.py), so the engines are
deterministic under a simulated clock. `tick(now_ms)` takes citrusleaf milliseconds: nsup
compares `now_ms // 1000` with void-times.

Stop-writes (stop-writes-used-pct / stop-writes-avail-pct) is the namespace's decision,
made from `stats()`. An engine only refuses a write it physically cannot take
(`OutOfSpace`), so replica and migration writes (and buries) keep flowing under stop-writes.

The engines are not thread-safe: one owner (the node's event loop) calls them.
"""

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from cluster.storage.record import RecordMeta

N_PARTITIONS = 4096
DIGEST_SIZE = 20
# How much of the index nsup looks at per tick, so that a tick stays short: a full sweep
# takes N_PARTITIONS / NSUP_PARTITIONS_PER_TICK ticks at most (less with many records).
NSUP_PARTITIONS_PER_TICK = 256
NSUP_RECORDS_PER_TICK = 5_000


def partition_id(digest: bytes) -> int:
    return (digest[0] | digest[1] << 8) & (N_PARTITIONS - 1)


class StorageError(Exception):
    pass


class OutOfSpace(StorageError):
    """No physical room (device: free wblocks at or below the defrag reserve)."""


class RecordTooBig(StorageError):
    """The record cannot fit in one write block (or in the whole memory budget)."""


class CorruptRecord(StorageError):
    """A record read back from the device failed its checksum."""


@dataclass(slots=True)
class StorageStats:
    total_bytes: int
    used_bytes: int  # live record bytes, tombstones included (they occupy the device too)
    used_pct: float  # used_bytes * 100 / total_bytes
    avail_pct: float  # contiguous free space: free wblocks * wblock size * 100 / total_bytes
    free_wblocks: int
    defrag_queue: int
    wblocks_written: int
    defrag_reads: int
    cache_reads: int  # record reads served from memory (device: the write buffer, the post-write cache)
    device_reads: int  # record reads from the device file
    objects: int  # records (as record_count(): durable tombstones are not objects)
    tombstones: int  # durable tombstones, plus the device's internal (delete/nsup) ones


class StorageEngine(ABC):
    """Owns the per-partition primary index; subclasses decide where payloads live.

    Index values are engine-specific entry objects that have at least a `meta` attribute.
    `_index` holds the records, `_buried` the durable tombstones; a digest is in at most one.
    """

    def __init__(self) -> None:
        self._index: list[dict[bytes, Any]] = [{} for _ in range(N_PARTITIONS)]
        self._buried: list[dict[bytes, Any]] = [{} for _ in range(N_PARTITIONS)]
        self._nsup_cursor = 0
        self._truncate_ns = 0  # last-update-time cutoffs: see truncate()
        self._truncate_sets: dict[str, int] = {}

    # -- reads -------------------------------------------------------------------------

    def get(self, digest: bytes, now_s: int) -> tuple[RecordMeta, bytes] | None:
        entry = self._live_entry(digest, now_s)
        return None if entry is None else (entry.meta, self._payload(entry))

    def get_meta(self, digest: bytes, now_s: int) -> RecordMeta | None:
        entry = self._live_entry(digest, now_s)
        return None if entry is None else entry.meta

    def partition_digests(self, pid: int, now_s: int) -> list[bytes]:
        return sorted(d for d, e in self._index[pid].items() if not e.meta.expired(now_s))

    def partition_count(self, pid: int) -> int:
        """Records of the partition, expired ones included; durable tombstones are not."""
        return len(self._index[pid])

    def record_count(self) -> int:
        """Records of all partitions, expired ones included; durable tombstones are not."""
        return sum(map(len, self._index))

    def set_counts(self) -> dict[str, tuple[int, int]]:
        """(records, durable tombstones) per set name, counted as record_count() counts."""
        counts: dict[str, list[int]] = {}
        for column, parts in enumerate((self._index, self._buried)):
            for part in parts:
                for entry in part.values():
                    counts.setdefault(entry.meta.set_name, [0, 0])[column] += 1
        return {name: (records, tombstones) for name, (records, tombstones) in counts.items()}

    def _buried_count(self) -> int:
        """Durable tombstones of all partitions."""
        return sum(map(len, self._buried))

    def lookup(self, digest: bytes) -> tuple[RecordMeta, bool] | None:
        """(meta, is_tombstone) of the record or durable tombstone, expired or not."""
        pid = partition_id(digest)
        if (entry := self._index[pid].get(digest)) is not None:
            return entry.meta, False
        if (entry := self._buried[pid].get(digest)) is not None:
            return entry.meta, True
        return None

    def partition_entries(self, pid: int, now_s: int) -> list[tuple[bytes, RecordMeta, bool]]:
        """(digest, meta, is_tombstone) of the partition's unexpired records and durable
        tombstones, sorted by digest."""
        found = [(d, e.meta, False) for d, e in self._index[pid].items() if not e.meta.expired(now_s)]
        found.extend((d, e.meta, True) for d, e in self._buried[pid].items())
        found.sort(key=lambda t: t[0])
        return found

    def _live_entry(self, digest: bytes, now_s: int) -> Any:
        entry = self._index[partition_id(digest)].get(digest)
        return None if entry is None or entry.meta.expired(now_s) else entry

    # -- truncation ------------------------------------------------------------------------

    def truncate(self, ns_lut: int, set_luts: dict[str, int]) -> int:
        """Set the cutoffs and drop what they truncate -> how many records and durable
        tombstones were dropped."""
        self._truncate_ns, self._truncate_sets = ns_lut, {name: lut for name, lut in set_luts.items() if lut}
        dropped = 0
        for pid in range(N_PARTITIONS):
            for digest in [d for d, e in self._index[pid].items() if self.truncated(e.meta)]:
                self.delete(digest)
                dropped += 1
            for digest in [d for d, e in self._buried[pid].items() if self.truncated(e.meta)]:
                self._unbury(digest)
                dropped += 1
        return dropped

    def truncated(self, meta: RecordMeta) -> bool:
        """Updated before its namespace's or its set's cutoff (the server's `<`)."""
        return meta.lut < self._truncate_ns or meta.lut < self._truncate_sets.get(meta.set_name, 0)

    # -- nsup ----------------------------------------------------------------------------

    def _expire_some(self, now_s: int) -> None:
        """Remove expired records, sweeping whole partitions round-robin within the budget."""
        visited = 0
        for _ in range(NSUP_PARTITIONS_PER_TICK):
            part = self._index[self._nsup_cursor]
            self._nsup_cursor = (self._nsup_cursor + 1) % N_PARTITIONS
            if not part:
                continue
            visited += len(part)
            for digest in [d for d, e in part.items() if 0 < e.meta.void_time < now_s]:  # expired()
                self._expire(digest, part[digest])
            if visited >= NSUP_RECORDS_PER_TICK:
                return

    # -- engine specific -------------------------------------------------------------------

    @abstractmethod
    def _payload(self, entry: Any) -> bytes: ...

    @abstractmethod
    def _expire(self, digest: bytes, entry: Any) -> None:
        """Remove an expired record from the index and release its space."""

    @abstractmethod
    def put(self, digest: bytes, meta: RecordMeta, payload: bytes) -> None: ...

    @abstractmethod
    def delete(self, digest: bytes) -> bool: ...

    @abstractmethod
    def bury(self, digest: bytes, meta: RecordMeta) -> None:
        """Make `digest` a durable tombstone carrying `meta` (stored with void_time 0),
        replacing whatever it held. OutOfSpace only if not even the tombstone fits."""

    @abstractmethod
    def _unbury(self, digest: bytes) -> None:
        """Forget the durable tombstone of `digest` (truncation)."""

    @abstractmethod
    def drop_partition(self, pid: int) -> int:
        """Forget the partition's records and tombstones and release their space -> how
        many records and durable tombstones were forgotten."""

    @abstractmethod
    def tick(self, now_ms: int) -> None: ...

    @abstractmethod
    def stats(self) -> StorageStats: ...

    def space_pct(self) -> tuple[float, float]:
        """(used_pct, avail_pct) as stats() gives them, for the stop-writes check on every
        housekeeping tick; engines override it to skip counting records."""
        st = self.stats()
        return st.used_pct, st.avail_pct

    @abstractmethod
    def flush(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...


def tombstone_meta(meta: RecordMeta) -> RecordMeta:
    """`meta` as a durable tombstone keeps it: without a void-time."""
    return meta if meta.void_time == 0 else dataclasses.replace(meta, void_time=0)


def check_digest(digest: bytes) -> None:
    if len(digest) != DIGEST_SIZE:
        raise ValueError(f"digest must be {DIGEST_SIZE} bytes, got {len(digest)}")
