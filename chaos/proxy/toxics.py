"""The toxics: what each one does to the bytes of one link, and how one is read from JSON.

A toxic kind is a dataclass of its attributes (integers, as Toxiproxy's JSON has them) with
`pipe(stage)`, the coroutine that moves chunks from the stage's inbox to its output. The
`Stage` (link.py) gives it `receive()` (a chunk, or None at the end of the stream), `send`,
`hold(item, seconds)` (sleep with the item in hand: if the toxic is interrupted meanwhile,
the stage still has the item and hands it on), `close()` (end the stream here), `reset()`
(abort the connection with a TCP RST), `rng` and per-link `state`.

Rule for every `pipe`: while a chunk is in hand, await nothing but `stage.hold`, so that an
interruption (a toxic changed or removed under live traffic) never loses data.
"""

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from typing import ClassVar

from chaos.proxy.errors import INVALID_STREAM, BadRequest, bad_body

_INT64 = (-(2**63), 2**63 - 1)


async def noop(stage) -> None:
    """What a toxic does on a link where its toxicity draw said no: pass everything."""
    while (chunk := await stage.receive()) is not None:
        stage.send(chunk)
    stage.close()


@dataclass
class Kind:
    type: ClassVar[str]
    closes_on_removal: ClassVar[bool] = False  # the stream is corrupt once the toxic goes

    def check(self) -> None:
        """Reject values that have no meaning (real Toxiproxy takes them and may crash)."""
        for field in dataclasses.fields(self):
            if getattr(self, field.name) < 0:
                raise bad_body(f"attribute {field.name} must not be negative")

    async def pipe(self, stage) -> None:
        raise NotImplementedError


@dataclass
class Latency(Kind):
    """Each chunk leaves `latency` ± `jitter` ms after it arrived; chunks keep their order."""

    type: ClassVar[str] = "latency"
    latency: int = 0
    jitter: int = 0

    async def pipe(self, stage) -> None:
        while (chunk := await stage.receive()) is not None:
            delay = self.latency
            if self.jitter > 0:
                delay += stage.rng.randrange(-self.jitter, self.jitter)
            leave = chunk.arrived + delay / 1000
            await stage.hold(chunk, leave - time.monotonic())
            chunk.arrived = max(leave, chunk.arrived)  # a following toxic counts from here
            stage.send(chunk)
        stage.close()


@dataclass
class Bandwidth(Kind):
    """At most `rate` KB/s (1 KB = 1000 bytes); a chunk over 100 ms worth goes in 100 ms
    slices."""

    type: ClassVar[str] = "bandwidth"
    rate: int = 0

    async def pipe(self, stage) -> None:
        loop = asyncio.get_running_loop()
        owed = 0.0  # seconds of sending at `rate` not slept yet (negative after oversleeping)
        while (chunk := await stage.receive()) is not None:
            if self.rate <= 0:  # no limit (Toxiproxy loops forever on 0)
                stage.send(chunk)
                continue
            owed += len(chunk.data) / (self.rate * 1000)
            slice_bytes = self.rate * 100
            while len(chunk.data) > slice_bytes:
                head, chunk = chunk.split(slice_bytes)
                await stage.hold(chunk, 0.1)  # `chunk` is the rest: the slice is sent below
                stage.send(head)
                owed -= 0.1
            start = loop.time()
            await stage.hold(chunk, owed)
            owed -= loop.time() - start
            stage.send(chunk)
        stage.close()


@dataclass
class SlowClose(Kind):
    """Data passes; the end of the stream is passed on `delay` ms late."""

    type: ClassVar[str] = "slow_close"
    delay: int = 0

    async def pipe(self, stage) -> None:
        while (chunk := await stage.receive()) is not None:
            stage.send(chunk)
        await stage.hold(None, self.delay / 1000)
        stage.close()


@dataclass
class Timeout(Kind):
    """Drops every byte; ends the stream after `timeout` ms, or never if 0 (a blackhole
    until the toxic is removed, which ends the stream too)."""

    type: ClassVar[str] = "timeout"
    closes_on_removal: ClassVar[bool] = True
    timeout: int = 0

    async def pipe(self, stage) -> None:
        try:
            async with asyncio.timeout(self.timeout / 1000 if self.timeout else None):
                while await stage.receive() is not None:
                    pass  # dropped
        except TimeoutError:
            pass
        stage.close()


@dataclass
class ResetPeer(Kind):
    """When the first data arrives (it is dropped), wait `timeout` ms, then reset the
    connection: both sockets close with SO_LINGER 0, so both peers get a TCP RST."""

    type: ClassVar[str] = "reset_peer"
    timeout: int = 0

    async def pipe(self, stage) -> None:
        if await stage.receive() is None:
            stage.close()
            return
        await asyncio.sleep(self.timeout / 1000)
        stage.reset()


