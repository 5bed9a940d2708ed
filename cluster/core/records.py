"""Whole-record images as replication and migration ship them, and conflict resolution.

An image is everything a node needs to hold a copy of a record: its metadata and its
opaque payload, or a durable tombstone (a delete that must win over stale copies elsewhere,
so that what was deleted stays deleted when copies merge).

Conflict resolution (Aerospike's as_record_resolve_conflict) decides whether an incoming copy replaces the local one:

* ``generation`` (the namespace default): higher generation wins, compared as plain
  integers on purpose (after a split the side with more history wins); tie → later LUT;
* ``last-update-time``: later LUT wins; tie → higher generation, compared with wrap-around;
* an exact tie keeps the local copy; an absent (or expired) local copy always loses.

Replica writes use last-update-time whatever the namespace says, as the real server does:
the master's copy is the newest by construction.
"""

from typing import NamedTuple

from cluster.storage.engine import StorageEngine
from cluster.storage.record import RecordMeta

GENERATION, LAST_UPDATE_TIME = "generation", "last-update-time"
# RecordImage.tombstone: a record, a durable delete (kept, so it wins when copies merge), or a
# non-durable delete (the record just goes; replica writes ship it, nothing keeps it)
LIVE, DURABLE, ERASED = 0, 1, 2
POLICIES = (GENERATION, LAST_UPDATE_TIME)


class RecordImage(NamedTuple):
    digest: bytes
    generation: int
    void_time: int
    lut: int
    set_name: str
    payload: bytes  # empty for a tombstone
    tombstone: int  # LIVE, DURABLE or ERASED (an int so it travels through the message codec as is)

    @property
    def meta(self) -> RecordMeta:
        return RecordMeta(self.generation, self.void_time, self.lut, self.set_name)


def _generation_older(a: int, b: int) -> bool:
    """a < b with 16-bit wrap-around."""
    return (a - b) & 0xFFFF >= 0x8000


def remote_wins(policy: str, local: RecordMeta, remote: RecordMeta) -> bool:
    if policy == GENERATION:
        return (remote.generation, remote.lut) > (local.generation, local.lut)
    if remote.lut != local.lut:
        return remote.lut > local.lut
    return _generation_older(local.generation, remote.generation)


def image_of(storage: StorageEngine, digest: bytes, now_s: int) -> RecordImage | None:
    """The current copy of a record or tombstone; None if absent or expired."""
    found = storage.lookup(digest)
    if found is None:
        return None
    meta, tombstone = found
    if tombstone:
        return RecordImage(digest, meta.generation, 0, meta.lut, meta.set_name, b"", 1)
    live = storage.get(digest, now_s)
    if live is None:
        return None
    meta, payload = live
    return RecordImage(digest, meta.generation, meta.void_time, meta.lut, meta.set_name, payload, 0)


def apply_if_better(storage: StorageEngine, image: RecordImage, policy: str, now_s: int) -> bool:
    """Store the incoming copy if it wins; True if it did. An expired incoming record is dropped."""
    if not image.tombstone and image.void_time and image.void_time < now_s:
        return False
    found = storage.lookup(image.digest)
    if found is not None:
        meta, tombstone = found
        expired = not tombstone and meta.void_time and meta.void_time < now_s
        if not expired and not remote_wins(policy, meta, image.meta):
            return False
    store(storage, image)
    return True


def store(storage: StorageEngine, image: RecordImage) -> None:
    """Keep this copy of the record (or its tombstone), whatever is there; an ERASED image
    removes the record."""
    if image.tombstone == ERASED:
        storage.delete(image.digest)
    elif image.tombstone:
        storage.bury(image.digest, image.meta)
    else:
        storage.put(image.digest, image.meta, image.payload)
