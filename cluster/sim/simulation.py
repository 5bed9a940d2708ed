"""A deterministic simulator: N membership cores on a seeded clock and network.

Everything happens through one event queue ordered by (simulated µs, kind: ticks before
deliveries before faults before checks, insertion order), and every random choice comes
from one ``random.Random(seed)``, so a seed replays byte for byte; ``SimResult.digest``
hashes the full trace (deliveries, events, faults) to prove it.

Time: each node ticks on its own grid of ``tick_ms`` (75 ms, random phase), as the real
driver does, but grid points before ``Membership.next_deadline`` are skipped — ticks there
are no-ops, so the run is the same (tests/sim/test_determinism.py checks the digests).
In the steady state that is one tick per heartbeat interval instead of two.

Messages are passed as objects (they are immutable); with ``wire`` they travel as the
codec's bytes, a broadcast encoded once and each distinct message decoded once.

Network: each message gets a delay (0.1–1 ms, up to the current ``delay`` fault), may be
dropped (``loss`` fault), and is blocked by partitions (per direction, so partitions can be
asymmetric). Nodes can crash (state lost; restart = a fresh ``Membership`` with the same
node id), or pause (nothing processed, incoming messages queue up as in a socket buffer;
on resume they are processed with the old state).

Run: a fault phase (``faults.make_schedule``), then faults stop — everything heals,
restarts and resumes, except an optional final clean split — and the simulator checks every
250 ms whether the invariants of ``invariants.py`` hold, until they have held for
``stable_ms`` (pass) or ``settle_ms`` has passed (fail).
"""

import hashlib
import heapq
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cluster.core.clustering import ClusteringConfig
from cluster.core.effects import ClusterChanged, ExchangeComplete, Orphaned
from cluster.core.heartbeat import HeartbeatConfig
from cluster.core.membership import Membership
from cluster.core.messages import Pulse, decode, encode
from cluster.core.node_id import derive_node_id, format_node_id

from . import invariants
from .faults import Fault, Schedule, make_schedule

CHECK_EVERY_MS = 250
MIN_DELAY_US, NORMAL_MAX_DELAY_US = 100, 1000
_TICK, _DELIVER, _FAULT, _CHECK = range(4)  # also the order of events due at the same µs
_NEVER = float("inf")
_TRACE_CHUNK = 4096


@dataclass(frozen=True)
class SimConfig:
    seed: int = 0
    nodes: int = 5
    fault_ms: int = 20_000
    settle_ms: int = 40_000
    stable_ms: int = 3_000
    min_cluster_size: int = 1
    replication_factor: int = 2
    interval_ms: int = 150
    timeout: int = 10
    quantum_ms: int | None = None
    wire: bool = False  # every message travels as bytes: encoded by the sender, decoded for the receiver

    def replay_command(self) -> str:
        defaults = SimConfig()
        flags = [f"--seed {self.seed}"]
        for name in ("nodes", "fault_ms", "settle_ms", "stable_ms", "min_cluster_size", "quantum_ms"):
            if getattr(self, name) != getattr(defaults, name):
                flags.append(f"--{name.replace('_', '-')} {getattr(self, name)}")
        if self.wire:
            flags.append("--wire")
        return "python -m cluster.sim " + " ".join(flags)


@dataclass
class SimResult:
    config: SimConfig
    violations: list[str]
    converged_after_ms: int | None
    sim_ms: int
    wall_s: float
    messages: int
    digest: str
    schedule: Schedule

    @property
    def ok(self) -> bool:
        return not self.violations


@dataclass(slots=True)
class SimNode:
    index: int
    node_id: int
    endpoint: str
    fabric_endpoint: str
    membership: Membership | None = None
    generation: int = 0  # bumped on restart: messages to the previous life are lost
    paused: bool = False
    inbox: list = field(default_factory=list)  # messages queued while paused
    exchanged: ExchangeComplete | None = None
    tick_origin_us: int = 0  # this life ticks at tick_origin_us + k * tick_us ...
    tick_us: int = 75_000
    next_tick_us: float = _NEVER  # ... but only when the core has something due then
    published: set[int] = field(default_factory=set)  # cluster keys this node announced


def sim_node_id(index: int) -> int:
    """Ids shaped like real ones: fabric port 3001, a Docker-style MAC."""
    return derive_node_id(3001, bytes([0x02, 0x42, 0xAC, 0x11, 0x00, index + 2]))


