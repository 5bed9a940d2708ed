"""Byte layout of a device file (all integers little-endian).

    file    | file header, FILE_HEADER_SIZE (4 KiB) | wblock 0 | wblock 1 | ...
    header  | magic "RCDEVICE" | u32 version | u32 write-block-size | u64 filesize | u32 crc32
    wblock  | block header (16 B) | entry | entry | ... | unused tail
    block   | magic "WBLK" | u64 incarnation | u32 crc32 of the previous 12 bytes
    header    (all zero = the wblock is free)
    entry   | magic "RCRD" | u32 crc32 | u64 seq | 20 B digest | u16 generation | u8 flags
            | u8 set-name length | u32 void-time | u64 lut | u32 payload length
            | set name | payload | zero padding to a 16-byte rblock boundary
    flags   | 0x01 tombstone (no payload) | 0x02 durable (only with 0x01): a cluster-level
            tombstone written by StorageEngine.bury (see device.py, "Tombstones")

Aerospike reserves 8 MiB for its header (device + per-partition metadata); ours holds only
the geometry, so 4 KiB is plenty.

An entry's CRC covers everything after the CRC field up to the end of the payload and is
seeded with the wblock's incarnation (a number that changes every time the wblock is
reused). So a torn entry fails the check, and so does whatever a previous use of the wblock
left beyond the current end: a scan stops at the first entry that does not verify.
"""

import struct
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from cluster.storage.record import RecordMeta

FILE_HEADER_SIZE = 4096
RBLOCK_SIZE = 16
VERSION = 1

_FILE_HEADER = struct.Struct("<8sIIQ")
_FILE_MAGIC = b"RCDEVICE"
_CRC = struct.Struct("<I")

BLOCK_HEADER = struct.Struct("<4sQ")
BLOCK_HEADER_SIZE = RBLOCK_SIZE  # header + its CRC fill exactly one rblock
_BLOCK_MAGIC = b"WBLK"
FREE_BLOCK_HEADER = bytes(BLOCK_HEADER_SIZE)

_ENTRY = struct.Struct("<4sIQ20sHBBIQI")
_ENTRY_MAGIC = b"RCRD"
_CRC_START = 8  # the CRC covers the entry from the seq field on
FLAG_TOMBSTONE = 0x01
# Added without a version bump: a reader that predates it takes a durable tombstone for an
# internal one, which still hides every older copy of its record.
FLAG_DURABLE = 0x02


