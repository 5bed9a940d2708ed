"""storage-engine device: a log-structured record store in one file (after Aerospike's drv_ssd).

Layout (bytes in layout.py): a 4 KiB file header, then fixed-size write blocks (wblocks).
Records are appended as entries of whole 16-byte rblocks; the primary index maps a digest
to (wblock, offset, size) plus the record's metadata, so `get_meta` never touches the file.

Write path. Every put, delete and defrag copy is appended to one in-memory write buffer
that stands for the open wblock. A full buffer is written out and the next free wblock is
opened. A partially filled buffer is written (only the bytes not yet written) when tick()
has seen it dirty for `flush_max_ms`, or by a commit (below). Nothing is overwritten in place: superseding a
record subtracts its old size from its wblock's live bytes, and a closed wblock whose live
bytes fall below `defrag_lwm_pct` of the wblock size is queued for defrag. Client puts are
refused with OutOfSpace once free wblocks are at or below `defrag_reserve_wblocks`.
Tombstones (deletes, nsup, buries) may use the reserve but the last free wblock, which
belongs to defrag alone: defrag of a wblock under the lwm needs at most one wblock for its
copies and frees one within the same tick, so it can always make progress. A tombstone that
finds no room makes defrag compact the emptiest wblock at once (lwm or not), so deletes and
buries fail only when every wblock is entirely live.

Post-write cache (Aerospike's `post-write-cache`). The images of the last closed wblocks,
up to `post_write_cache` bytes, stay in memory: reads of recent records, and defrag of a
block still held, copy from memory instead of reading the file, as reads of the open
wblock always do. Such reads skip the CRC check, which guards what came back from the
device. A wblock leaves the cache when defrag vacates it or newer ones push it out.

Defrag (a bounded number of wblocks per tick) reads a queued wblock, re-appends the entries
the index still points at (keeping their sequence numbers) and marks the wblock "vacated".
A vacated wblock becomes free only after its copies are on disk: the buffer is written,
fdatasync'ed, and then the wblock's header is zeroed. A zeroed header is what makes a wblock
free at cold start, so nothing a freed wblock still holds can come back.

Versions. Each entry carries a sequence number from one counter that only grows (restored
at cold start as max + 1); each opening of a wblock also takes a number from it, its
incarnation, written in the wblock header and used to seed the entries' CRCs. At cold start
the entry with the highest sequence number wins (ties - a defrag copy and an original that
was not yet freed - go to the newer wblock). Torn or stale entries fail their CRC and end
the wblock's scan. An expired record that is its digest's only copy is dropped at cold
start when the caller passes `now_s`; other expired records are left to nsup in tick().

Tombstones. delete() appends an internal tombstone entry, so a restart cannot bring back an
older copy. An internal tombstone must live exactly as long as some older copy of its record
is still on the device, and the engine counts those copies rather than guessing: every
indexed entry has `older`, the number of superseded *lasting* entries of its digest still in
non-free wblocks. Lasting entries are records and durable tombstones: what a cold start
would index on its own. Superseding one adds one (an internal tombstone being superseded
adds none: a stale one cannot resurrect anything); when a vacated wblock is freed, each dead
lasting entry it held subtracts one. An internal tombstone whose count reaches zero is
removed from the index and its bytes become dead like any other, so defrag reclaims them.
A durable tombstone (bury(), entry flag FLAG_DURABLE) is lasting: it stays indexed, whatever
its count, until a put or drop_partition supersedes it; defrag moves it like a record. The
cold-start scan recomputes every count exactly, and `verify()` compares the two for tests.

drop_partition writes nothing: its entries (internal tombstones too) leave the index, their
bytes become dead and their digests become ghosts (below) holding their copy counts, so the
accounting stays exact. Until defrag has freed every wblock that holds them, a cold start
brings back whatever version of them is newest among those left, possibly an older record
than the one dropped (the cluster resolves it against the partition's current holders).

Expiry (nsup) writes nothing when the expired entry is the digest's only copy: it leaves the
index, and `_ghosts` remembers that one copy until defrag frees it, so the counts stay exact
if the digest is written again. An expired record that has older versions on the device is
the only thing hiding them, so nsup replaces it with a tombstone, exactly like a delete.

Durability. put/delete/bury never wait for the disk. Under commit-to-device their owner
commits before acknowledging them: `commit()`, or in the node one group commit for many
writes (group_commit.py: start_commit() writes the buffer out, sync() is the fdatasync that
may run in another thread, finish_commit() records what it covered). A committed write
survives a process kill or a power cut (provided the device does not tear a sector an
earlier entry shares with the one being written: partial wblocks are appended to, not
rewritten). Without commits, a process kill loses nothing that was written out (the page
cache keeps it) but up to `flush_max_ms` of buffered writes are lost with the process. Freeing a wblock always waits for an
fdatasync of the copies taken from it, so defrag itself never loses older data.
"""

