"""Proxies: a listener, its live connections and its toxics; and the collection of them
with Toxiproxy's rules for names, /populate and /reset."""

import asyncio
import logging
import random
import socket

from chaos.proxy import toxics
from chaos.proxy.errors import ApiError, Conflict, NotFound, bad_body, missing_field
from chaos.proxy.link import Connection
from chaos.proxy.metrics import ByteCounter, ByteCounters
from chaos.proxy.toxics import Toxic

log = logging.getLogger("refproxy")
DIRECTIONS = ("upstream", "downstream")


class Proxy:
    """Listens on `listen` ("host:port"; port 0 picks one, and `listen` then says which) and
    relays every client to `upstream`. Disabled, it listens no more and has no connections."""

    def __init__(self, name: str, listen: str, upstream: str, rng: random.Random, counters: ByteCounters):
        self.name, self.listen, self.upstream = name, listen, upstream
        self.rng = rng
        self.enabled = False
        self.toxics: dict[str, Toxic] = {}
        self.connections: set[Connection] = set()
        self._counters = counters
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        sock = await _listening_socket(self.listen)
        self._server = await asyncio.get_running_loop().create_server(lambda: Connection(self).client, sock=sock)
        self.listen = _format(sock.getsockname())
        self.enabled = True
        log.info("proxy %s listening on %s for %s", self.name, self.listen, self.upstream)

    def stop(self) -> None:
        """Close the listener and every open connection."""
        if self.enabled:
            self.enabled = False
            self._server.close()
            for connection in list(self.connections):
                connection.abort()
            log.info("proxy %s stopped", self.name)

    async def differs(self, listen: str, upstream: str) -> bool:
        return upstream != self.upstream or await _resolve(listen) != self.listen

    async def update(self, listen: str, upstream: str, enabled: bool) -> None:
        """A new address restarts the proxy (dropping its connections)."""
        if await self.differs(listen, upstream):
            self.stop()
            self.listen, self.upstream = listen, upstream
        if enabled and not self.enabled:
            await self.start()
        elif not enabled:
            self.stop()

    def counter(self, direction: str) -> ByteCounter:
        return self._counters.get(direction, self.listen, self.name, self.upstream)

    # -- toxics: every change reaches the links of live connections too
    def toxics_of(self, direction: str) -> list[Toxic]:
        return [t for t in self.toxics.values() if t.direction == direction]

    def toxic(self, name: str) -> Toxic:
        if name not in self.toxics:
            raise NotFound("toxic not found")
        return self.toxics[name]

    def add_toxic(self, body: object) -> Toxic:
        toxic = toxics.from_json(body)
        if toxic.name in self.toxics:
            raise Conflict("toxic already exists")
        toxics.set_attributes(toxic, body)
        self.toxics[toxic.name] = toxic
        for link in self._links(toxic):
            link.add(toxic)
        return toxic

    def update_toxic(self, name: str, body: object) -> Toxic:
        toxic = self.toxic(name)
        if not isinstance(body, dict):
            raise bad_body("expected a JSON object")
        toxics.set_attributes(toxic, body)
        for link in self._links(toxic):
            link.update(toxic)
        return toxic

    def remove_toxic(self, name: str) -> None:
        toxic = self.toxics.pop(self.toxic(name).name)
        for link in self._links(toxic):
            link.remove(toxic)

    def remove_all_toxics(self) -> None:
        for name in list(self.toxics):
            self.remove_toxic(name)

    def _links(self, toxic: Toxic):
        return [c.links[toxic.direction] for c in self.connections if c.links]

    def to_json(self) -> dict:
        return {"name": self.name, "listen": self.listen, "upstream": self.upstream, "enabled": self.enabled,
                "toxics": [t.to_json() for d in DIRECTIONS for t in self.toxics_of(d)]}


