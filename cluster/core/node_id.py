"""Node ids: 64-bit unsigned integers, printed as uppercase hex without leading zeros.

When ``node-id`` is not configured, Aerospike builds the id from the fabric port and a
hardware address: read as a little-endian uint64, the low 6 bytes are the MAC (in wire
order) and the top 2 bytes the port, so a node on fabric port 3001 prints as ``BB9…``.
A hardware address longer than 6 bytes is first reduced to the first 6 bytes of its
RIPEMD-160 digest. The caller chooses the interface and passes its address in.
"""

import re

from cluster.wire.digest import ripemd160

MAC_BYTES = 6
_HEX_ID = re.compile(r"[0-9A-Fa-f]{1,16}")


def derive_node_id(fabric_port: int, hardware_address: bytes) -> int:
    if not 0 < fabric_port < 1 << 16:
        raise ValueError(f"fabric port out of range: {fabric_port}")
    if len(hardware_address) < MAC_BYTES:
        raise ValueError(f"hardware address needs at least {MAC_BYTES} bytes")
    if len(hardware_address) > MAC_BYTES:
        hardware_address = ripemd160(hardware_address)
    node_id = int.from_bytes(hardware_address[:MAC_BYTES] + fabric_port.to_bytes(2, "little"), "little")
    if node_id == 0:
        raise ValueError("node id must not be zero")
    return node_id


def format_node_id(node_id: int) -> str:
    """The ``node`` info value, e.g. ``BB9040011AC4202``."""
    return f"{node_id:X}"


def parse_node_id(text: str) -> int:
    """A configured ``node-id`` (hex, 1–16 digits, not zero)."""
    if not _HEX_ID.fullmatch(text) or int(text, 16) == 0:
        raise ValueError(f"node-id must be 1-16 hex digits and not zero, got {text!r}")
    return int(text, 16)
