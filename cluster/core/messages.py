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
import functools
import types
import typing
from typing import Any

import msgpack


class DecodeError(ValueError):
    """The bytes are not a well-formed membership message."""


_BY_CODE: dict[int, type] = {}
_CODE_OF: dict[type, int] = {}
_FIELDS: dict[type, tuple[tuple[str, Any], ...]] = {}


def _mismatch(hint, value, name: str) -> DecodeError:
    shown = hint.__name__ if isinstance(hint, type | types.GenericAlias) else hint
    return DecodeError(f"field {name!r}: expected {shown}, got {type(value).__name__}")


@functools.cache
def _checker(hint):
    """A function ``(value, field name) -> value`` that checks what msgpack decoded against
    the annotated type and converts it (lists to tuples, NamedTuples); built once per type,
    because decoding is on the path of every replicated and migrated record."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in (int, str, bytes):
        def scalar(value, name):
            if type(value) is not hint or (hint is int and value < 0):
                raise _mismatch(hint, value, name)
            return value
        return scalar
    if isinstance(hint, type) and issubclass(hint, tuple):  # a NamedTuple
        items = tuple(_checker(t) for t in typing.get_type_hints(hint).values())
        return _sequence(hint, items, lambda values: hint(*values))
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = _checker(args[0])

        def homogeneous(value, name):
            if type(value) is not list:
                raise _mismatch(hint, value, name)
            return tuple([item(v, name) for v in value])
        return homogeneous
    if origin is tuple:
        return _sequence(hint, tuple(_checker(a) for a in args), tuple)
    if origin is dict:
        key, val = _checker(args[0]), _checker(args[1])

        def mapping(value, name):
            if type(value) is not dict:
                raise _mismatch(hint, value, name)
            return {key(k, name): val(v, name) for k, v in value.items()}
        return mapping
    raise TypeError(f"unsupported field type {hint}")


def _sequence(hint, items: tuple, build):
    def fixed(value, name):
        if type(value) is not list or len(value) != len(items):
            raise _mismatch(hint, value, name)
        return build([check(v, name) for check, v in zip(items, value, strict=True)])
    return fixed


def _message(code: int):
    def register(cls):
        cls = dataclasses.dataclass(frozen=True, slots=True)(cls)
        hints = typing.get_type_hints(cls)
        if code in _BY_CODE:
            raise ValueError(f"message code {code} is taken by {_BY_CODE[code].__name__}")
        _BY_CODE[code] = cls
        _CODE_OF[cls] = code
        _FIELDS[cls] = tuple((f.name, _checker(hints[f.name])) for f in dataclasses.fields(cls))
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
    its rack id in each namespace (replica placement) and its service endpoint ("host:port",
    for `peers`)."""

    src: int
    cluster_key: int
    versions: Versions
    racks: dict[str, int] = dataclasses.field(default_factory=dict)  # namespace -> rack id
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
    return cls(*[check(value, name) for value, (name, check) in zip(items[1:], fields, strict=True)])
