"""The 8-byte proto header that frames every message, and type-4 compression.

Header = one big-endian u64: version (2) << 56 | type << 48 | body length.
"""

import struct
import zlib

from .result_codes import AerospikeError, ResultCode

VERSION = 2
TYPE_INFO = 1
TYPE_ADMIN = 2
TYPE_MSG = 3
TYPE_COMPRESSED = 4
KNOWN_TYPES = frozenset({TYPE_INFO, TYPE_ADMIN, TYPE_MSG, TYPE_COMPRESSED})

HEADER_SIZE = 8
MAX_BODY = 128 * 1024 * 1024  # PROTO_SIZE_MAX on both sides

_U64 = struct.Struct(">Q")
_SIZE_MASK = (1 << 48) - 1
_pack_u64, _unpack_u64 = _U64.pack, _U64.unpack
_VERSION_BITS = VERSION << 56
# (version << 8 | type) of every frame we accept: checked with one set lookup
_GOOD_VERSION_TYPES = frozenset((VERSION << 8) | t for t in KNOWN_TYPES)


class ProtoError(AerospikeError):
    """A frame that cannot be accepted; the connection carrying it must be closed."""

    def __init__(self, message: str):
        super().__init__(ResultCode.PARAMETER, message)


def pack_header(msg_type: int, body_len: int) -> bytes:
    return _pack_u64(_VERSION_BITS | (msg_type << 48) | body_len)


def frame(msg_type: int, body: bytes) -> bytes:
    return _pack_u64(_VERSION_BITS | (msg_type << 48) | len(body)) + body


_MSG_BITS = _VERSION_BITS | (TYPE_MSG << 48)
_unpack_u64_from = _U64.unpack_from


def is_one_msg_frame(data: bytes) -> bool:
    """`data` is exactly one acceptable AS_MSG frame with a body (the service's fast path):
    one comparison of the header against the frame we expect."""
    size = len(data) - HEADER_SIZE
    return 0 < size <= MAX_BODY and _unpack_u64_from(data)[0] == _MSG_BITS | size


def unpack_header(header: bytes) -> tuple[int, int]:
    """Return (type, body length) or raise ProtoError for a frame we refuse."""
    (word,) = _unpack_u64(header)
    size = word & _SIZE_MASK
    version_type = word >> 48
    if version_type in _GOOD_VERSION_TYPES and size <= MAX_BODY:
        return version_type & 0xFF, size
    version = word >> 56
    msg_type = version_type & 0xFF
    if version != VERSION:
        raise ProtoError(f"bad proto version {version}")
    if msg_type not in KNOWN_TYPES:
        raise ProtoError(f"unknown proto type {msg_type}")
    if size > MAX_BODY:
        raise ProtoError(f"proto body of {size} bytes exceeds {MAX_BODY}")
    return msg_type, size


def decompress(body: bytes) -> tuple[int, bytes]:
    """Unwrap a type-4 body: u64 inner size, then zlib(inner proto header + body)."""
    if len(body) < 8:
        raise ProtoError("compressed frame shorter than its size prefix")
    (inner_size,) = _U64.unpack_from(body)
    if inner_size > MAX_BODY + HEADER_SIZE or inner_size < HEADER_SIZE:
        raise ProtoError(f"compressed frame claims {inner_size} inner bytes")
    inflater = zlib.decompressobj()
    try:
        inner = inflater.decompress(body[8:], inner_size + 1)
    except zlib.error as exc:
        raise ProtoError(f"bad zlib stream: {exc}") from None
    if len(inner) != inner_size:
        raise ProtoError(f"compressed frame inflated to {len(inner)} bytes, expected {inner_size}")
    msg_type, size = unpack_header(inner[:HEADER_SIZE])
    if msg_type != TYPE_MSG or size != inner_size - HEADER_SIZE:
        raise ProtoError("compressed frame does not hold exactly one AS_MSG")
    return msg_type, inner[HEADER_SIZE:]


def compress(msg_type: int, body: bytes) -> bytes:
    """Wrap one frame as a type-4 frame (our client's `compress` policy)."""
    inner = frame(msg_type, body)
    packed = _U64.pack(len(inner)) + zlib.compress(inner)
    return frame(TYPE_COMPRESSED, packed)