import logging
import os
from collections import OrderedDict, deque
from dataclasses import dataclass

from cluster.storage import layout
from cluster.storage.engine import (
    N_PARTITIONS,
    CorruptRecord,
    OutOfSpace,
    RecordTooBig,
    StorageEngine,
    StorageStats,
    check_digest,
    partition_id,
    tombstone_meta,
)
from cluster.storage.record import RecordMeta

log = logging.getLogger(__name__)

MiB = 1024 * 1024
MIN_WRITE_BLOCK = 1024
MAX_WRITE_BLOCK = 8 * MiB
MAX_DEFRAG_RESERVE = 8  # Aerospike's DRV_DEFRAG_RESERVE

# wblock states
FREE, OPEN, CLOSED, QUEUED, VACATED = range(5)


class _Entry:
    """A primary-index entry: where the newest version of a digest lives."""

    __slots__ = ("meta", "seq", "block", "offset", "size", "older")

    def __init__(self, meta: RecordMeta, seq: int, block: int, offset: int, size: int, older: int):
        self.meta = meta
        self.seq = seq
        self.block = block
        self.offset = offset
        self.size = size
        self.older = older  # superseded data entries of this digest still on the device


@dataclass(slots=True)
class _Newest:
    """Cold-start scan result for one digest."""

    seq: int
    incarnation: int
    block: int
    offset: int
    size: int
    meta: RecordMeta
    tombstone: bool
    durable: bool
    copies: int  # lasting entries (records, durable tombstones) of this digest, the newest included


@dataclass(slots=True)
class _Vacated:
    block: int
    dead_copies: list[bytes]  # digests of superseded data entries the wblock held


