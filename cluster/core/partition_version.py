"""A partition version: what one node's copy of one partition is (AP mode; as_partition_version in Aerospike's fabric/partition.h).

Packed into 64 bits as Aerospike does, so it travels in the exchange as a plain integer:

    bits 63..16  ckey    low 48 bits of the cluster key of the rebalance that set it; 0 = no data
    bits 15..12  family  lineage within that ckey; 15 = "unique", a copy with no known lineage
    bit  2       master  this copy was (acting or final) working master
    bit  1       subset  this copy may be missing records
    bit  0       evade   this copy was created empty while others had data

Two copies with the same (ckey, family) share a lineage: a full one holds every record a
subset one holds. A node that restarts cannot know whether it missed writes, so every copy
it finds on disk becomes "isolated": master cleared, subset set, family unique.
"""

from typing import NamedTuple

CKEY_MASK = (1 << 48) - 1
FAMILY_UNIQUE = 15
_MASTER, _SUBSET, _EVADE = 4, 2, 1

NO_VERSION = 0


class Version(NamedTuple):
    ckey: int = 0
    family: int = 0
    master: bool = False
    subset: bool = False
    evade: bool = False

    @property
    def has_data(self) -> bool:
        return self.ckey != 0

    @property
    def lineage(self) -> tuple[int, int]:
        return self.ckey, self.family

    @property
    def full(self) -> bool:
        return self.has_data and not self.subset and not self.evade

    def score(self) -> int:
        """How good a source of data this copy is when no copy carries the master flag."""
        return {(False, False): 3, (True, False): 2, (False, True): 1, (True, True): 0}[self.subset, self.evade]

    def pack(self) -> int:
        return (self.ckey << 16 | self.family << 12 | self.master * _MASTER | self.subset * _SUBSET
                | self.evade * _EVADE)

    def __str__(self) -> str:
        if not self.has_data:
            return "0"
        family = "U" if self.family == FAMILY_UNIQUE else str(self.family)
        flags = "".join(c if on else "-" for c, on in (("m", self.master), ("s", self.subset), ("e", self.evade)))
        return f"{self.ckey:012X}.{family}.{flags}"


def unpack(value: int) -> Version:
    return Version(value >> 16 & CKEY_MASK, value >> 12 & 0xF, bool(value & _MASTER), bool(value & _SUBSET),
                   bool(value & _EVADE))


def version_ckey(cluster_key: int) -> int:
    """The 48 bits of a cluster key a version keeps (never 0, which means "no data")."""
    return cluster_key & CKEY_MASK or 1


ISOLATED = Version(1, FAMILY_UNIQUE, subset=True)  # a copy found on disk at start-up
