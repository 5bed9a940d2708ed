"""Fabric messages of the data plane: replica writes, migration, proxying.

They share the membership codec (messages.py). Message codes 40-59; names follow the
real server's operations (migrate, replica write, duplicate resolution, proxy), but a migration carries records in
batches (`MigrateRecords`) rather than one INSERT per record: in Python the per-message
cost would otherwise dominate the migration rate.
"""

from .messages import _message
from .records import RecordImage

# MigrateStartAck.status
START_OK, START_EAGAIN, START_FAIL = 0, 1, 2


@_message(40)
class ReplWrite:
    src: int
    cluster_key: int
    namespace: str
    tid: int
    image: RecordImage


@_message(41)
class ReplWriteAck:
    src: int
    tid: int
    result: int


@_message(42)
class MigrateStart:
    src: int
    cluster_key: int
    emig_id: int
    namespace: str
    pid: int
    kind: str


@_message(43)
class MigrateStartAck:
    src: int
    cluster_key: int
    emig_id: int
    status: int


@_message(44)
class MigrateRecords:
    src: int
    cluster_key: int
    emig_id: int
    seq: int
    records: tuple[RecordImage, ...]


@_message(45)
class MigrateRecordsAck:
    src: int
    cluster_key: int
    emig_id: int
    seq: int


@_message(46)
class MigrateDone:
    src: int
    cluster_key: int
    emig_id: int


@_message(47)
class MigrateDoneAck:
    src: int
    cluster_key: int
    emig_id: int


@_message(48)
class MigrateAllDone:
    src: int
    cluster_key: int
    namespace: str
    pid: int


@_message(49)
class MigrateAllDoneAck:
    src: int
    cluster_key: int
    namespace: str
    pid: int


@_message(50)
class ProxyRequest:
    """A client's AS_MSG body forwarded to the node that serves its partition."""

    src: int
    tid: int
    hops: int
    timeout_ms: int
    body: bytes


@_message(51)
class ProxyResponse:
    src: int
    tid: int
    reply: bytes


@_message(52)
class DupRequest:
    """Duplicate resolution: the working master asks a duplicate holder for its copy."""

    src: int
    tid: int
    namespace: str
    digest: bytes


@_message(53)
class DupResponse:
    src: int
    tid: int
    images: tuple[RecordImage, ...]  # empty: no copy (or an expired one)


MIGRATION_MESSAGES = (MigrateStart, MigrateStartAck, MigrateRecords, MigrateRecordsAck, MigrateDone,
                      MigrateDoneAck, MigrateAllDone, MigrateAllDoneAck)