def rblocks_bytes(n: int) -> int:
    return -(-n // RBLOCK_SIZE) * RBLOCK_SIZE


def crc_seed(incarnation: int) -> int:
    return (incarnation ^ (incarnation >> 32)) & 0xFFFF_FFFF


# -- file header ------------------------------------------------------------------------


def pack_file_header(write_block_size: int, filesize: int) -> bytes:
    head = _FILE_HEADER.pack(_FILE_MAGIC, VERSION, write_block_size, filesize)
    return (head + _CRC.pack(zlib.crc32(head))).ljust(FILE_HEADER_SIZE, b"\0")


def unpack_file_header(raw: bytes) -> tuple[int, int]:
    """-> (write_block_size, filesize); ValueError if this is not one of our device files."""
    if len(raw) < _FILE_HEADER.size + _CRC.size:
        raise ValueError("file is too short to hold a device header")
    magic, version, wbs, filesize = _FILE_HEADER.unpack_from(raw)
    (crc,) = _CRC.unpack_from(raw, _FILE_HEADER.size)
    if magic != _FILE_MAGIC or crc != zlib.crc32(raw[: _FILE_HEADER.size]):
        raise ValueError("not a refcluster device file (bad header magic or checksum)")
    if version != VERSION:
        raise ValueError(f"device file format version {version} is not supported (expected {VERSION})")
    return wbs, filesize


# -- wblock header ----------------------------------------------------------------------


def pack_block_header(incarnation: int) -> bytes:
    head = BLOCK_HEADER.pack(_BLOCK_MAGIC, incarnation)
    return head + _CRC.pack(zlib.crc32(head))


def block_incarnation(raw: bytes) -> int | None:
    """The incarnation stored in a wblock header, or None for a free (or garbled) wblock."""
    magic, incarnation = BLOCK_HEADER.unpack_from(raw)
    (crc,) = _CRC.unpack_from(raw, BLOCK_HEADER.size)
    if magic != _BLOCK_MAGIC or crc != zlib.crc32(raw[: BLOCK_HEADER.size]):
        return None
    return incarnation


# -- record entries ---------------------------------------------------------------------


@dataclass(slots=True)
class DiskEntry:
    offset: int  # within the wblock
    size: int  # bytes occupied, a multiple of RBLOCK_SIZE
    seq: int
    digest: bytes
    meta: RecordMeta
    tombstone: bool
    durable: bool  # a durable tombstone (tombstone is True too)
    payload: memoryview

    @property
    def lasting(self) -> bool:
        """Would a cold start index this entry on its own: a record or a durable tombstone
        (an internal tombstone is kept only while it has an older copy to hide)."""
        return self.durable or not self.tombstone


def entry_size(set_name: bytes, payload_len: int) -> int:
    return rblocks_bytes(_ENTRY.size + len(set_name) + payload_len)


def write_entry(buf: bytearray, offset: int, seed: int, seq: int, digest: bytes, meta: RecordMeta,
                set_name: bytes, payload: bytes | memoryview, tombstone: bool, durable: bool = False) -> int:
    """Encode one entry into `buf` at `offset` (padding included); return its size."""
    if durable and (not tombstone or payload):
        raise ValueError("only a tombstone (without payload) can be durable")
    flags = (FLAG_TOMBSTONE if tombstone else 0) | (FLAG_DURABLE if durable else 0)
    _ENTRY.pack_into(buf, offset, _ENTRY_MAGIC, 0, seq, digest, meta.generation, flags,
                     len(set_name), meta.void_time, meta.lut, len(payload))
    pos = offset + _ENTRY.size
    buf[pos : pos + len(set_name)] = set_name
    pos += len(set_name)
    end = pos + len(payload)
    buf[pos:end] = payload
    size = rblocks_bytes(end - offset)
    buf[end : offset + size] = bytes(offset + size - end)
    with memoryview(buf) as view:
        _CRC.pack_into(buf, offset + 4, zlib.crc32(view[offset + _CRC_START : end], seed))
    return size


def _verified(block: memoryview, offset: int, seed: int) -> tuple | None:
    """The header fields of the entry at `offset` and where its set name starts, if the
    entry verifies there (magic, bounds, CRC), else None (end of data or torn)."""
    if offset + _ENTRY.size > len(block):
        return None
    fields = _ENTRY.unpack_from(block, offset)
    magic, crc, _seq, _digest, _gen, _flags, set_len, _void_time, _lut, payload_len = fields
    end = offset + _ENTRY.size + set_len + payload_len
    if magic != _ENTRY_MAGIC or end > len(block) or zlib.crc32(block[offset + _CRC_START : end], seed) != crc:
        return None
    return fields


def parse_entry(block: memoryview, offset: int, seed: int) -> DiskEntry | None:
    """The entry at `offset`, or None if none verifies there (end of data or torn)."""
    fields = _verified(block, offset, seed)
    if fields is None:
        return None
    _magic, _crc, seq, digest, gen, flags, set_len, void_time, lut, payload_len = fields
    start = offset + _ENTRY.size
    end = start + set_len + payload_len
    set_name = sys.intern(str(block[start : start + set_len], "utf-8"))
    tombstone = bool(flags & FLAG_TOMBSTONE)
    return DiskEntry(offset, rblocks_bytes(end - offset), seq, bytes(digest),
                     RecordMeta(gen, void_time, lut, set_name), tombstone,
                     tombstone and bool(flags & FLAG_DURABLE), block[start + set_len : end])


def scan_entries(block: memoryview, seed: int) -> Iterator[tuple[int, int, int, bytes, int, memoryview]]:
    """(offset, size, seq, digest, flags, payload) of every entry of a wblock image, verified
    as iter_entries verifies them and stopping where it stops, without building a DiskEntry
    and RecordMeta for each: defrag's scan, which moves only the few still indexed (their
    metadata is the index's) and needs no more than the digest of the others."""
    offset = BLOCK_HEADER_SIZE
    while (fields := _verified(block, offset, seed)) is not None:
        _magic, _crc, seq, digest, _gen, flags, set_len, _void_time, _lut, payload_len = fields
        start = offset + _ENTRY.size + set_len
        size = rblocks_bytes(start + payload_len - offset)
        yield offset, size, seq, digest, flags, block[start : start + payload_len]
        offset += size


def read_payload(block: bytes | bytearray, offset: int, seed: int | None, seq: int) -> bytes | None:
    """The payload of the entry at `offset` if it verifies (as parse_entry; its CRC only when
    a `seed` is given) and carries sequence number `seq`, else None; a record read's fast
    path, building no DiskEntry."""
    if offset + _ENTRY.size > len(block):
        return None
    magic, crc, entry_seq, _digest, _gen, _flags, set_len, _void_time, _lut, payload_len = \
        _ENTRY.unpack_from(block, offset)
    start = offset + _ENTRY.size + set_len
    end = start + payload_len
    if magic != _ENTRY_MAGIC or entry_seq != seq or end > len(block):
        return None
    if seed is not None:
        with memoryview(block) as view:
            if zlib.crc32(view[offset + _CRC_START : end], seed) != crc:
                return None
    return bytes(block[start:end]) if type(block) is not bytes else block[start:end]


def iter_entries(block: memoryview, seed: int) -> Iterator[DiskEntry]:
    """Every entry of a wblock image, stopping at the first one that does not verify."""
    offset = BLOCK_HEADER_SIZE
    while (entry := parse_entry(block, offset, seed)) is not None:
        yield entry
        offset += entry.size
