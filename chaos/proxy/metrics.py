"""Toxiproxy's proxy metrics: bytes received and sent per link direction of each proxy, as
the Prometheus counters `toxiproxy_proxy_received_bytes_total` / `..._sent_bytes_total`."""

from dataclasses import dataclass

_NAMES = {"received": "toxiproxy_proxy_received_bytes_total", "sent": "toxiproxy_proxy_sent_bytes_total"}
_LABELS = ("direction", "listener", "proxy", "upstream")  # sorted, as Prometheus writes them


@dataclass
class ByteCounter:
    received: int = 0  # read from the link's source
    sent: int = 0  # written to the link's destination


class ByteCounters:
    """One counter per (direction, listener, proxy, upstream), as a link starts with them."""

    def __init__(self):
        self._counters: dict[tuple[str, ...], ByteCounter] = {}

    def get(self, direction: str, listener: str, proxy: str, upstream: str) -> ByteCounter:
        return self._counters.setdefault((direction, listener, proxy, upstream), ByteCounter())

    def render(self) -> str:
        """The Prometheus text exposition format (0.0.4)."""
        lines = []
        for field, name in _NAMES.items():
            lines += [f"# HELP {name} Total bytes {field} by the proxy's links", f"# TYPE {name} counter"]
            for labels, counter in sorted(self._counters.items()):
                pairs = ",".join(f'{k}="{_escape(v)}"' for k, v in zip(_LABELS, labels, strict=True))
                lines.append(f"{name}{{{pairs}}} {getattr(counter, field)}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
