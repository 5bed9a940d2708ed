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


class ProtoError(AerospikeError):
    """A frame that cannot be accepted; the connection carrying it must be closed."""

    def __init__(self, message: str):
        super().__init__(ResultCode.PARAMETER, message)


def pack_header(msg_type: int, body_len: int) -> bytes:
    return _U64.pack((VERSION << 56) | (msg_type << 48) | body_len)


def frame(msg_type: int, body: bytes) -> bytes:
    return pack_header(msg_type, len(body)) + body


def unpack_header(header: bytes) -> tuple[int, int]:
    """Return (type, body length) or raise ProtoError for a frame we refuse."""
    (word,) = _U64.unpack(header)
    version = word >> 56
    msg_type = (word >> 48) & 0xFF
    size = word & _SIZE_MASK
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
