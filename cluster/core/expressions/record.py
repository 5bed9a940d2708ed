"""What an expression reads of one record: metadata at once, bins and key on first use."""

from cluster.core import bins as binops
from cluster.core.bins import Bins
from cluster.core.records import RecordImage
from cluster.storage.record import CITRUSLEAF_EPOCH, RecordMeta


class RecordView:
    """One record as a filter or an expression op sees it.

    Built per record (a scan makes one per record it visits), so it only keeps references:
    the payload is decoded the first time an expression reads a bin or the key.
    """

    __slots__ = ("digest", "generation", "void_time", "lut", "set_name", "size", "tombstone", "now_ms",
                 "in_memory", "_payload", "_bins", "_key", "vars")

    def __init__(self, digest: bytes, meta: RecordMeta | RecordImage, payload: bytes, now_ms: int,
                 in_memory: bool = False, bins: Bins | None = None, tombstone: bool = False):
        self.digest = digest
        self.generation, self.void_time, self.lut, self.set_name = (meta.generation, meta.void_time, meta.lut,
                                                                    meta.set_name)
        self.size = len(payload)  # the stored size: record_size() and friends
        self.tombstone = tombstone
        self.now_ms = now_ms
        self.in_memory = in_memory
        self._payload = payload
        self._bins = bins  # a write's bins as its earlier ops left them
        self._key: tuple[int, bytes] | None | bool = False  # False: not decoded yet
        self.vars: list = []  # let-variables of the evaluation in progress

    @classmethod
    def of_write(cls, record_bins: Bins, record: RecordImage | None, now_ms: int) -> "RecordView":
        """The record a write's expression op sees: its bins as the earlier ops left them, the
        metadata of the stored copy (none yet when the write creates the record)."""
        if record is None:
            return cls(b"", _NEW_RECORD, b"", now_ms, bins=record_bins)
        return cls(record.digest, record, record.payload, now_ms, bins=record_bins)

    @property
    def bins(self) -> Bins:
        if self._bins is None:
            self._bins, self._key = binops.decode_payload(self._payload)
        return self._bins

    @property
    def key(self) -> tuple[int, bytes] | None:
        """(particle type, bytes) of the stored key, None if the client did not store one."""
        if self._key is False:
            if self._bins is None:
                self._bins, self._key = binops.decode_payload(self._payload)
            else:  # a write's view: its bins are the write's, the key the stored one
                self._key = binops.decode_payload(self._payload)[1] if self._payload else None
        return self._key

    # metadata in the units the server's expressions use

    def last_update_ns(self) -> int:
        return (self.lut + CITRUSLEAF_EPOCH * 1000) * 1_000_000

    def since_update_ms(self) -> int:
        return max(self.now_ms - self.lut, 0)

    def void_time_ns(self) -> int:
        return -1 if self.void_time == 0 else (self.void_time + CITRUSLEAF_EPOCH) * 1_000_000_000

    def ttl(self) -> int:
        """Seconds left; -1 never expires; at least 1 while the record is still there."""
        if self.void_time == 0:
            return -1
        now_s = self.now_ms // 1000
        return self.void_time - now_s if self.void_time > now_s else 1


_NEW_RECORD = RecordMeta(1, 0, 0, "")
