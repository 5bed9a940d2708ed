"""Parsing the `peers-clear-std` info value.

    <generation>,<default port>,[[<node name>,<tls name>,[<host>[:<port>],...]],...]

The default port may be empty (then 3000); IPv6 hosts are bracketed: `[::1]:3001`.
"""

from .errors import ClientError

DEFAULT_PORT = 3000

Peer = tuple[str, list[tuple[str, int]]]


class _Cursor:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise ClientError(f"peers value: expected {char!r} at {self.pos} in {self.text!r}")
        self.pos += 1

    def token(self, stops: str) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in stops:
            self.pos += 1
        return self.text[start : self.pos]


def parse_peers(value: str) -> tuple[int, list[Peer]]:
    """(peers generation, [(node name, [(host, port), ...]), ...])."""
    cur = _Cursor(value.strip())
    try:
        generation = int(cur.token(","))
        cur.expect(",")
        port_text = cur.token(",")
        default_port = int(port_text) if port_text else DEFAULT_PORT
    except ValueError:
        raise ClientError(f"peers value: bad header in {value!r}") from None
    cur.expect(",")
    cur.expect("[")
    peers: list[Peer] = []
    while cur.peek() == "[":
        peers.append(_parse_peer(cur, default_port))
        if cur.peek() == ",":
            cur.pos += 1
    cur.expect("]")
    return generation, peers


def _parse_peer(cur: _Cursor, default_port: int) -> Peer:
    cur.expect("[")
    name = cur.token(",")
    cur.expect(",")
    cur.token(",")  # TLS name: unused for clear-text connections
    cur.expect(",")
    cur.expect("[")
    hosts = []
    while cur.peek() not in ("]", ""):
        hosts.append(_parse_host(cur, default_port))
        if cur.peek() == ",":
            cur.pos += 1
    cur.expect("]")
    cur.expect("]")
    return name, hosts


def _parse_host(cur: _Cursor, default_port: int) -> tuple[str, int]:
    if cur.peek() == "[":  # IPv6 literal
        cur.pos += 1
        host = cur.token("]")
        cur.expect("]")
    else:
        host = cur.token(":,]")
    port = default_port
    if cur.peek() == ":":
        cur.pos += 1
        text = cur.token(",]")
        try:
            port = int(text)
        except ValueError:
            raise ClientError(f"peers value: bad port {text!r}") from None
    return host, port
