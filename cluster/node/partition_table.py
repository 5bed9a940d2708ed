"""The client partition map a node publishes through `replicas` and `partition-generation`.

One 4096-bit bitmap per replica column (column 0 = partitions this node masters, column i =
partitions for which it is the i-th replica), MSB first within each byte, base64 encoded.
"""

import base64

from cluster.wire.digest import N_PARTITIONS

BITMAP_BYTES = N_PARTITIONS // 8


def bitmap(pids) -> bytes:
    bits = bytearray(BITMAP_BYTES)
    for pid in pids:
        bits[pid >> 3] |= 0x80 >> (pid & 7)
    return bytes(bits)


class PartitionTable:
    """Which partitions this node serves in each replica column, per namespace."""

    def __init__(self):
        self.generation = -1  # the server's answer before its first balance: clients take no map
        self._columns: dict[str, list[bytes]] = {}

    def publish(self, namespace: str, columns: list[bytes]) -> None:
        if self._columns.get(namespace) != columns:
            self._columns[namespace] = columns
            self.generation += 1

    def columns(self, namespace: str) -> list[bytes]:
        return self._columns.get(namespace, [])

    def replicas_value(self, with_regime: bool = True, max_columns: int | None = None) -> str:
        parts = []
        for ns, cols in self._columns.items():
            cols = cols[:max_columns] if max_columns else cols
            encoded = ",".join(base64.b64encode(c).decode() for c in cols)
            head = f"{ns}:0,{len(cols)}" if with_regime else f"{ns}:{len(cols)}"
            parts.append(f"{head},{encoded}")
        return ";".join(parts)

    def master_value(self) -> str:
        return ";".join(f"{ns}:{base64.b64encode(cols[0]).decode()}" for ns, cols in self._columns.items() if cols)
