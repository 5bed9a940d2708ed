"""An experiment's ``configuration`` block, typed and checked once, when the run starts.

``chaos run --var nodes=5`` hands the value over as the string "5" (only ``--var
nodes:int=5`` is typed), so the control converts the run's configuration in place: a key
of Settings to its type, any other key to the type of the value the experiment declares
for it. Later substitutions (``${nodes}`` in a tolerance, ``${rack}`` in an argument,
``${repair_s}`` in a pause) then see typed values. Keys an experiment does not declare take
the defaults below; Chaos Toolkit ignores ``--var`` for undeclared keys, so an experiment
declares every key it wants overridable.
"""

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from chaos.safety import MODES as SAFETY_MODES

REPO = Path(__file__).resolve().parents[2]
BACKENDS = ("local", "docker")  # the embedded LocalCluster or DockerCluster; `hosts` points at any other cluster
LINKS = ("direct", "proxied")
CONFLICT_POLICIES = ("generation", "last-update-time")


@dataclass(frozen=True)
class Settings:
    hosts: str = ""  # "host:port,host:port": an existing cluster; empty: start the embedded one
    backend: str = "local"
    nodes: int = 3
    racks: int = 1
    rf: int = 2
    links: str = "direct"
    toxiproxy_url: str = ""
    conflict_policy: str = "generation"
    migrate_threads: int = 1
    migrate_sleep_us: int = 1
    heartbeat_interval_ms: int = 150
    heartbeat_timeout: int = 10
    load_workload: str = "a"
    load_users: int = 4
    load_target_rate: float = 200.0
    load_recordcount: int = 1000
    safety_keys: int = 200
    safety_rate: float = 100.0
    safety_mode: str = "smart"  # or "pinned": a safety client per node (chaos.safety)
    settle_timeout_s: float = 60.0
    max_run_s: float = 900.0  # load and safety workload stop by themselves after this
    results_dir: str = "results"  # relative: to the repository root, wherever chaos runs
    seed: int = 1
    # more ``--set`` overrides of every embedded node, "name=value;name=value" (e.g. a small
    # namespaces.test.storage-engine.filesize for capacity_overflow)
    node_config: str = ""

    @property
    def embedded(self) -> bool:
        return not self.hosts

    def host_list(self) -> list[tuple[str, int]]:
        return [parse_host(item) for item in self.hosts.split(",") if item.strip()]

    def results_root(self) -> Path:
        path = Path(self.results_dir).expanduser()
        return path if path.is_absolute() else REPO / path

    def node_settings(self) -> list[str]:
        """``--set`` overrides of every embedded node."""
        return [
            f"namespaces.test.conflict-resolution-policy={self.conflict_policy}",
            f"namespaces.test.migrate-sleep={self.migrate_sleep_us}",
            f"service.migrate-threads={self.migrate_threads}",
            f"network.heartbeat.interval={self.heartbeat_interval_ms}",
            f"network.heartbeat.timeout={self.heartbeat_timeout}",
        ] + [item.strip() for item in self.node_config.split(";") if item.strip()]

    def as_dict(self) -> dict:
        return asdict(self)


def parse_host(item: str) -> tuple[str, int]:
    host, sep, port = item.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"hosts: expected host:port, got {item.strip()!r}")
    return host, int(port)


def _convert(name: str, kind: type, value):
    try:
        converted = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected {kind.__name__}, got {value!r}") from None
    if kind is int and isinstance(value, float) and value != converted:
        raise ValueError(f"{name}: expected int, got {value!r}")
    return converted


def settings_from(configuration: dict | None, declared: dict | None = None) -> Settings:
    """The run's Settings; converts ``configuration`` in place (see above), ``declared``
    being the experiment's own configuration block. ValueError (one line) on a bad value."""
    configuration = configuration if configuration is not None else {}
    kinds = {f.name: f.type for f in fields(Settings)}
    for name, value in (declared or {}).items():
        if name not in kinds and type(value) in (int, float) and isinstance(configuration.get(name), str):
            kinds[name] = type(value)
    for name, kind in kinds.items():
        if name in configuration:
            configuration[name] = _convert(name, kind, configuration[name])
    values = {f.name: configuration[f.name] for f in fields(Settings) if f.name in configuration}
    settings = Settings(**values)
    checks = [
        (settings.backend in BACKENDS, f"backend: one of {', '.join(BACKENDS)}, got {settings.backend!r}"),
        (settings.links in LINKS, f"links: one of {', '.join(LINKS)}, got {settings.links!r}"),
        (settings.conflict_policy in CONFLICT_POLICIES,
         f"conflict_policy: one of {', '.join(CONFLICT_POLICIES)}, got {settings.conflict_policy!r}"),
        (1 <= settings.nodes <= 32, f"nodes: 1..32, got {settings.nodes}"),
        (1 <= settings.racks <= settings.nodes, f"racks: 1..nodes, got {settings.racks}"),
        (1 <= settings.rf, f"rf: at least 1, got {settings.rf}"),
        (settings.load_users >= 1, f"load_users: at least 1, got {settings.load_users}"),
        (settings.safety_keys >= 4, f"safety_keys: at least 4, got {settings.safety_keys}"),
        (settings.safety_mode in SAFETY_MODES,
         f"safety_mode: one of {', '.join(SAFETY_MODES)}, got {settings.safety_mode!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    bad = [item for item in settings.node_settings() if "=" not in item]
    if bad:
        raise ValueError(f"node_config: expected name=value;..., got {bad[0]!r}")
    settings.host_list()  # a malformed host fails here, not half-way through the run
    return settings
