"""Record keys as callers write them: (namespace, set, user_key) or (namespace, set, None, digest)."""

from dataclasses import dataclass

from cluster.wire.digest import compute_digest, key_particle, partition_id

from .errors import ParamError


@dataclass(frozen=True, slots=True)
class Key:
    namespace: str
    set_name: str
    user_key: object
    digest: bytes

    @classmethod
    def of(cls, key: tuple) -> "Key":
        if not isinstance(key, tuple) or len(key) not in (3, 4):
            raise ParamError(f"a key is (namespace, set, key[, digest]), not {key!r}")
        namespace, set_name, user_key, *rest = key
        if not isinstance(namespace, str) or not namespace:
            raise ParamError("key namespace must be a non-empty string")
        set_name = set_name or ""
        if user_key is not None:
            try:
                return cls(namespace, set_name, user_key, compute_digest(set_name, user_key))
            except TypeError as exc:
                raise ParamError(str(exc)) from None
        digest = rest[0] if rest else None
        if not isinstance(digest, bytes | bytearray) or len(digest) != 20:
            raise ParamError("a key without a user key needs a 20-byte digest")
        return cls(namespace, set_name, None, bytes(digest))

    @property
    def partition_id(self) -> int:
        return partition_id(self.digest)

    def key_field(self) -> bytes:
        """Field 2 (policy key=send): particle type byte, then the key bytes."""
        ptype, data = key_particle(self.user_key)
        return bytes((ptype,)) + data

    def as_tuple(self) -> tuple:
        """The shape the official client returns: (ns, set or None, user key or None, bytearray digest)."""
        return self.namespace, self.set_name or None, self.user_key, bytearray(self.digest)