class Simulation:
    def __init__(self, config: SimConfig, membership_factory: Callable[..., Membership] = Membership):
        self.config = config
        self.rng = random.Random(config.seed)
        self.now_us = 0  # the clock; cores see whole milliseconds
        self._make_membership = membership_factory
        self._wire = config.wire
        self._decoded: dict[bytes, object] = {}  # wire mode: bytes -> decoded message
        self._queue: list = []
        self._order = itertools.count()
        self._digest = hashlib.blake2b(digest_size=16)
        self._trace_lines: list[str] = []
        self.messages = 0
        self.violations: list[str] = []
        self.key_successions: dict[int, tuple[int, ...]] = {}  # every cluster key ever applied
        self.key_changed_ms: dict[int, int] = {}  # when a node first published it (ClusterChanged)
        self.blocked: dict[tuple[int, int], int] = {}  # (src index, dst index) -> partitions blocking it
        self.loss = 0.0
        self.max_delay_us = NORMAL_MAX_DELAY_US
        self.final_groups: tuple[tuple[int, ...], ...] = (tuple(range(config.nodes)),)
        self.nodes = [
            SimNode(i, sim_node_id(i), f"10.0.0.{i + 1}:3002", f"10.0.0.{i + 1}:3001") for i in range(config.nodes)
        ]
        # where a send goes: heartbeat endpoints (str) and node ids (int) to node indexes
        self._route: dict[str | int, int] = {n.endpoint: n.index for n in self.nodes}
        self._route.update({n.node_id: n.index for n in self.nodes})
        self.schedule = make_schedule(self.rng, config.nodes, config.fault_ms)
        self._converged_since: int | None = None
        self._done = False

    # --- running -------------------------------------------------------------------------

    def run(self) -> SimResult:
        started = time.perf_counter()
        for node in self.nodes:
            self._start(node)
        for fault in self.schedule.faults:
            self._push(fault.at_ms * 1000, _FAULT, fault)
        self._push(self.config.fault_ms * 1000, _FAULT, Fault(self.config.fault_ms, "faults_stop"))
        end = (self.config.fault_ms + self.config.settle_ms) * 1000
        queue, pop, nodes, lines, wire = self._queue, heapq.heappop, self.nodes, self._trace_lines, self._wire
        while queue and not self._done:
            at, kind, _, a, b = pop(queue)
            if at > end:
                break
            self.now_us = at
            if kind == _DELIVER:  # inlined: most events are deliveries, most deliveries pulses
                generation, src, msg = b
                node = nodes[a]
                if node.generation != generation or node.membership is None:
                    continue  # sent to a previous life, or crashed
                if node.paused:
                    node.inbox.append((src, msg))
                elif wire or type(msg) is not Pulse:
                    self._receive(node, src, msg)
                else:  # _receive's steps for a pulse
                    self.messages += 1
                    lines.append((at, src, a, "Pulse"))
                    if len(lines) >= _TRACE_CHUNK:
                        self._digest_trace()
                    membership = node.membership
                    membership.step(msg, at // 1000)
                    if membership.has_ready():
                        self._flush(node)
                        self._schedule_tick(node)
            elif kind == _TICK:
                self._tick(a, b)
            elif kind == _FAULT:
                self._apply(a)
            else:
                self._check()
        if not self._done:
            problems = invariants.convergence_problems(self)
            self.violations.append(
                f"not converged {self.config.settle_ms} ms after faults stopped: " + "; ".join(problems)
                if problems
                else f"converged too late to stay stable for {self.config.stable_ms} ms"
            )
        self._digest_trace()
        return SimResult(
            self.config,
            self.violations,
            None if self._converged_since is None else self._converged_since - self.config.fault_ms,
            self.now_ms,
            time.perf_counter() - started,
            self.messages,
            self._digest.hexdigest(),
            self.schedule,
        )

    @property
    def now_ms(self) -> int:
        return self.now_us // 1000

    def _push(self, at_us: int, kind: int, a, b=None) -> None:
        heapq.heappush(self._queue, (at_us, kind, a if kind == _TICK else next(self._order), a, b))

    def _trace(self, *record) -> None:
        """Records are tuples of ints and strings, hashed in chunks (repr is deterministic)."""
        self._trace_lines.append(record)
        if len(self._trace_lines) >= _TRACE_CHUNK:
            self._digest_trace()

    def _digest_trace(self) -> None:
        self._digest.update(repr(self._trace_lines).encode())
        self._trace_lines.clear()

    def _start(self, node: SimNode) -> None:
        cfg = self.config
        seeds = tuple(self.nodes[i].endpoint for i in (0, 1) if i < cfg.nodes and i != node.index)
        node.generation += 1
        node.paused, node.inbox, node.exchanged = False, [], None
        node.membership = self._make_membership(
            node.node_id,
            cluster_name="sim",
            endpoint=node.endpoint,
            fabric_endpoint=node.fabric_endpoint,
            seeds=seeds,
            heartbeat_config=HeartbeatConfig(cfg.interval_ms, cfg.timeout),
            clustering_config=ClusteringConfig(min_cluster_size=cfg.min_cluster_size, quantum_interval_ms=cfg.quantum_ms),
            rng=random.Random(self.rng.getrandbits(64)),
            now_ms=self.now_ms,
        )
        # A random phase so that nodes do not tick in lockstep.
        node.tick_us = node.membership.tick_ms * 1000
        phase_us = self.rng.randrange(node.tick_us)
        node.tick_origin_us = node.next_tick_us = self.now_us + phase_us
        self._push(node.next_tick_us, _TICK, node.index, node.generation)

    def _tick(self, index: int, generation: int) -> None:
        """A node ticks on its grid of ``tick_ms``, as the real driver does, except that grid
        points before ``Membership.next_deadline`` are skipped: ticks there are no-ops."""
        node = self.nodes[index]
        if node.membership is None or node.generation != generation or node.next_tick_us != self.now_us:
            return  # crashed, a tick chain of a previous life, or superseded by an earlier tick
        node.next_tick_us = _NEVER
        if node.paused:
            return  # rescheduled on resume
        node.membership.tick(self.now_us // 1000)
        self._flush(node)
        self._schedule_tick(node)

    def _schedule_tick(self, node: SimNode) -> None:
        """Schedule the node's first grid point after now at which something is due."""
        now_us = self.now_us
        target = node.membership.next_deadline(now_us // 1000) * 1000
        if target <= now_us:
            target = now_us + 1
        origin = node.tick_origin_us
        at = origin + -((origin - target) // node.tick_us) * node.tick_us if target > origin else origin
        if at < node.next_tick_us:
            node.next_tick_us = at
            heapq.heappush(self._queue, (at, _TICK, node.index, node.index, node.generation))

    def _receive(self, node: SimNode, src: int, msg) -> None:
        self.messages += 1
        lines = self._trace_lines
        if self._wire:
            lines.append((self.now_us, src, node.index, msg))
            msg = self._decode(msg)
        else:
            lines.append((self.now_us, src, node.index, type(msg).__name__))
        if len(lines) >= _TRACE_CHUNK:
            self._digest_trace()
        membership = node.membership
        membership.step(msg, self.now_us // 1000)
        if membership.has_ready():
            self._flush(node)
        elif type(msg) is Pulse:
            return  # a pulse that changed nothing visible cannot bring the next tick forward
        self._schedule_tick(node)

    def _decode(self, data: bytes):
        """Decode, once per distinct message: the copies of a broadcast share the result, as
        they share the object without ``wire`` (messages are immutable)."""
        msg = self._decoded.get(data)
        if msg is None:
            if len(self._decoded) >= 256:
                self._decoded.clear()
            msg = self._decoded[data] = decode(data)
        return msg

    def _flush(self, node: SimNode) -> None:
        sends, events = node.membership.ready()
        if sends:
            self._send(node.index, sends)
        for event in events:
            self._on_event(node, event)

    def _send(self, src: int, sends: list) -> None:
        """Each send gets a random delay (and may be lost, or blocked by a partition)."""
        random, spread, now_us = self.rng.random, self.max_delay_us - MIN_DELAY_US, self.now_us + MIN_DELAY_US
        route, blocked, loss, nodes = self._route, self.blocked, self.loss, self.nodes
        queue, push, order, wire = self._queue, heapq.heappush, self._order, self._wire
        encoded_from = encoded = None
        for target, msg in sends:  # HeartbeatSend(endpoint, msg) or FabricSend(node id, msg)
            dst = route.get(target)
            if dst is None or (blocked and (src, dst) in blocked):
                continue
            if loss and random() < loss:
                continue
            if wire:  # a broadcast is one object: encode it once
                if msg is not encoded_from:
                    encoded_from, encoded = msg, encode(msg)
                msg = encoded
            push(queue, (now_us + int(random() * spread), _DELIVER, next(order), dst, (nodes[dst].generation, src, msg)))

    def _on_event(self, node: SimNode, event) -> None:
        if isinstance(event, ClusterChanged | ExchangeComplete):
            self._trace(self.now_us, node.index, type(event).__name__, event.cluster_key, event.succession)
            if isinstance(event, ClusterChanged):
                self.key_changed_ms.setdefault(event.cluster_key, self.now_ms)
                if event.cluster_key in node.published:
                    self._violation(f"{format_node_id(node.node_id)} announced cluster {event.cluster_key:x} twice")
                node.published.add(event.cluster_key)
            known = self.key_successions.setdefault(event.cluster_key, event.succession)
            if known != event.succession:
                self._violation(f"cluster key {event.cluster_key:x} has two succession lists: {known} and {event.succession}")
            if node.node_id not in event.succession:
                self._violation(f"{format_node_id(node.node_id)} applied cluster {event.cluster_key:x} without being in it")
            if isinstance(event, ExchangeComplete):
                if set(event.versions_by_node) != set(event.succession):
                    self._violation(f"exchange for {event.cluster_key:x} completed without every member's versions")
                node.exchanged = event
                # What a rebalance would leave behind: this cluster's key as the version of our pids.
                node.membership.set_local_versions({"test": {event.cluster_key << 16: (node.index,)}})
        elif isinstance(event, Orphaned):
            self._trace(self.now_us, node.index, "Orphaned")
            node.exchanged = None

    def _violation(self, text: str) -> None:
        self.violations.append(f"t={self.now_us / 1000:.1f}ms: {text}")
        self._done = True

    # --- faults --------------------------------------------------------------------------

    def _apply(self, fault: Fault) -> None:
        self._trace(self.now_us, str(fault))
        kind, args = fault.kind, fault.args
        if kind in ("partition", "partition_end"):
            self._block(*args, 1 if kind == "partition" else -1)
        elif kind == "crash" and self.nodes[args[0]].membership is not None:
            self.nodes[args[0]].membership = None
        elif kind == "restart" and self.nodes[args[0]].membership is None:
            self._start(self.nodes[args[0]])
        elif kind == "pause":
            self.nodes[args[0]].paused = True
        elif kind == "resume":
            self._resume(self.nodes[args[0]])
        elif kind == "loss":
            self.loss = args[0]
        elif kind == "loss_end":
            self.loss = 0.0
        elif kind == "delay":
            self.max_delay_us = args[0] * 1000
        elif kind == "delay_end":
            self.max_delay_us = NORMAL_MAX_DELAY_US
        elif kind == "faults_stop":
            self._stop_faults()

    def _block(self, a: tuple[int, ...], b: tuple[int, ...], both_ways: bool, count: int) -> None:
        links = [(i, j) for i in a for j in b] + ([(j, i) for i in a for j in b] if both_ways else [])
        for link in links:
            self.blocked[link] = self.blocked.get(link, 0) + count
            if not self.blocked[link]:
                del self.blocked[link]

    def _resume(self, node: SimNode) -> None:
        if node.membership is None or not node.paused:
            return
        node.paused = False
        inbox, node.inbox = node.inbox, []
        for src, msg in inbox:
            self._receive(node, src, msg)
        self._schedule_tick(node)

    def _stop_faults(self) -> None:
        self.blocked.clear()
        self.loss, self.max_delay_us = 0.0, NORMAL_MAX_DELAY_US
        for node in self.nodes:
            if node.membership is None:
                self._start(node)
            else:
                self._resume(node)
        if self.schedule.final_split:
            self.final_groups = self.schedule.final_split
            self._block(*self.final_groups, True, 1)
        self._push(self.now_us + CHECK_EVERY_MS * 1000, _CHECK, None)

    def _check(self) -> None:
        problems = invariants.convergence_problems(self)
        if self._converged_since is None:
            if not problems:
                self._converged_since = self.now_ms
        elif problems:
            self._violation("converged state changed after faults stopped: " + "; ".join(problems))
            return
        elif self.now_ms - self._converged_since >= self.config.stable_ms:
            self._done = True
            return
        self._push(self.now_us + CHECK_EVERY_MS * 1000, _CHECK, None)