@dataclass
class Slicer(Kind):
    """Cuts each chunk into slices of about `average_size` ± `size_variation` bytes, `delay`
    µs apart."""

    type: ClassVar[str] = "slicer"
    average_size: int = 0
    size_variation: int = 0
    delay: int = 0

    def check(self) -> None:
        super().check()
        if self.average_size < 1 or self.size_variation >= self.average_size:
            raise bad_body("slicer needs average_size >= 1 and size_variation < average_size")

    def cuts(self, start: int, end: int, rng) -> list[int]:
        """Where to cut [start, end): halve, moved by up to ± size_variation, until a piece is
        within the variation of the average; so no tendency to a small piece at either end."""
        if (end - start) - self.average_size <= self.size_variation:
            return [end]
        mid = start + (end - start) // 2
        if self.size_variation > 0:
            mid += rng.randrange(-self.size_variation, self.size_variation)
        return self.cuts(start, mid, rng) + self.cuts(mid, end, rng)

    async def pipe(self, stage) -> None:
        while (chunk := await stage.receive()) is not None:
            done = 0
            for cut in self.cuts(0, len(chunk.data), stage.rng):
                head, chunk = chunk.split(cut - done)
                done = cut
                stage.send(head)
                await stage.hold(chunk, self.delay / 1_000_000)
        stage.close()


@dataclass
class LimitData(Kind):
    """Passes `bytes` bytes on this link (counted over the link's life), then ends it."""

    type: ClassVar[str] = "limit_data"
    bytes: int = 0

    async def pipe(self, stage) -> None:
        sent = stage.state.setdefault("sent", 0)
        while (chunk := await stage.receive()) is not None:
            chunk, _over = chunk.split(max(self.bytes - sent, 0))
            if chunk.data:
                stage.send(chunk)
            sent = stage.state["sent"] = sent + len(chunk.data)
            if sent >= self.bytes:
                break
        stage.close()


KINDS: dict[str, type[Kind]] = {k.type: k for k in (Latency, Bandwidth, SlowClose, Timeout, ResetPeer,
                                                     Slicer, LimitData)}


@dataclass
class Toxic:
    """One toxic of a proxy, shared by all of its links (each runs it in its own `Stage`)."""

    name: str
    stream: str  # as given; `direction` is what it means
    toxicity: float
    kind: Kind

    @property
    def direction(self) -> str:
        return self.stream.lower()

    def to_json(self) -> dict:
        return {"attributes": dataclasses.asdict(self.kind), "name": self.name, "type": self.kind.type,
                "stream": self.stream, "toxicity": self.toxicity}


def from_json(body: object) -> Toxic:
    """A new toxic from a POST body, attributes not read yet (Toxiproxy checks the name is
    free first: see `set_attributes`)."""
    if not isinstance(body, dict):
        raise bad_body("expected a JSON object")
    stream = _typed(body, "stream", str, "downstream")
    type_ = _typed(body, "type", str, "")
    name = _typed(body, "name", str, "") or f"{type_}_{stream}"
    toxicity = _toxicity(body, 1.0)
    if stream.lower() not in ("upstream", "downstream"):
        raise BadRequest(INVALID_STREAM)
    if type_ not in KINDS:
        raise BadRequest("invalid toxic type")
    return Toxic(name, stream, toxicity, KINDS[type_]())


def set_attributes(toxic: Toxic, body: dict) -> None:
    """Apply the body's `attributes` (and `toxicity`, when given) to the toxic: a POST's, or a
    PATCH's, which changes only what it names. All or nothing."""
    attrs = body.get("attributes")
    if attrs is not None and not isinstance(attrs, dict):
        raise bad_body("attributes must be a JSON object")
    changes = {}
    for field in dataclasses.fields(toxic.kind):
        if field.name in (attrs or {}):
            value = attrs[field.name]
            if type(value) is not int or not _INT64[0] <= value <= _INT64[1]:
                raise bad_body(f"attribute {field.name} must be an integer")
            changes[field.name] = value
    kind = dataclasses.replace(toxic.kind, **changes)
    kind.check()
    toxicity = _toxicity(body, toxic.toxicity)
    for name, value in changes.items():  # in place: every link's stage reads this object
        setattr(toxic.kind, name, value)
    toxic.toxicity = toxicity


def _toxicity(body: dict, default: float) -> float:
    value = body.get("toxicity")
    if value is None:
        return default
    if type(value) not in (int, float):
        raise bad_body("toxicity must be a number")
    return float(value)


def _typed(body: dict, field: str, type_: type, default):
    value = body.get(field)
    if value is None:
        return default
    if not isinstance(value, type_):
        raise bad_body(f"{field} must be a {type_.__name__}")
    return value
