"""Node configuration in the spirit of aerospike.conf, written as TOML.

Contexts and parameter names are Aerospike's; every parameter is declared once below with
its type, default, range and whether `set-config` may change it at run time.

    [service]                       cluster-name, node-id, migrate-threads, ...
    [network.service|fabric|heartbeat]
    [namespaces.<name>]             replication-factor, default-ttl, ...
    [namespaces.<name>.storage-engine]  type = "device" | "memory", file, filesize, ...
"""

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KiB, MiB, GiB = 1024, 1024 * 1024, 1024 * 1024 * 1024


class ConfigError(ValueError):
    """A bad configuration value; the message names the key and the problem."""


@dataclass(frozen=True)
class Param:
    name: str
    kind: type
    default: Any
    min: float | None = None
    max: float | None = None
    dynamic: bool = False
    choices: tuple[str, ...] | None = None

    def coerce(self, path: str, raw: Any) -> Any:
        """Validate `raw` (from TOML or from a string on the command line / set-config)."""
        value = raw
        if isinstance(raw, str) and self.kind is not str:
            value = _parse_scalar(path, self.kind, raw)
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if self.kind is list and isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, self.kind) or (self.kind is int and isinstance(value, bool)):
            raise ConfigError(f"{path}: expected {self.kind.__name__}, got {raw!r}")
        if self.min is not None and value < self.min:
            raise ConfigError(f"{path}: {value} is below the minimum {self.min}")
        if self.max is not None and value > self.max:
            raise ConfigError(f"{path}: {value} is above the maximum {self.max}")
        if self.choices and value not in self.choices:
            raise ConfigError(f"{path}: {value!r} is not one of {', '.join(self.choices)}")
        return value


def _parse_scalar(path: str, kind: type, text: str) -> Any:
    text = text.strip()
    if kind is bool:
        if text.lower() in ("true", "yes", "1"):
            return True
        if text.lower() in ("false", "no", "0"):
            return False
        raise ConfigError(f"{path}: expected true or false, got {text!r}")
    if kind is int:
        suffixes = {"K": KiB, "M": MiB, "G": GiB}
        scale = suffixes.get(text[-1:].upper(), 1)
        digits = text[:-1] if scale != 1 else text
        try:
            return int(digits) * scale
        except ValueError:
            raise ConfigError(f"{path}: expected an integer, got {text!r}") from None
    if kind is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{path}: expected a number, got {text!r}") from None
    return text


SERVICE = [
    Param("cluster-name", str, "refcluster"),
    Param("node-id", str, ""),  # hex; empty = derived from the fabric port as Aerospike does
    Param("work-directory", str, "."),
    Param("proto-fd-max", int, 15000, 1, 1_000_000, dynamic=True),
    Param("transaction-max-ms", int, 1000, 1, 600_000, dynamic=True),
    Param("transaction-retry-ms", int, 1002, 1, 0xFFFFFFFF, dynamic=True),  # replica-write/dup-res resends
    Param("migrate-threads", int, 1, 0, 100, dynamic=True),
    Param("migrate-max-num-incoming", int, 4, 0, 256, dynamic=True),
    Param("min-cluster-size", int, 1, 1, 256),
    # Our extension: fix the clustering quantum (ms) instead of deriving it from the
    # heartbeat settings (0 = Aerospike's formula); tests and experiments shorten it.
    Param("quantum-interval-ms", int, 0, 0, 600_000),
    Param("tick-ms", int, 50, 1, 10_000),  # our runtime's housekeeping period (flush, defrag)
]
NETWORK = {
    "service": [
        Param("address", str, "127.0.0.1"),
        Param("port", int, 3000, 1, 65535),
        Param("access-address", str, ""),
        # what clients that ask for the alternate addresses (peers-clear-alt; the official
        # client's use_services_alternate) are told: a NAT, a load balancer or a fault proxy
        Param("alternate-access-address", str, ""),
        Param("alternate-access-port", int, 0, 0, 65535),  # 0: the service port
    ],
    "fabric": [
        Param("address", str, "127.0.0.1"),
        Param("port", int, 3001, 1, 65535),
        # Our extension (see dial_via): reach these peer endpoints through another address
        Param("dial-via", list, [], dynamic=True),
    ],
    "heartbeat": [
        Param("mode", str, "mesh", choices=("mesh",)),
        Param("address", str, "127.0.0.1"),
        Param("port", int, 3002, 1, 65535),
        Param("interval", int, 150, 50, 600_000, dynamic=True),
        Param("timeout", int, 10, 3, 100_000, dynamic=True),
        Param("mesh-seed-address-port", list, []),
        Param("dial-via", list, [], dynamic=True),
    ],
    # Our extension: Prometheus metrics served by the node itself (GET /metrics), named as
    # the Aerospike Prometheus exporter names them; port 0 = off. Like the exporter's
    # `[Agent] bind = ":9145"`, a node alone on its host would use 9145.
    "metrics": [
        Param("address", str, "127.0.0.1"),
        Param("port", int, 0, 0, 65535),
        # the harness's fault windows (<run dir>/faults.json), exported as refcluster_fault_active
        Param("faults-file", str, ""),
    ],
}


