"""Exchange: after each new cluster, every member learns every member's partition versions.

States: ORPHANED → (ClusterChanged) EXCHANGING → READY_TO_COMMIT → (COMMIT) REST.

1. On ``on_cluster_changed`` each node sends DATA (its ``local_versions``) to every other
   member; each DATA is acked. Unacked DATA is resent after 75 ms, then at growing
   intervals (``max(75, interval/2)`` plus ``max(75, interval)`` per attempt, at most 30 s).
2. A node with all its DATA acked and DATA from every member sends READY_TO_COMMIT to the
   principal, every 75 ms until it gets COMMIT.
3. The principal, once every member is ready, sends COMMIT to all (again to any member
   that asks later). On COMMIT a node emits ``ExchangeComplete`` with everybody's versions;
   the runtime balances partitions from that (a later issue).

DATA for a cluster key we have not reached yet (members apply a new cluster at slightly
different times) is acked and kept for that key only; other messages for another cluster
key are ignored and, if still needed, retransmitted.
"""

from collections.abc import Callable

from .effects import ExchangeComplete, Outbox
from .heartbeat import HeartbeatConfig
from .messages import ExchangeCommit, ExchangeData, ExchangeDataAck, ReadyToCommit, Versions

READY_RETRANSMIT_MS = 75
DATA_RETRANSMIT_MAX_MS = 30_000

ORPHANED, EXCHANGING, READY_TO_COMMIT, REST = "orphaned", "exchanging", "ready_to_commit", "rest"


class Exchange:
    def __init__(self, node_id: int, outbox: Outbox, heartbeat_config: HeartbeatConfig):
        self.node_id = node_id
        self.local_versions: Versions = {}  # kept current by the runtime, or ...
        self.versions_source: Callable[[], Versions] | None = None  # ... read from it at each new cluster
        self.local_racks: dict[str, int] = {}  # namespace -> rack id; set once by the runtime, like local_service
        self.local_service = ""
        self.state = ORPHANED
        self.cluster_key = 0
        self.succession: tuple[int, ...] = ()
        self._hb_config = heartbeat_config
        self._out = outbox
        self._data: dict[int, ExchangeData] = {}
        self._early: tuple[int, dict[int, ExchangeData]] = (0, {})  # DATA for a cluster not yet reached
        self._unacked: dict[int, tuple[int, int]] = {}  # node -> (resend at, current wait)
        self._ready: set[int] = set()  # principal only
        self._ready_sent_at = 0

    @property
    def principal(self) -> int | None:
        return self.succession[0] if self.succession else None

    def on_cluster_changed(self, cluster_key: int, succession: tuple[int, ...], now_ms: int) -> None:
        if (cluster_key, succession) == (self.cluster_key, self.succession):
            return  # already exchanging for (or done with) this cluster
        self.state, self.cluster_key, self.succession = EXCHANGING, cluster_key, succession
        if self.versions_source is not None:  # versions hold still until the exchange completes
            self.local_versions = self.versions_source()
        early_key, early_data = self._early
        self._data = {n: v for n, v in early_data.items() if n in succession} if early_key == cluster_key else {}
        self._data[self.node_id] = self._own_data()
        self._early = (0, {})
        self._ready = set()
        first_wait = max(READY_RETRANSMIT_MS, self._hb_config.interval_ms // 2)
        self._unacked = {n: (now_ms + first_wait, first_wait) for n in succession if n != self.node_id}
        for node in self._unacked:
            self._send_data(node)
        self._check_ready(now_ms)

    def on_orphaned(self) -> None:
        self.state, self.cluster_key, self.succession = ORPHANED, 0, ()
        self._unacked = {}

    def next_deadline(self) -> int | None:
        """The earliest ms at which ``tick`` retransmits something, or None."""
        if not self._unacked and self.state != READY_TO_COMMIT:
            return None  # the usual case
        due = min((at for at, _ in self._unacked.values()), default=None)
        if self.state == READY_TO_COMMIT:
            ready = self._ready_sent_at + READY_RETRANSMIT_MS
            due = ready if due is None else min(due, ready)
        return due

    def tick(self, now_ms: int) -> None:
        if self._unacked:
            self._resend_data(now_ms)
        if self.state == READY_TO_COMMIT and now_ms - self._ready_sent_at >= READY_RETRANSMIT_MS:
            self._send_ready(now_ms)

    def step(self, msg, now_ms: int) -> None:
        if isinstance(msg, ExchangeData) and msg.cluster_key != self.cluster_key:
            self._keep_early(msg)
            return
        if msg.cluster_key != self.cluster_key or self.state == ORPHANED or msg.src not in self.succession:
            return
        if isinstance(msg, ExchangeData):
            self._data[msg.src] = msg
            self._out.fabric(msg.src, ExchangeDataAck(self.node_id, self.cluster_key))
            self._check_ready(now_ms)
        elif isinstance(msg, ExchangeDataAck):
            self._unacked.pop(msg.src, None)
            self._check_ready(now_ms)
        elif isinstance(msg, ReadyToCommit) and self.principal == self.node_id:
            self._ready.add(msg.src)
            if self.state == REST:
                self._out.fabric(msg.src, ExchangeCommit(self.node_id, self.cluster_key))
            elif self._ready >= set(self.succession):
                for node in self.succession:
                    self._out.fabric(node, ExchangeCommit(self.node_id, self.cluster_key))
        elif isinstance(msg, ExchangeCommit) and msg.src == self.principal and self.state == READY_TO_COMMIT:
            self.state = REST
            data = self._data
            self._out.emit(ExchangeComplete(
                self.cluster_key, self.succession,
                versions_by_node={n: d.versions for n, d in data.items()},
                racks={n: d.racks for n, d in data.items()},
                services={n: d.service for n, d in data.items()}))

    def _keep_early(self, msg: ExchangeData) -> None:
        key, data = self._early
        if key != msg.cluster_key:
            key, data = msg.cluster_key, {}
            self._early = (key, data)
        data[msg.src] = msg
        self._out.fabric(msg.src, ExchangeDataAck(self.node_id, msg.cluster_key))

    def _resend_data(self, now_ms: int) -> None:
        step = max(READY_RETRANSMIT_MS, self._hb_config.interval_ms)
        for node, (due, wait) in list(self._unacked.items()):
            if now_ms >= due:
                wait = min(wait + step, DATA_RETRANSMIT_MAX_MS)
                self._unacked[node] = (now_ms + wait, wait)
                self._send_data(node)

    def _own_data(self) -> ExchangeData:
        return ExchangeData(self.node_id, self.cluster_key, self.local_versions, self.local_racks, self.local_service)

    def _send_data(self, node: int) -> None:
        self._out.fabric(node, self._own_data())

    def _check_ready(self, now_ms: int) -> None:
        if self.state == EXCHANGING and not self._unacked and len(self._data) == len(self.succession):
            self.state = READY_TO_COMMIT
            self._send_ready(now_ms)

    def _send_ready(self, now_ms: int) -> None:
        self._ready_sent_at = now_ms
        self._out.fabric(self.principal, ReadyToCommit(self.node_id, self.cluster_key))
