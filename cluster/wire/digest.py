"""Record digests and partition ids.

digest = RIPEMD-160(set name || key particle type || key bytes); the namespace is not part
of it. The partition id is the first two digest bytes read little-endian, masked to 4096.
"""

import hashlib
import struct

from .particles import ParticleType

N_PARTITIONS = 4096

try:  # OpenSSL builds may drop RIPEMD-160; pycryptodome always has it.
    hashlib.new("ripemd160")

    def ripemd160(data: bytes) -> bytes:
        return hashlib.new("ripemd160", data).digest()

except ValueError:  # pragma: no cover - depends on the OpenSSL build
    from Crypto.Hash import RIPEMD160

    def ripemd160(data: bytes) -> bytes:
        return RIPEMD160.new(data).digest()


def key_particle(key: object) -> tuple[int, bytes]:
    """The (particle type, bytes) a user key contributes to its digest and to field 2."""
    if isinstance(key, bool):
        raise TypeError("bool is not a valid record key")
    if isinstance(key, int):
        return ParticleType.INTEGER, struct.pack(">q", key)
    if isinstance(key, float):
        return ParticleType.FLOAT, struct.pack(">d", key)
    if isinstance(key, str):
        return ParticleType.STRING, key.encode("utf-8")
    if isinstance(key, bytes | bytearray | memoryview):
        return ParticleType.BLOB, bytes(key)
    raise TypeError(f"record keys must be int, float, str or bytes, not {type(key).__name__}")


def compute_digest(set_name: str, key: object) -> bytes:
    ptype, data = key_particle(key)
    return ripemd160(set_name.encode("utf-8") + bytes((ptype,)) + data)


def partition_id(digest: bytes) -> int:
    return (digest[0] | digest[1] << 8) & (N_PARTITIONS - 1)
