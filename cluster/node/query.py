"""Which records of one partition a scan or an index query reads, and in what order.

A scan reads a partition in digest order and resumes after the digest the client saw last.
An index query (cluster/core/sindex.py) reads the records whose indexed value matches, in
(bval, digest) order, and resumes after the (bval, digest) the client saw last; it tests
every record of the partition rather than keeping an index, so what it returns is what an
index lookup returns. Both yield (digest, meta, payload, bval); bval is None for a scan.
"""

from collections.abc import Iterator

from cluster.core import bins as binops
from cluster.core.sindex import FIELD_BVAL_ARRAY, IndexDef, IndexQuery
from cluster.storage.engine import StorageEngine
from cluster.wire.digest import N_PARTITIONS
from cluster.wire.result_codes import AerospikeError, ResultCode

Resume = tuple[bytes | None, int | None]  # (digest, bval) the partition resumes after


def resume_bvals(fields: dict[int, bytes], n_digests: int, index_query: bool) -> list[int | None]:
    """The bvals (u64 little-endian, one per resume digest) an index query resumes after."""
    raw = fields.get(FIELD_BVAL_ARRAY)
    if raw is None:
        if index_query and n_digests:
            raise AerospikeError(ResultCode.PARAMETER, "an index query resuming by digest needs a bval array")
        return [None] * n_digests
    if not index_query or len(raw) != 8 * n_digests:
        raise AerospikeError(ResultCode.PARAMETER, "bval array does not match the digest array")
    return [int.from_bytes(raw[i:i + 8], "little", signed=True) for i in range(0, len(raw), 8)]


def scan_partition(storage: StorageEngine, pid: int, now_s: int, set_filter: str,
                   after: Resume) -> Iterator[tuple]:
    after_digest = after[0]
    for digest in storage.partition_digests(pid, now_s):
        if after_digest is not None and digest <= after_digest:
            continue
        found = storage.get(digest, now_s)
        if found is None or (set_filter and found[0].set_name != set_filter):
            continue
        yield digest, found[0], found[1], None


def query_partition(query: IndexQuery, storage: StorageEngine, pid: int, now_s: int, set_filter: str,
                    after: Resume) -> list[tuple]:
    matches = []
    for digest, meta, payload, _ in scan_partition(storage, pid, now_s, set_filter, (None, None)):
        bval = query.bval(binops.decode_payload(payload)[0])
        if bval is not None:
            matches.append((bval, digest, meta, payload))
    matches.sort(key=lambda m: (m[0], m[1]))
    after_digest, after_bval = after
    return [(digest, meta, payload, bval) for bval, digest, meta, payload in matches
            if after_digest is None or (bval, digest) > (after_bval, after_digest)]


def count_entries(index: IndexDef, storage: StorageEngine, now_s: int) -> int:
    """How many entries the index would hold for the records stored here (distinct values
    per record), for its `entries` statistic."""
    steps = index.steps()
    return sum(len(set(index.values(binops.decode_payload(payload)[0], steps)))
               for pid in range(N_PARTITIONS)
               for _d, _meta, payload, _ in scan_partition(storage, pid, now_s, index.set_name, (None, None)))
