"""Per-command policies: the official client's names, values as lower-case strings.

Resolution order: built-in default for the command kind < top-level keys of the
client config's "policies" < its per-kind dict ("read", "write", "batch", "scan")
< the dict passed to the call.
"""

from dataclasses import dataclass, fields, replace

from .errors import ParamError

READ, WRITE, BATCH, SCAN = "read", "write", "batch", "scan"

_CHOICES = {
    "exists": ("ignore", "create_only", "update_only", "replace", "replace_only"),
    "gen": ("ignore", "eq", "gt"),
    "key": ("digest", "send"),
    "replica": ("sequence", "master"),
}


@dataclass(frozen=True, slots=True)
class Policy:
    total_timeout: int = 1000  # ms for the whole command including retries; 0 = none
    socket_timeout: int = 30000  # ms for one attempt; 0 = none
    max_retries: int = 2
    sleep_between_retries: int = 0  # ms
    replica: str = "sequence"
    exists: str = "ignore"
    gen: str = "ignore"
    key: str = "digest"
    compress: bool = False

    def merged(self, overrides: dict | None) -> "Policy":
        if not overrides:
            return self
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise ParamError(f"unknown policy keys {sorted(unknown)}")
        for name, allowed in _CHOICES.items():
            if name in overrides and overrides[name] not in allowed:
                raise ParamError(f"policy {name} must be one of {allowed}")
        return replace(self, **overrides)

    @property
    def server_timeout(self) -> int:
        """transaction_ttl sent to the server: the tighter of the two budgets, as the C client does."""
        if 0 < self.socket_timeout < self.total_timeout or self.total_timeout == 0:
            return self.socket_timeout
        return self.total_timeout


# Writes are not retried by default: a timed-out write may have been applied.
DEFAULTS = {
    READ: Policy(),
    WRITE: Policy(max_retries=0),
    BATCH: Policy(),
    SCAN: Policy(total_timeout=0, max_retries=5),
}


def resolve(config: dict | None) -> dict[str, Policy]:
    """Per-kind policies from the client config's "policies" dict."""
    config = dict(config or {})
    per_kind = {kind: config.pop(kind, None) for kind in DEFAULTS}
    return {kind: base.merged(config).merged(per_kind[kind]) for kind, base in DEFAULTS.items()}
