"""What the state machines hand back to whoever drives them: messages to send and events.

The driver (asyncio node or simulator) sends ``HeartbeatSend`` on the heartbeat port to an
endpoint and ``FabricSend`` over fabric to a node id; events are facts it may act on.
"""

from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

from .messages import Pulse, Versions


class HeartbeatSend(NamedTuple):  # tuples: created for every message, so kept cheap
    endpoint: str
    msg: Pulse


class FabricSend(NamedTuple):
    node: int
    msg: object


@dataclass(frozen=True, slots=True)
class NodeArrived:
    node: int


@dataclass(frozen=True, slots=True)
class NodeDeparted:
    node: int
    evicted: bool = False  # cluster-name mismatch rather than silence


@dataclass(frozen=True, slots=True)
class AdjacencyChanged:
    """A peer's advertised adjacency list changed."""

    node: int


@dataclass(frozen=True, slots=True)
class ClusterChanged:
    """A new cluster is installed and every member has applied it (register SYNCED)."""

    cluster_key: int
    succession: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Orphaned:
    """This node left its cluster; clients keep the last committed partition map."""


@dataclass(frozen=True, slots=True)
class ExchangeComplete:
    cluster_key: int
    succession: tuple[int, ...]
    versions_by_node: dict[int, Versions]
    racks: dict[int, dict[str, int]] = field(default_factory=dict)  # node -> namespace -> rack id
    services: dict[int, str] = field(default_factory=dict)  # node -> service "host:port"


class Outbox:
    """Collects sends and events; fabric messages to ourselves loop back instead of leaving."""

    def __init__(self, node_id: int):
        self.node_id = node_id
        self.sends: list[HeartbeatSend | FabricSend] = []
        self.events: list[object] = []
        self.loopback: deque = deque()
        self.unrouted: deque = deque()

    def pulse(self, endpoint: str, msg: Pulse) -> None:
        self.sends.append(HeartbeatSend(endpoint, msg))

    def fabric(self, node: int, msg) -> None:
        if node == self.node_id:
            self.loopback.append(msg)
        else:
            self.sends.append(FabricSend(node, msg))

    def emit(self, event) -> None:
        self.events.append(event)
        self.unrouted.append(event)

    def take(self) -> tuple[list, list]:
        sends, events = self.sends, self.events
        self.sends, self.events = [], []
        return sends, events
