"""ToxiproxyClient: a small typed client of the Toxiproxy HTTP API for the harness.

It speaks only the HTTP API, so it drives our `refproxy` and a real Toxiproxy alike: point
it at the `toxiproxy_url` setting. Every request has a timeout, and every error the server
answers is raised as `ToxiproxyError` with its status and message (unlike the upstream
clients, which swallow some).

    api = ToxiproxyClient("http://127.0.0.1:8474")
    node = api.create_proxy("n1", upstream="127.0.0.1:3000")        # listen 127.0.0.1:0
    api.add_toxic("n1", "latency", {"latency": 100, "jitter": 10})  # downstream, toxicity 1
    api.update_toxic("n1", "latency_downstream", {"latency": 300})
    api.update_proxy("n1", enabled=False)                           # node unreachable
    api.reset()                                                     # all enabled, no toxics
"""

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import quote

DEFAULT_URL = "http://127.0.0.1:8474"


class ToxiproxyError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


@dataclass
class Toxic:
    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict

    @classmethod
    def from_json(cls, d: dict) -> "Toxic":
        return cls(d["name"], d["type"], d["stream"], d["toxicity"], d.get("attributes") or {})


@dataclass
class Proxy:
    name: str
    listen: str  # "host:port", the port chosen when 0 was asked
    upstream: str
    enabled: bool
    toxics: list[Toxic] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @classmethod
    def from_json(cls, d: dict) -> "Proxy":
        return cls(d["name"], d["listen"], d["upstream"], d["enabled"],
                   [Toxic.from_json(t) for t in d.get("toxics") or []])


class ToxiproxyClient:
    def __init__(self, url: str = DEFAULT_URL, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self.timeout = timeout

    # -- server
    def version(self) -> str:
        return self._call("GET", "/version")["version"]

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self._call("POST", "/reset")

    # -- proxies
    def proxies(self) -> dict[str, Proxy]:
        return {name: Proxy.from_json(p) for name, p in self._call("GET", "/proxies").items()}

    def proxy(self, name: str) -> Proxy:
        return Proxy.from_json(self._call("GET", f"/proxies/{quote(name)}"))

    def create_proxy(self, name: str, upstream: str, listen: str = "127.0.0.1:0", enabled: bool = True) -> Proxy:
        body = {"name": name, "upstream": upstream, "listen": listen, "enabled": enabled}
        return Proxy.from_json(self._call("POST", "/proxies", body))

    def populate(self, proxies: list[dict]) -> list[Proxy]:
        """Create or replace many at once (POST /populate: kept as they are if unchanged)."""
        return [Proxy.from_json(p) for p in self._call("POST", "/populate", proxies)["proxies"] or []]

    def update_proxy(self, name: str, *, listen: str | None = None, upstream: str | None = None,
                     enabled: bool | None = None) -> Proxy:
        """Change what is given. A new listen/upstream restarts the proxy (connections drop);
        enabled=False closes its listener and every open connection."""
        body = {k: v for k, v in (("listen", listen), ("upstream", upstream), ("enabled", enabled)) if v is not None}
        return Proxy.from_json(self._call("PATCH", f"/proxies/{quote(name)}", body))

    def delete_proxy(self, name: str) -> None:
        self._call("DELETE", f"/proxies/{quote(name)}")

    # -- toxics
    def toxics(self, proxy: str) -> list[Toxic]:
        return [Toxic.from_json(t) for t in self._call("GET", f"/proxies/{quote(proxy)}/toxics")]

    def add_toxic(self, proxy: str, type: str, attributes: dict | None = None, *, name: str | None = None,
                  stream: str = "downstream", toxicity: float = 1.0) -> Toxic:
        """Add a toxic (named `<type>_<stream>` unless `name`); live connections get it too."""
        body = {"type": type, "stream": stream, "toxicity": toxicity, "attributes": attributes or {}}
        if name:
            body["name"] = name
        return Toxic.from_json(self._call("POST", f"/proxies/{quote(proxy)}/toxics", body))

    def update_toxic(self, proxy: str, name: str, attributes: dict | None = None, *,
                     toxicity: float | None = None) -> Toxic:
        """Change the attributes given (the others keep their values), and/or the toxicity."""
        body = {"attributes": attributes or {}} | ({} if toxicity is None else {"toxicity": toxicity})
        return Toxic.from_json(self._call("PATCH", f"/proxies/{quote(proxy)}/toxics/{quote(name)}", body))

    def remove_toxic(self, proxy: str, name: str) -> None:
        self._call("DELETE", f"/proxies/{quote(proxy)}/toxics/{quote(name)}")

    def _call(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                message = json.loads(raw)["error"]
            except (ValueError, KeyError, TypeError):
                message = raw.decode(errors="replace").strip()
            raise ToxiproxyError(e.code, message) from None
        return json.loads(raw) if raw else None