class Proxies:
    """Every proxy of the server, by name. Changes are serialized by `lock` (they await)."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)  # every toxic draw: the same seed repeats a run
        self.counters = ByteCounters()
        self.lock = asyncio.Lock()
        self._proxies: dict[str, Proxy] = {}

    def all(self) -> dict[str, Proxy]:
        return dict(self._proxies)

    def get(self, name: str) -> Proxy:
        if name not in self._proxies:
            raise NotFound("proxy not found")
        return self._proxies[name]

    async def create(self, body: object) -> Proxy:
        spec = _proxy_spec(body, enabled_default=True)
        if spec["name"] in self._proxies:
            raise Conflict("proxy already exists")
        proxy = self._new(spec)
        if spec["enabled"]:
            await proxy.start()
        self._proxies[proxy.name] = proxy
        return proxy

    async def populate(self, body: object) -> tuple[list[Proxy], ApiError | None]:
        """Create or replace each proxy of the list; one whose listen and upstream are what it
        has already is kept as it is, connections and toxics included. Stops at the first
        failure, returning the proxies done so far and the error."""
        done = []
        try:
            if not isinstance(body, list):
                raise bad_body("expected a JSON array of proxies")
            specs = [_proxy_spec(entry, enabled_default=True, at=f" at proxy {i + 1}")
                     for i, entry in enumerate(body)]  # all checked before any is created
            for spec in specs:
                existing = self._proxies.get(spec["name"])
                if existing is not None and not await existing.differs(spec["listen"], spec["upstream"]):
                    done.append(existing)
                    continue
                if existing is not None:
                    existing.stop()
                proxy = self._new(spec)
                if spec["enabled"]:
                    await proxy.start()
                self._proxies[proxy.name] = proxy
                done.append(proxy)
        except ApiError as e:
            return done, e
        return done, None

    def remove(self, name: str) -> None:
        self.get(name).stop()
        del self._proxies[name]

    async def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        for proxy in self._proxies.values():
            if not proxy.enabled:
                await proxy.start()
            proxy.remove_all_toxics()

    def stop_all(self) -> None:
        for proxy in self._proxies.values():
            proxy.stop()

    def _new(self, spec: dict) -> Proxy:
        return Proxy(spec["name"], spec["listen"], spec["upstream"], self.rng, self.counters)


def proxy_update(proxy: Proxy, body: object) -> dict:
    """A PATCH body over the proxy's current fields (name cannot change)."""
    spec = {"name": proxy.name, "listen": proxy.listen, "upstream": proxy.upstream, "enabled": proxy.enabled}
    spec.update(_fields(body))
    return spec


def _proxy_spec(body: object, enabled_default: bool, at: str = "") -> dict:
    spec = {"name": "", "listen": "", "upstream": "", "enabled": enabled_default} | _fields(body)
    for required in ("name", "upstream"):
        if not spec[required]:
            raise missing_field(required + at)
    return spec


def _fields(body: object) -> dict:
    """The proxy fields a JSON body gives, type-checked (others are ignored, as Go does)."""
    if not isinstance(body, dict):
        raise bad_body("expected a JSON object")
    fields = {}
    for name, type_ in (("name", str), ("listen", str), ("upstream", str), ("enabled", bool)):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, type_):
            raise bad_body(f"{name} must be a {'boolean' if type_ is bool else 'string'}")
        fields[name] = value
    return fields


# -- listen addresses, written and compared as Go's net package does ("127.0.0.1:8474", "[::1]:0")
def _split(listen: str) -> tuple[str, int]:
    if not listen:
        return "", 0  # Go listens on every interface, on a port it picks
    host, sep, port = listen.rpartition(":")
    if not sep:
        raise ApiError(f"listen tcp: address {listen}: missing port in address")
    if not port.isdigit() or int(port) > 65535:
        raise ApiError(f"listen tcp: address {listen}: invalid port")
    return host.removeprefix("[").removesuffix("]"), int(port)


async def _address_info(listen: str) -> tuple:
    host, port = _split(listen)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ApiError(f"listen tcp: lookup {host}: {e.strerror}") from None
    return min(infos, key=lambda info: info[0] != socket.AF_INET)  # IPv4 first, as Go


async def _resolve(listen: str) -> str:
    return _format((await _address_info(listen))[4])


async def _listening_socket(listen: str) -> socket.socket:
    family, type_, proto, _, address = await _address_info(listen)
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError as e:
        sock.close()
        reason = (e.strerror or str(e))[:1].lower() + (e.strerror or str(e))[1:]
        raise ApiError(f"listen tcp {_format(address)}: bind: {reason}") from None
    sock.setblocking(False)
    return sock


def _format(address: tuple) -> str:
    host, port = address[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
