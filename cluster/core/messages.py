"""Every message the membership protocols exchange, and one codec for all of them.

A message is a small frozen dataclass whose first field is ``src`` (the sender's node id).
``encode`` packs it as a msgpack array ``[type code, field values...]``; ``decode`` checks
the code, the field count and every field's type against the class annotations, and
raises ``DecodeError`` on anything else. The data plane's messages (data_messages.py)
register in the same table, so one codec serves the whole fabric. Pulses travel on the heartbeat port, the rest on
the fabric port (the runtime tells them apart with ``HEARTBEAT_MESSAGES``).

Field types used: non-negative ``int`` (node ids, cluster keys, sequence numbers, stamps),
``str``, ``bytes``, ``tuple[X, ...]``, ``tuple[X, Y]`` and ``dict[K, V]`` of those.
"""

import dataclasses
import types
import typing
from typing import Any

import msgpack


class DecodeError(ValueError):
    """The bytes are not a well-formed membership message."""


_BY_CODE: dict[int, type] = {}
_CODE_OF: dict[type, int] = {}
_FIELDS: dict[type, tuple[tuple[str, Any], ...]] = {}


def _message(code: int):
    def register(cls):
        cls = dataclasses.dataclass(frozen=True, slots=True)(cls)
        hints = typing.get_type_hints(cls)
        if code in _BY_CODE:
            raise ValueError(f"message code {code} is taken by {_BY_CODE[code].__name__}")
        _BY_CODE[code] = cls
        _CODE_OF[cls] = code
        _FIELDS[cls] = tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))
        return cls

    return register


# --- heartbeat (mesh) --------------------------------------------------------------------


@_message(1)
class Pulse:
    """Sent every heartbeat interval to every known mesh endpoint.

    ``known`` lists the heartbeat endpoints of the sender's adjacent nodes, which is how
    nodes discover peers they were not seeded with. ``cluster_key``/``succession`` are the
    sender's clustering view (``0, ()`` when orphan); ``sequence`` the highest Paxos
    sequence it has seen, so that a restarted proposer can outbid old rounds.
    """

    src: int
    cluster_name: str
    incarnation: int
    stamp: int
    endpoint: str
    fabric_endpoint: str
    adjacency: tuple[int, ...]
    known: tuple[tuple[int, str], ...]
    cluster_key: int
    succession: tuple[int, ...]
    sequence: int


# --- clustering (fabric) -----------------------------------------------------------------
# A proposal id is (seq, proposer); the proposer of a PREPARE/ACCEPT/LEARN is its src.


@_message(10)
class Prepare:
    src: int
    seq: int


@_message(11)
class Promise:
    src: int
    seq: int
    proposer: int


@_message(12)
class PrepareNack:
    src: int
    seq: int
    proposer: int
    max_seq: int


@_message(13)
class Accept:
    src: int
    seq: int


@_message(14)
class Accepted:
    src: int
    seq: int
    proposer: int


@_message(15)
class AcceptNack:
    src: int
    seq: int
    proposer: int
    max_seq: int


@_message(16)
class Learn:
    src: int
    seq: int
    cluster_key: int
    succession: tuple[int, ...]


@_message(17)
class ChangeApplied:
    src: int
    cluster_key: int
    succession: tuple[int, ...]


@_message(18)
class JoinRequest:
    src: int


@_message(19)
class JoinReject:
    src: int


@_message(20)
class MergeMove:
    src: int
    candidate: int
    cluster_key: int


# --- exchange (fabric) -------------------------------------------------------------------
# versions: namespace -> partition version -> pids holding that version.

Versions = dict[str, dict[int, tuple[int, ...]]]


@_message(30)
class ExchangeData:
    """A member's partition versions, plus what balance and clients need to know about it:
    its rack id (replica placement) and its service endpoint ("host:port", for `peers`)."""

    src: int
    cluster_key: int
    versions: Versions
    rack: int = 0
    service: str = ""


@_message(31)
class ExchangeDataAck:
    src: int
    cluster_key: int


@_message(32)
class ReadyToCommit:
    src: int
    cluster_key: int


@_message(33)
class ExchangeCommit:
    src: int
    cluster_key: int


HEARTBEAT_MESSAGES = (Pulse,)
PAXOS_MESSAGES = (Prepare, Promise, PrepareNack, Accept, Accepted, AcceptNack, Learn)
CLUSTERING_MESSAGES = (*PAXOS_MESSAGES, ChangeApplied, JoinRequest, JoinReject, MergeMove)
EXCHANGE_MESSAGES = (ExchangeData, ExchangeDataAck, ReadyToCommit, ExchangeCommit)


def encode(msg) -> bytes:
    cls = type(msg)
    if cls not in _CODE_OF:
        raise TypeError(f"not a membership message: {cls.__name__}")
    return msgpack.packb([_CODE_OF[cls], *(getattr(msg, name) for name, _ in _FIELDS[cls])])


def decode(data: bytes):
    try:
        items = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise DecodeError(f"not msgpack: {exc}") from None
    if not isinstance(items, list) or not items or type(items[0]) is not int:
        raise DecodeError("expected [type code, fields...]")
    cls = _BY_CODE.get(items[0])
    if cls is None:
        raise DecodeError(f"unknown message type {items[0]}")
    fields = _FIELDS[cls]
    if len(items) - 1 != len(fields):
        raise DecodeError(f"{cls.__name__}: expected {len(fields)} fields, got {len(items) - 1}")
    return cls(*(_coerce(value, hint, name) for value, (name, hint) in zip(items[1:], fields, strict=True)))


def _coerce(value, hint, name: str):
    """``value`` as decoded by msgpack, checked and converted to the annotated type."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is int:
        if type(value) is int and value >= 0:
            return value
    elif hint is str:
        if type(value) is str:
            return value
    elif hint is bytes:
        if type(value) is bytes:
            return value
    elif isinstance(hint, type) and issubclass(hint, tuple) and isinstance(value, list):  # a NamedTuple
        fields = typing.get_type_hints(hint)
        if len(value) == len(fields):
            return hint(*(_coerce(v, t, name) for v, t in zip(value, fields.values(), strict=True)))
    elif origin is tuple and isinstance(value, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], name) for v in value)
        if len(value) == len(args):
            return tuple(_coerce(v, a, name) for v, a in zip(value, args, strict=True))
    elif origin is dict and isinstance(value, dict):
        return {_coerce(k, args[0], name): _coerce(v, args[1], name) for k, v in value.items()}
    shown = hint.__name__ if isinstance(hint, type | types.GenericAlias) else hint
    raise DecodeError(f"field {name!r}: expected {shown}, got {type(value).__name__}")