class DeviceStore(StorageEngine):
    def __init__(self, path: str, filesize: int, write_block_size: int = MiB, defrag_lwm_pct: int = 50,
                 flush_max_ms: int = 1000, defrag_reserve_wblocks: int | None = None, defrag_wblocks_per_tick: int = 2,
                 post_write_cache: int = 0, now_s: int | None = None):
        """Open (or create) the device file at `path`.

        The file's tail beyond the last whole wblock is unused. An existing file must have
        been created with the same write_block_size; it may grow but not shrink.
        `now_s` (citrusleaf seconds), if given, drops expired records during cold start.
        """
        wbs = write_block_size
        if wbs & (wbs - 1) or not MIN_WRITE_BLOCK <= wbs <= MAX_WRITE_BLOCK:
            raise ValueError(f"write_block_size {wbs} must be a power of 2 in {MIN_WRITE_BLOCK}..{MAX_WRITE_BLOCK}")
        n_blocks = max(0, (filesize - layout.FILE_HEADER_SIZE) // wbs)
        reserve = defrag_reserve_wblocks
        if reserve is None:
            reserve = min(MAX_DEFRAG_RESERVE, max(2, n_blocks // 8))
        if reserve < 2:
            # one wblock for tombstones beyond where puts stop, and one that only defrag may take
            raise ValueError(f"defrag_reserve_wblocks must be at least 2, got {reserve}")
        needed = max(4, reserve + 2)
        if n_blocks < needed:
            raise ValueError(f"filesize {filesize} is too small: it must hold the {layout.FILE_HEADER_SIZE}-byte "
                             f"header and at least {needed} wblocks of {wbs} bytes")
        if flush_max_ms < 0:
            raise ValueError(f"flush_max_ms must not be negative, got {flush_max_ms}")
        if defrag_wblocks_per_tick < 1:
            raise ValueError(f"defrag_wblocks_per_tick must be at least 1, got {defrag_wblocks_per_tick}")
        if post_write_cache < 0:
            raise ValueError(f"post_write_cache must not be negative, got {post_write_cache}")
        super().__init__()
        self.path = path
        self.filesize = filesize
        self.write_block_size = wbs
        self.n_blocks = n_blocks
        self.defrag_reserve_wblocks = reserve
        self.defrag_lwm_pct = defrag_lwm_pct
        self.flush_max_ms = flush_max_ms  # may be changed at run time, like defrag_lwm_pct
        self.defrag_wblocks_per_tick = defrag_wblocks_per_tick

        # internal tombstones (delete, nsup) per partition; durable ones are in self._buried
        self._tombs: list[dict[bytes, _Entry]] = [{} for _ in range(N_PARTITIONS)]
        self._ghosts: dict[bytes, int] = {}
        self._used = [0] * n_blocks  # live bytes per wblock
        self._used_total = 0
        self._state = [FREE] * n_blocks
        self._incarnation = [0] * n_blocks
        self._free: deque[int] = deque()
        self._defrag_q: deque[int] = deque()
        self._vacated: list[_Vacated] = []
        self._seq = 1
        self._buf = bytearray(wbs)
        self._open: int | None = None  # the wblock the buffer stands for
        self._fill = 0  # bytes of the buffer in use
        self._written = 0  # bytes of the buffer already written to the file
        self._cached: OrderedDict[int, bytes] = OrderedDict()  # closed wblock -> its image, oldest first
        self._cache_wblocks = post_write_cache // wbs
        self.cache_reads = 0  # record reads served from memory (the buffer or the cache) ...
        self.device_reads = 0  # ... and from the file
        self._dirty_since_ms: int | None = None
        self.appended = 0  # entries appended so far ...
        self.committed = 0  # ... and how many of them the last finished fdatasync covered
        self.wblocks_written = 0
        self.defrag_reads = 0

        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._open_file(now_s)
        except BaseException:
            os.close(self._fd)
            raise

    @property
    def defrag_lwm_pct(self) -> int:
        return self._lwm_pct

    @defrag_lwm_pct.setter
    def defrag_lwm_pct(self, pct: int) -> None:
        if not 1 <= pct <= 99:
            raise ValueError(f"defrag_lwm_pct must be in 1..99, got {pct}")
        self._lwm_pct = pct
        self._lwm_bytes = self.write_block_size * pct // 100

    # -- opening ---------------------------------------------------------------------------

    def _block_pos(self, block: int) -> int:
        return layout.FILE_HEADER_SIZE + block * self.write_block_size

    def _open_file(self, now_s: int | None) -> None:
        size = os.fstat(self._fd).st_size
        if size == 0:
            self._write_file_header()
        else:
            wbs, old_filesize = layout.unpack_file_header(os.pread(self._fd, layout.FILE_HEADER_SIZE, 0))
            if wbs != self.write_block_size:
                raise ValueError(f"{self.path} was created with write-block-size {wbs}, "
                                 f"not {self.write_block_size}")
            if self.filesize < old_filesize:
                raise ValueError(f"{self.path} holds {old_filesize} bytes; filesize {self.filesize} would shrink it")
            if self.filesize > old_filesize:
                self._write_file_header()
            elif size < self.filesize:
                os.ftruncate(self._fd, self.filesize)  # cut short from outside: the rest reads as free
            self._cold_start(now_s)
        self._free.extend(b for b in range(self.n_blocks) if self._state[b] == FREE)

    def _write_file_header(self) -> None:
        os.ftruncate(self._fd, self.filesize)
        os.pwrite(self._fd, layout.pack_file_header(self.write_block_size, self.filesize), 0)
        os.fsync(self._fd)

    def _scan(self) -> tuple[dict[int, int], dict[bytes, _Newest]]:
        """Read every wblock in use -> ({wblock: incarnation}, {digest: its newest entry})."""
        incarnations: dict[int, int] = {}
        newest: dict[bytes, _Newest] = {}
        header_size = layout.BLOCK_HEADER_SIZE
        for block in range(self.n_blocks):
            pos = self._block_pos(block)
            incarnation = layout.block_incarnation(os.pread(self._fd, header_size, pos))
            if incarnation is None:
                continue
            incarnations[block] = incarnation
            image = memoryview(os.pread(self._fd, self.write_block_size, pos))
            for e in layout.iter_entries(image, layout.crc_seed(incarnation)):
                seen = newest.get(e.digest)
                if seen is None:
                    seen = newest[e.digest] = _Newest(e.seq, incarnation, block, e.offset, e.size, e.meta,
                                                      e.tombstone, e.durable, 0)
                elif (e.seq, incarnation) > (seen.seq, seen.incarnation):
                    seen.seq, seen.incarnation, seen.block, seen.offset = e.seq, incarnation, block, e.offset
                    seen.size, seen.meta, seen.tombstone, seen.durable = e.size, e.meta, e.tombstone, e.durable
                if e.lasting:
                    seen.copies += 1
        return incarnations, newest

    def _cold_start(self, now_s: int | None) -> None:
        incarnations, newest = self._scan()
        for block, incarnation in incarnations.items():
            self._state[block] = CLOSED
            self._incarnation[block] = incarnation
        expired = 0
        for digest, seen in newest.items():
            internal = seen.tombstone and not seen.durable
            older = seen.copies - (0 if internal else 1)
            if internal and older == 0:
                continue  # nothing left to bury; its bytes are already dead
            if not seen.tombstone and older == 0 and now_s is not None and seen.meta.expired(now_s):
                self._ghosts[digest] = 1  # its only copy (with older ones it waits for nsup to bury it)
                expired += 1
                continue
            entry = _Entry(seen.meta, seen.seq, seen.block, seen.offset, seen.size, older)
            pid = partition_id(digest)
            (self._tombs if internal else self._buried if seen.tombstone else self._index)[pid][digest] = entry
            self._used[seen.block] += seen.size
            self._used_total += seen.size
        self._seq = max([*incarnations.values(), *(s.seq for s in newest.values()), 0]) + 1
        for block in incarnations:
            self._maybe_queue(block)
        log.info("%s: cold start found %d records, %d durable and %d internal tombstones, dropped %d expired, "
                 "%d of %d wblocks in use", self.path, self.record_count(), self._buried_count(),
                 sum(map(len, self._tombs)), expired, len(incarnations), self.n_blocks)

    # -- the log ---------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq - 1

    def _append(self, digest: bytes, meta: RecordMeta, payload: bytes | memoryview, seq: int,
                tombstone: bool, durable: bool, keep_free: int) -> tuple[int, int, int]:
        """Append one entry to the write buffer -> (wblock, offset, size). Opening a new
        wblock must leave more than `keep_free` free ones, else OutOfSpace."""
        set_name = meta.set_name.encode()
        size = layout.entry_size(set_name, len(payload))
        if size > self.write_block_size - layout.BLOCK_HEADER_SIZE:
            raise RecordTooBig(f"record of {size} bytes does not fit a {self.write_block_size}-byte write block")
        if self._open is None or self._fill + size > self.write_block_size:
            self._roll_over(keep_free)
        block, offset = self._open, self._fill
        layout.write_entry(self._buf, offset, layout.crc_seed(self._incarnation[block]), seq, digest, meta,
                           set_name, payload, tombstone, durable)
        self._fill += size
        self.appended += 1
        self._used[block] += size
        self._used_total += size
        return block, offset, size

    def _roll_over(self, keep_free: int) -> None:
        """Close the open wblock (if any) and open the next free one."""
        if len(self._free) <= keep_free:
            raise OutOfSpace(f"{self.path}: {len(self._free)} free wblocks, "
                             f"{self.defrag_reserve_wblocks} are reserved for defrag")
        if self._open is not None:
            self._write_buffer()
            closed, self._open = self._open, None
            self._state[closed] = CLOSED
            self.wblocks_written += 1
            if self._cache_wblocks:
                self._cached[closed] = bytes(self._buf)
                if len(self._cached) > self._cache_wblocks:
                    self._cached.popitem(last=False)
            self._maybe_queue(closed)
        block = self._free.popleft()
        incarnation = self._next_seq()
        self._state[block] = OPEN
        self._incarnation[block] = incarnation
        self._buf[: layout.BLOCK_HEADER_SIZE] = layout.pack_block_header(incarnation)
        self._open, self._fill, self._written = block, layout.BLOCK_HEADER_SIZE, 0

    def _write_buffer(self) -> None:
        if self._open is not None and self._fill > self._written:
            with memoryview(self._buf) as view:
                os.pwrite(self._fd, view[self._written : self._fill], self._block_pos(self._open) + self._written)
            self._written = self._fill

    def _kill(self, entry: _Entry) -> None:
        """`entry`'s bytes are no longer live."""
        self._used[entry.block] -= entry.size
        self._used_total -= entry.size
        self._maybe_queue(entry.block)

    def _maybe_queue(self, block: int) -> None:
        if self._state[block] == CLOSED and self._used[block] < self._lwm_bytes:
            self._state[block] = QUEUED
            self._defrag_q.append(block)

    def _persist(self, sync: bool) -> None:
        """Write out the buffer, then free the vacated wblocks whose copies that wrote."""
        mark = self.start_commit()
        if self._vacated:
            self._release_vacated()
        elif sync:
            self.sync()
        else:
            return
        self.finish_commit(mark)

    def _release_vacated(self) -> None:
        # The copies must be durable before the originals' headers are zeroed. This sync also
        # makes the previous batch's zeroed headers durable, which is what a tombstone freed
        # by that batch relies on before its own wblock can be zeroed in this one.
        os.fdatasync(self._fd)
        vacated, self._vacated = self._vacated, []
        for v in vacated:
            os.pwrite(self._fd, layout.FREE_BLOCK_HEADER, self._block_pos(v.block))
        for v in vacated:
            self._state[v.block] = FREE
            self._free.append(v.block)
            for digest in v.dead_copies:
                self._forget_copy(digest)

    def _forget_copy(self, digest: bytes) -> None:
        """One superseded lasting entry of `digest` has left the device."""
        entry = self._current(digest)
        if entry is None:
            left = self._ghosts.pop(digest) - 1
            if left:
                self._ghosts[digest] = left
            return
        entry.older -= 1
        tombs = self._tombs[partition_id(digest)]
        if entry.older == 0 and tombs.get(digest) is entry:
            del tombs[digest]  # no older copy remains for it to hide
            self._kill(entry)

    # -- defrag ----------------------------------------------------------------------------

    def _defrag(self) -> None:
        for _ in range(self.defrag_wblocks_per_tick):
            if not self._defrag_q:
                return
            block = self._defrag_q[0]
            room = self.write_block_size - self._fill if self._open is not None else 0
            if not self._free and self._used[block] > room:
                return  # nowhere to put the copies until something is freed
            self._defrag_q.popleft()
            self._defrag_block(block)

    def _defrag_block(self, block: int) -> None:
        self._state[block] = VACATED
        image = self._cached.pop(block, None)
        if image is None:
            image = os.pread(self._fd, self.write_block_size, self._block_pos(block))
        image = memoryview(image)
        self.defrag_reads += 1
        dead: list[bytes] = []
        for offset, _size, seq, digest, flags, payload in layout.scan_entries(
                image, layout.crc_seed(self._incarnation[block])):
            tombstone = bool(flags & layout.FLAG_TOMBSTONE)
            durable = tombstone and bool(flags & layout.FLAG_DURABLE)
            current = self._current(digest)
            if current is not None and current.block == block and current.offset == offset:
                # still indexed: the index's meta is this entry's
                moved = self._append(digest, current.meta, payload, seq, tombstone, durable, keep_free=0)
                self._kill(current)
                current.block, current.offset, current.size = moved
            elif durable or not tombstone:  # lasting (DiskEntry.lasting)
                dead.append(digest)
        if self._used[block]:
            # The index points at bytes the scan could not verify: keep the wblock rather
            # than free what reads still need, and say so.
            log.error("%s: wblock %d has %d live bytes past a corrupt entry; not freeing it",
                      self.path, block, self._used[block])
            self._state[block] = CLOSED
            return
        self._vacated.append(_Vacated(block, dead))

    def _compact_emptiest(self) -> bool:
        """Defrag the closed wblock with the fewest live bytes, lwm or not, right now.

        Deletes need room for their tombstones. When every wblock is above the lwm and only
        defrag's last free wblock is left, this is the one way to get it: a wblock that is
        not completely live gives back its dead bytes. False if there is none such.
        """
        closed = [b for b in range(self.n_blocks) if self._state[b] in (CLOSED, QUEUED)]
        if not closed or not self._free:
            return False
        block = min(closed, key=self._used.__getitem__)
        if self._used[block] >= self.write_block_size - layout.BLOCK_HEADER_SIZE:
            return False
        if self._state[block] == QUEUED:
            self._defrag_q.remove(block)
        self._defrag_block(block)
        self._persist(sync=False)  # frees the vacated wblock, which syncs the copies first
        return True

    def _current(self, digest: bytes) -> _Entry | None:
        """The indexed entry of `digest`: record, durable or internal tombstone."""
        pid = partition_id(digest)
        return self._index[pid].get(digest) or self._buried[pid].get(digest) or self._tombs[pid].get(digest)

    # -- StorageEngine ---------------------------------------------------------------------

    def _payload(self, entry: _Entry) -> bytes:
        block = entry.block
        image = self._buf if block == self._open else self._cached.get(block)
        if image is not None:
            self.cache_reads += 1
            offset, seed = entry.offset, None
        else:
            self.device_reads += 1
            image = os.pread(self._fd, entry.size, self._block_pos(block) + entry.offset)
            offset, seed = 0, layout.crc_seed(self._incarnation[block])
        payload = layout.read_payload(image, offset, seed, entry.seq)
        if payload is None:
            raise CorruptRecord(f"{self.path}: entry at wblock {block} offset {entry.offset} does not verify")
        return payload

    def _expire(self, digest: bytes, entry: _Entry) -> None:
        if entry.older:
            # Older versions are still on the device and only this expired one hides them
            # from a cold start: it needs a tombstone before its space may go.
            try:
                self._tombstone(digest, entry.meta, durable=False)
            except OutOfSpace:
                return  # stays indexed (and invisible); the next sweep retries
        else:
            del self._index[partition_id(digest)][digest]
            self._kill(entry)
            self._ghosts[digest] = 1

    def put(self, digest: bytes, meta: RecordMeta, payload: bytes) -> None:
        check_digest(digest)
        if self.truncated(meta):
            return
        seq = self._next_seq()
        block, offset, size = self._append(digest, meta, payload, seq, tombstone=False, durable=False,
                                             keep_free=self.defrag_reserve_wblocks)
        older = self._supersede(digest)
        self._index[partition_id(digest)][digest] = _Entry(meta, seq, block, offset, size, older)

    def delete(self, digest: bytes) -> bool:
        old = self._index[partition_id(digest)].get(digest)
        if old is None:
            return False
        self._tombstone(digest, old.meta, durable=False)
        return True

    def bury(self, digest: bytes, meta: RecordMeta) -> None:
        check_digest(digest)
        if self.truncated(meta):
            return
        self._tombstone(digest, tombstone_meta(meta), durable=True)

    def _unbury(self, digest: bytes) -> None:
        # an internal tombstone over it: a cold start finds no durable one to bring back
        self._tombstone(digest, self._buried[partition_id(digest)][digest].meta, durable=False)

    def drop_partition(self, pid: int) -> int:
        dropped = 0
        for part in (self._index[pid], self._buried[pid]):
            for digest, entry in part.items():
                self._kill(entry)
                self._ghosts[digest] = entry.older + 1  # the entry itself is lasting
            dropped += len(part)
            part.clear()
        for digest, entry in self._tombs[pid].items():
            self._kill(entry)
            if entry.older:
                self._ghosts[digest] = entry.older
        self._tombs[pid].clear()
        return dropped

    def _tombstone(self, digest: bytes, meta: RecordMeta, durable: bool) -> None:
        """Replace whatever `digest` holds with a tombstone (internal: delete and nsup).
        Tombstones may use the defrag reserve but its last wblock."""
        seq = self._next_seq()
        try:
            moved = self._append(digest, meta, b"", seq, tombstone=True, durable=durable, keep_free=1)
        except OutOfSpace:
            if not self._compact_emptiest():
                raise
            moved = self._append(digest, meta, b"", seq, tombstone=True, durable=durable, keep_free=1)
        # Only now look at what it supersedes: compaction may have moved or retired it.
        older = self._supersede(digest)
        (self._buried if durable else self._tombs)[partition_id(digest)][digest] = _Entry(meta, seq, *moved, older)

    def _supersede(self, digest: bytes) -> int:
        """Take whatever the index holds for `digest` out of it, its bytes now dead -> the
        `older` count of the entry that replaces it."""
        pid = partition_id(digest)
        old = self._index[pid].pop(digest, None) or self._buried[pid].pop(digest, None)  # in one at most
        if old is not None:
            self._kill(old)
            return old.older + 1  # a record or durable tombstone is itself lasting
        old = self._tombs[pid].pop(digest, None)
        if old is not None:
            self._kill(old)
            return old.older
        return self._ghosts.pop(digest, 0)

    def tick(self, now_ms: int) -> None:
        self._expire_some(now_ms // 1000)
        self._defrag()
        if self._vacated:
            self._persist(sync=False)
        elif self._fill > self._written:
            if self._dirty_since_ms is None or now_ms < self._dirty_since_ms:
                self._dirty_since_ms = now_ms
            if now_ms - self._dirty_since_ms >= self.flush_max_ms:
                self._persist(sync=False)  # what must be durable is committed by its owner

    def space_pct(self) -> tuple[float, float]:
        total = self.filesize
        return self._used_total * 100 / total, len(self._free) * self.write_block_size * 100 / total

    def stats(self) -> StorageStats:
        total = self.filesize
        return StorageStats(
            total_bytes=total,
            used_bytes=self._used_total,
            used_pct=self._used_total * 100 / total,
            avail_pct=len(self._free) * self.write_block_size * 100 / total,
            free_wblocks=len(self._free),
            defrag_queue=len(self._defrag_q),
            wblocks_written=self.wblocks_written,
            defrag_reads=self.defrag_reads,
            cache_reads=self.cache_reads,
            device_reads=self.device_reads,
            objects=self.record_count(),
            tombstones=self._buried_count() + sum(map(len, self._tombs)),
        )

    def flush(self) -> None:
        """Write out everything buffered and fdatasync it."""
        self._persist(sync=True)

    # -- commits (commit-to-device) ----------------------------------------------------------

    def commit(self) -> None:
        """Make every write so far durable, here and now."""
        mark = self.start_commit()
        self.sync()
        self.finish_commit(mark)

    def start_commit(self) -> int:
        """Write out the buffer (the owner's thread) -> the mark to pass to finish_commit."""
        self._write_buffer()
        self._dirty_since_ms = None
        return self.appended

    def sync(self) -> None:
        """fdatasync: the one part of a commit that may run in another thread."""
        os.fdatasync(self._fd)

    def finish_commit(self, mark: int) -> None:
        self.committed = max(self.committed, mark)

    def close(self) -> None:
        if self._fd is None:
            return
        self.flush()
        os.close(self._fd)
        self._fd = None

    # -- diagnostics -----------------------------------------------------------------------

    def verify(self) -> list[str]:
        """Flush, re-scan the file as a cold start would, and list every disagreement with
        the in-memory index and accounting (empty = consistent). Reads the whole device."""
        self.flush()
        incarnations, newest = self._scan()
        problems = []
        in_use = {b for b in range(self.n_blocks) if self._state[b] != FREE}
        if set(incarnations) != in_use:
            problems.append(f"wblocks in use on disk {sorted(incarnations)} != in memory {sorted(in_use)}")
        used = [0] * self.n_blocks
        kinds: dict[bytes, list[str]] = {}  # digest -> the index structures holding it
        for kind, parts in (("record", self._index), ("durable", self._buried), ("internal", self._tombs)):
            for pid, part in enumerate(parts):
                for digest, entry in part.items():
                    used[entry.block] += entry.size
                    kinds.setdefault(digest, []).append(kind)
                    if partition_id(digest) != pid:
                        problems.append(f"{digest.hex()}: indexed in partition {pid}")
        if used != self._used or sum(used) != self._used_total:
            problems.append("live bytes per wblock disagree with the index")
        for digest in set(newest) | set(self._ghosts) | set(kinds):
            seen, entry = newest.get(digest), self._current(digest)
            kind = kinds.get(digest, [None])
            if len(kind) > 1:
                problems.append(f"{digest.hex()}: indexed as {kind} at once")
            counted = self._ghosts.get(digest, 0) if entry is None else entry.older + (kind[0] != "internal")
            on_disk = seen.copies if seen else 0
            if counted != on_disk:
                problems.append(f"{digest.hex()}: {counted} lasting copies counted, {on_disk} on disk")
            if entry is not None and digest in self._ghosts:
                problems.append(f"{digest.hex()}: indexed and a ghost at once")
            if entry is not None and (seen is None or (seen.block, seen.offset) != (entry.block, entry.offset)):
                problems.append(f"{digest.hex()}: the index and the newest entry on disk differ")
            elif entry is not None and kind[0] != ("durable" if seen.durable else "internal" if seen.tombstone
                                                   else "record"):
                problems.append(f"{digest.hex()}: indexed as {kind[0]} but the newest entry on disk is not")
        return problems