def dial_via(entries: list[str], endpoint: tuple[str, int]) -> tuple[str, int]:
    """Where to dial to reach `endpoint` over a node-to-node channel.

    `network.heartbeat.dial-via` / `network.fabric.dial-via` (our extension, for a cluster
    whose links go through fault proxies) lists `HOST:PORT>HOST:PORT` entries: a connection
    to the first endpoint (a peer's listener, as the peer advertises it) is dialled to the
    second instead. Peers still know each other by their own endpoints; only the TCP
    connection goes elsewhere."""
    for entry in entries:
        real, sep, via = entry.partition(">")
        if sep and real == f"{endpoint[0]}:{endpoint[1]}":
            host, _, port = via.rpartition(":")
            return host, int(port)
    return endpoint
NAMESPACE = [
    Param("replication-factor", int, 2, 1, 256),
    Param("default-ttl", int, 0, 0, 10 * 365 * 86400, dynamic=True),
    Param("max-record-size", int, 1 * MiB, 128, 128 * MiB, dynamic=True),
    Param("conflict-resolution-policy", str, "generation", dynamic=True,
          choices=("generation", "last-update-time")),
    Param("migrate-sleep", int, 1, 0, 10_000_000, dynamic=True),
    Param("migrate-retransmit-ms", int, 5000, 1, 0xFFFFFFFF, dynamic=True),
    Param("rack-id", int, 0, 0, 1_000_000),
]
STORAGE = [
    Param("type", str, "device", choices=("device", "memory")),
    Param("file", str, ""),
    Param("filesize", int, 256 * MiB, 1 * MiB, 2048 * GiB),
    Param("write-block-size", int, 1 * MiB, 4 * KiB, 8 * MiB),
    Param("defrag-lwm-pct", int, 50, 1, 99, dynamic=True),
    Param("flush-max-ms", int, 1000, 0, 60_000, dynamic=True),
    Param("post-write-cache", int, 256 * MiB, 0, 2048 * GiB),  # bytes of recent wblocks kept in memory
    Param("commit-to-device", bool, False),
    Param("data-size", int, 1 * GiB, 1 * MiB, 2048 * GiB),  # memory engine budget
    Param("stop-writes-used-pct", int, 70, 0, 100, dynamic=True),
    Param("stop-writes-avail-pct", int, 5, 0, 100, dynamic=True),
]


def _defaults(params: list[Param]) -> dict[str, Any]:
    return {p.name: p.default for p in params}


def _apply(target: dict, params: list[Param], raw: dict, prefix: str, nested: tuple[str, ...] = ()) -> None:
    by_name = {p.name: p for p in params}
    for key, value in raw.items():
        if key in nested:
            continue
        param = by_name.get(key)
        if param is None:
            raise ConfigError(f"{prefix}{key}: unknown parameter")
        target[key] = param.coerce(prefix + key, value)


