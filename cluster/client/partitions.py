"""The partition map: for each namespace, which node holds each of the 4096 partitions.

Each node reports, per namespace, one bitmap per replica column (`replicas` info):

    <ns>:<regime>,<n_replicas>,<b64 column 0>,<b64 column 1>...;<ns2>:...

Column 0 marks the partitions the node masters, column i those where it is the i-th
prole. A bitmap is 4096 bits, most significant bit first. As in the official client a
slot changes only when some node claims it, so the map is the union of every node's
latest claims; slots of removed nodes are cleared explicitly.

The map is copied on write: the tend thread builds a new one and swaps it in, so
command threads read a consistent snapshot without locks.
"""

import base64
import binascii
from dataclasses import dataclass

from cluster.wire.digest import N_PARTITIONS

from .errors import ClientError

MAX_COLUMNS = 3  # the official client tracks master + two proles
BITMAP_BYTES = N_PARTITIONS // 8


@dataclass(slots=True)
class NamespaceReplicas:
    regime: int
    n_replicas: int
    bitmaps: list[bytes]  # one per column, at most MAX_COLUMNS


def parse_replicas(value: str) -> dict[str, NamespaceReplicas]:
    out: dict[str, NamespaceReplicas] = {}
    for entry in value.strip().split(";"):
        if not entry:
            continue
        ns, _, rest = entry.partition(":")
        parts = rest.split(",")
        try:
            regime, n_replicas = int(parts[0]), int(parts[1])
            bitmaps = [base64.b64decode(b64, validate=True) for b64 in parts[2 : 2 + min(n_replicas, MAX_COLUMNS)]]
        except (IndexError, ValueError, binascii.Error):
            raise ClientError(f"bad replicas entry {entry[:80]!r}") from None
        if not ns or len(bitmaps) != min(n_replicas, MAX_COLUMNS) or any(len(b) != BITMAP_BYTES for b in bitmaps):
            raise ClientError(f"bad replicas entry for namespace {ns!r}")
        out[ns] = NamespaceReplicas(regime, n_replicas, bitmaps)
    return out


def bitmap_partitions(bitmap: bytes) -> list[int]:
    """Partition ids whose bit is set (MSB first within each byte)."""
    return [pid for pid in range(N_PARTITIONS) if bitmap[pid >> 3] & (0x80 >> (pid & 7))]


class _Table:
    __slots__ = ("regime", "n_replicas", "columns")

    def __init__(self):
        self.regime = 0
        self.n_replicas = 1
        self.columns: list[list[object]] = [[None] * N_PARTITIONS for _ in range(MAX_COLUMNS)]

    def copy(self) -> "_Table":
        new = _Table()
        new.regime, new.n_replicas = self.regime, self.n_replicas
        new.columns = [list(col) for col in self.columns]
        return new


class PartitionMap:
    def __init__(self, tables: dict[str, _Table] | None = None):
        self._tables = tables or {}

    def namespaces(self) -> list[str]:
        return list(self._tables)

    def node(self, namespace: str, pid: int, column: int = 0):
        """Node in `column` for partition `pid`, or None."""
        table = self._tables.get(namespace)
        if table is None or column >= MAX_COLUMNS:
            return None
        return table.columns[column][pid]

    def n_replicas(self, namespace: str) -> int:
        table = self._tables.get(namespace)
        return min(table.n_replicas, MAX_COLUMNS) if table else 1

    def with_claims(self, node, replicas: dict[str, NamespaceReplicas]) -> tuple["PartitionMap", set]:
        """A new map with `node`'s claims applied, and the set of nodes that lost a slot to it.

        Losers must refetch their own `replicas`: their view is older than this node's.
        """
        tables = dict(self._tables)
        losers = set()
        for ns, claim in replicas.items():
            table = tables[ns].copy() if ns in tables else _Table()
            if claim.regime < table.regime:
                continue  # a stale strong-consistency regime never overrides a newer one
            table.regime = claim.regime
            table.n_replicas = claim.n_replicas
            for column, bitmap in enumerate(claim.bitmaps):
                slots = table.columns[column]
                for pid in bitmap_partitions(bitmap):
                    previous = slots[pid]
                    if previous is not node:
                        if previous is not None:
                            losers.add(previous)
                        slots[pid] = node
            tables[ns] = table
        return PartitionMap(tables), losers

    def without(self, gone: set) -> "PartitionMap":
        """A new map in which slots held by the nodes in `gone` are empty."""
        tables = {}
        for ns, table in self._tables.items():
            new = table.copy()
            new.columns = [[None if n in gone else n for n in col] for col in new.columns]
            tables[ns] = new
        return PartitionMap(tables)

    def owns_any(self, node) -> bool:
        return any(node in col for table in self._tables.values() for col in table.columns)