@dataclass
class NodeConfig:
    service: dict[str, Any] = field(default_factory=lambda: _defaults(SERVICE))
    network: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {ctx: _defaults(params) for ctx, params in NETWORK.items()})
    namespaces: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict) -> "NodeConfig":
        cfg = cls()
        for section in raw:
            if section not in ("service", "network", "namespaces"):
                raise ConfigError(f"{section}: unknown context (expected service, network, namespaces)")
        _apply(cfg.service, SERVICE, raw.get("service", {}), "service.")
        for ctx, values in raw.get("network", {}).items():
            if ctx not in NETWORK:
                raise ConfigError(f"network.{ctx}: unknown context (expected {', '.join(NETWORK)})")
            _apply(cfg.network[ctx], NETWORK[ctx], values, f"network.{ctx}.")
        for name, values in raw.get("namespaces", {"test": {}}).items():
            cfg.add_namespace(name, values)
        if not cfg.namespaces:
            raise ConfigError("namespaces: at least one namespace is required")
        return cfg

    def add_namespace(self, name: str, values: dict) -> None:
        if not 1 <= len(name.encode()) <= 31 or any(c in name for c in ":;/\t\n"):
            raise ConfigError(f"namespaces.{name}: a namespace name has 1..31 bytes and no :;/ characters")
        ns = _defaults(NAMESPACE)
        _apply(ns, NAMESPACE, values, f"namespaces.{name}.", nested=("storage-engine",))
        storage = _defaults(STORAGE)
        _apply(storage, STORAGE, values.get("storage-engine", {}), f"namespaces.{name}.storage-engine.")
        if storage["type"] == "device":
            wbs = storage["write-block-size"]
            if wbs & (wbs - 1):
                raise ConfigError(f"namespaces.{name}.storage-engine.write-block-size: {wbs} is not a power of 2")
            if storage["filesize"] < 8 * wbs:
                raise ConfigError(f"namespaces.{name}.storage-engine.filesize: must hold at least 8 write blocks")
            if not storage["file"]:
                storage["file"] = f"{name}.dat"
        ns["storage-engine"] = storage
        self.namespaces[name] = ns

    @classmethod
    def load(cls, path: str | Path | None, overrides: list[str] = ()) -> "NodeConfig":
        raw: dict = {}
        if path is not None:
            try:
                raw = tomllib.loads(Path(path).read_text())
            except FileNotFoundError:
                raise ConfigError(f"{path}: config file not found") from None
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        for item in overrides:
            _set_path(raw, item)
        return cls.from_dict(raw)

    def data_path(self, ns: str) -> Path:
        return Path(self.service["work-directory"]) / self.namespaces[ns]["storage-engine"]["file"]

    def set_dynamic(self, context: str, params: dict[str, str]) -> None:
        """Apply `set-config` parameters; raises ConfigError naming the offending key."""
        params = dict(params)
        if context == "service":
            self._set_in(self.service, SERVICE, params, "service.")
        elif context == "network":
            for key, value in params.items():
                ctx, _, name = key.partition(".")
                if ctx not in NETWORK:
                    raise ConfigError(f"network.{key}: unknown parameter")
                self._set_in(self.network[ctx], NETWORK[ctx], {name: value}, f"network.{ctx}.")
        elif context == "namespace":
            name = params.pop("id", None) or params.pop("namespace", None)
            if name not in self.namespaces:
                raise ConfigError(f"namespace {name!r}: no such namespace")
            ns = self.namespaces[name]
            storage_keys = {p.name for p in STORAGE}
            for key, value in params.items():
                short = key.removeprefix("storage-engine.")
                if short in storage_keys:
                    self._set_in(ns["storage-engine"], STORAGE, {short: value}, f"namespaces.{name}.storage-engine.")
                else:
                    self._set_in(ns, NAMESPACE, {key: value}, f"namespaces.{name}.")
        else:
            raise ConfigError(f"context {context!r}: expected service, network or namespace")

    @staticmethod
    def _set_in(target: dict, params: list[Param], values: dict[str, str], prefix: str) -> None:
        by_name = {p.name: p for p in params}
        staged = {}
        for key, value in values.items():
            param = by_name.get(key)
            if param is None:
                raise ConfigError(f"{prefix}{key}: unknown parameter")
            if not param.dynamic:
                raise ConfigError(f"{prefix}{key}: not dynamic (set it in the config file)")
            staged[key] = param.coerce(prefix + key, value)
        target.update(staged)


def _set_path(raw: dict, item: str) -> None:
    """Apply a `section.sub.key=value` command-line override (the value stays a string)."""
    path, sep, value = item.partition("=")
    if not sep:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
    keys = path.strip().split(".")
    node = raw
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {item!r}: {key} is not a context")
    node[keys[-1]] = value
