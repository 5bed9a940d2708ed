"""One fault API for experiments, tests and the CLI: network, process and capacity faults.

    with LocalCluster(nodes=5, rf=2, links="proxied") as lc:
        faults = lc.faults                              # or Faults(lc, on_window=print)
        faults.partition([["n1", "n2"], ["n3", "n4", "n5"]])   # drop mode: a silent network
        ...
        faults.heal()                                   # every network fault this API made, nothing else
        faults.pause("n3"); faults.resume("n3")
        faults.restore()                                # everything: heal, resume, restart, thresholds back

Every call records a `FaultWindow(kind, targets, start, end)` (unix seconds; `end` None while
the fault lasts) in `windows`, hands it to `on_window` when it starts and when it ends, and
writes the undo steps of every active fault to `<run dir>/faults.json` before it acts, so
that a later process (`refcluster fault heal`, `refcluster down`) can remove what a runner
that died left behind.

Network faults act on the cluster's named proxies through the Toxiproxy HTTP API
(`links="proxied"`, see cluster/deploy/links.py): drop = a `timeout` toxic with timeout 0 on
both streams (data blackholed, connections stay open, as in a real partition); refuse =
the proxy disabled (its port closed, its connections cut). A node-to-node proxy carries
one direction of one channel (`n1-n3-fabric`: what n1 sends to n3's fabric), so a one-way
cut or a one-way latency is a toxic on the src->dst proxies only. With direct links,
`partition` and `isolate` use iptables (root, and `address_per_node=True`); the other
network faults need proxied links.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cluster.deploy.local_cluster import parse_info_kv

if TYPE_CHECKING:
    from cluster.deploy.local_cluster import LocalCluster

STATE_FILE = "faults.json"
TOXIC_PREFIX = "refcluster-"  # every toxic this API adds is named so; heal removes those only
NETWORK_KINDS = frozenset({"partition", "isolate", "cut", "latency", "bandwidth", "client_latency"})
PROCESS_KINDS = frozenset({"kill", "stop", "pause", "restart", "kill_rack", "stop_rack", "pause_rack"})
MODES = ("drop", "refuse")
CHANNELS = ("heartbeat", "fabric")


class FaultError(ValueError):
    """A fault that cannot be made: bad input, a cluster that is down, links that cannot do it."""


@dataclass
class FaultWindow:
    """When a fault was in force (unix seconds), to line up with the load's timeline.

    Same fields, in the same order, as chaos.results.Fault, so `RunFolder.add_fault` takes it."""

    kind: str
    targets: tuple[str, ...]
    start: float
    end: float | None = None
    id: int = 0
    detail: dict = field(default_factory=dict)

    def end_or(self, default: float) -> float:
        return default if self.end is None else self.end

    @property
    def active(self) -> bool:
        return self.end is None

    def to_json(self) -> dict:
        return asdict(self) | {"targets": list(self.targets)}

    @classmethod
    def from_json(cls, d: dict) -> FaultWindow:
        return cls(d["kind"], tuple(d["targets"]), d["start"], d.get("end"), d.get("id", 0), d.get("detail") or {})


class Faults:
    """The fault API of one cluster. Not thread-safe against a second Faults on the same
    run directory in another process, but safe across threads of one process."""

    def __init__(self, cluster: LocalCluster, toxiproxy_url: str | None = None,
                 on_window: Callable[[FaultWindow], None] | None = None):
        self.cluster = cluster
        self._toxiproxy_url = toxiproxy_url
        self.on_window = on_window
        self.windows: list[FaultWindow] = []
        self._undo: dict[int, list[list]] = {}  # window id -> undo steps, in the order to run them
        self._next_id = 1
        self._lock = threading.RLock()
        self._state_path = Path(cluster.run_dir) / STATE_FILE
        self._watch: _StopWritesWatch | None = None
        self.toxic_prefix = TOXIC_PREFIX
        self._links_backend = None
        self._load_state()

    @property
    def toxiproxy_url(self) -> str | None:
        """The Toxiproxy API the network faults go to: the one given, else the cluster's."""
        return self._toxiproxy_url or self.cluster.toxiproxy_url

    # -- windows -------------------------------------------------------------------------------

    def active(self) -> list[FaultWindow]:
        return [w for w in self.windows if w.end is None]

    def _open(self, kind: str, targets: Iterable[str], undo: list[list], **detail) -> FaultWindow:
        window = FaultWindow(kind, tuple(targets), time.time(), None, self._next_id, detail)
        self._next_id += 1
        self.windows.append(window)
        self._undo[window.id] = undo
        self._save_state()
        self._notify(window)
        return window

    def _close(self, window: FaultWindow) -> None:
        if window.end is not None:
            return
        errors = []
        for step in self._undo.get(window.id, []):
            try:
                self._run_undo(step)
            except Exception as exc:  # keep undoing the rest; report at the end
                errors.append(f"{step}: {exc}")
        if window.kind == "stop_writes" and self._watch is not None:
            self._watch.wait(window.targets, False)  # the report has when each node left
        window.end = time.time()
        self._undo.pop(window.id, None)
        self._save_state()
        self._notify(window)
        if errors:
            raise RuntimeError(f"could not fully undo {window.kind} {','.join(window.targets)}: {'; '.join(errors)}")

    def record(self, kind: str, targets: Iterable[str]) -> FaultWindow:
        """Record a fault made outside this API (e.g. devices filled by a workload's writes):
        a window `active()` and `on_window` see, with nothing to undo; `end(window)` ends it."""
        with self._lock:
            return self._open(kind, targets, [])

    def end(self, window: FaultWindow) -> None:
        """End one fault (e.g. one of two latencies) and leave the others."""
        with self._lock:
            match = next((w for w in self.windows if w.id == window.id), None)
            if match is None:
                raise FaultError(f"no fault window {window.id}")
            self._close(match)

    def _notify(self, window: FaultWindow) -> None:
        if self.on_window is not None:
            self.on_window(window)

    # -- validation ----------------------------------------------------------------------------

    def _check_node(self, name: str) -> str:
        if name not in self.cluster.nodes:
            known = ", ".join(self.cluster.nodes) or "none"
            raise FaultError(f"no node {name!r} (nodes: {known})")
        return name

    def _check_up(self) -> None:
        if not self.cluster.running():
            raise FaultError("the cluster is down: no node is running")

    def _rack_nodes(self, rack: int) -> list[str]:
        names = [s.name for s in self.cluster.specs if s.rack == rack]
        if not names:
            raise FaultError(f"no node in rack {rack} (racks: {sorted({s.rack for s in self.cluster.specs})})")
        return names

    # -- process faults ------------------------------------------------------------------------

    def kill(self, node: str) -> FaultWindow:
        """SIGKILL: nothing flushed. Ends when the node is restarted (`restart`, `restore`)."""
        return self._node_fault("kill", node, self.cluster.kill, "start")

    def stop(self, node: str) -> FaultWindow:
        """SIGTERM (a clean shutdown). Ends when the node is restarted."""
        return self._node_fault("stop", node, self.cluster.stop_node, "start")

    def pause(self, node: str) -> FaultWindow:
        """SIGSTOP: the process freezes as in a long GC pause; its sockets stay open."""
        return self._node_fault("pause", node, self.cluster.pause, "resume")

    def _node_fault(self, kind: str, node: str, act, undo: str) -> FaultWindow:
        with self._lock:
            self._check_node(node)
            self._require_running(node)
            window = self._open(kind, [node], [[undo, node]])
            act(node)
            return window

    def resume(self, node: str) -> None:
        """SIGCONT the node and end its pause window(s)."""
        with self._lock:
            self._check_node(node)
            done = False
            for window in self.active():
                if window.kind in ("pause", "pause_rack") and node in window.targets:
                    self._close(window)
                    done = True
            if not done:
                self.cluster.resume(node)

    def restart(self, node: str, wipe: bool = False, wait: float = 30.0) -> FaultWindow:
        """Stop (if running) and start again, returning once the cluster has re-formed. With
        `wipe`, the node's data files are deleted first (a lost disk); its log is kept.
        Ends the node's kill/stop windows; records a `restart` window of its own."""
        with self._lock:
            self._check_node(node)
            self._end_down(node, start=False)
            window = self._open("restart", [node], [], wipe=wipe)
            self.cluster.nodes[node].stop()
            if wipe:
                _wipe(self.cluster.nodes[node])
            try:
                self.cluster.restart(node, wait=wait)
            finally:
                self._close(window)
            return window

    def kill_rack(self, rack: int) -> FaultWindow:
        return self._rack("kill_rack", rack, lambda name: self.cluster.kill(name), "start")

    def stop_rack(self, rack: int) -> FaultWindow:
        return self._rack("stop_rack", rack, lambda name: self.cluster.stop_node(name), "start")

    def pause_rack(self, rack: int) -> FaultWindow:
        return self._rack("pause_rack", rack, lambda name: self.cluster.pause(name), "resume")

    def restart_rack(self, rack: int, wipe: bool = False, wait: float = 30.0) -> None:
        """Start every node of the rack again (ending its kill_rack/stop_rack window)."""
        with self._lock:
            names = self._rack_nodes(rack)
            for name in names:
                self._end_down(name, start=False)
            for name in names:
                self.cluster.nodes[name].stop()
                if wipe:
                    _wipe(self.cluster.nodes[name])
                self.cluster.nodes[name].start(wait=0)
            for name in names:
                self.cluster.nodes[name].wait_ready(wait)
            self.cluster.wait_converged(wait)
            self.cluster.save()

    def _rack(self, kind: str, rack: int, act, undo: str) -> FaultWindow:
        with self._lock:
            names = [n for n in self._rack_nodes(rack) if self.cluster.nodes[n].is_running()]
            if not names:
                raise FaultError(f"no node of rack {rack} is running")
            window = self._open(kind, names, [[undo, n] for n in names], rack=rack)
            for name in names:
                act(name)
            return window

    def _require_running(self, node: str) -> None:
        if not self.cluster.nodes[node].is_running():
            raise FaultError(f"node {node} is not running")

    def _end_down(self, node: str, start: bool) -> None:
        """End the kill/stop windows holding `node` down; without `start` the caller starts it."""
        for window in self.active():
            if window.kind in ("kill", "stop", "kill_rack", "stop_rack") and node in window.targets:
                steps = self._undo.get(window.id, [])
                mine = [s for s in steps if s[1] == node]
                rest = [s for s in steps if s[1] != node]
                if start:
                    for step in mine:
                        self._run_undo(step)
                if rest:  # other nodes of the rack stay down: the window goes on for them
                    self._undo[window.id] = rest
                    self._save_state()
                else:
                    self._undo[window.id] = []
                    self._close(window)

    # -- network faults ------------------------------------------------------------------------

    def partition(self, groups: Sequence[Sequence[str]], mode: str = "drop") -> FaultWindow:
        """Cut every link between nodes of different groups, both ways. Nodes in no group
        form a group of their own. `drop` (default): bytes vanish, connections stay open,
        as in a real partition; `refuse`: the ports are closed (connection refused)."""
        with self._lock:
            groups = self._check_groups(groups)
            self._check_mode(mode)
            self._check_up()
            pairs = [(a, b) for i, g in enumerate(groups) for h in groups[i + 1:] for a in g for b in h]
            targets = ["|".join(",".join(g) for g in groups)]
            return self._links.block(self, "partition", targets, pairs, mode, both_ways=True)

    def isolate(self, node: str, mode: str = "drop") -> FaultWindow:
        """Cut `node` off from every other node (clients still reach it)."""
        with self._lock:
            self._check_node(node)
            others = [n for n in self.cluster.nodes if n != node]
            self._check_mode(mode)
            self._check_up()
            return self._links.block(self, "isolate", [node], [(node, o) for o in others], mode, both_ways=True)

    def cut(self, src: str, dst: str, mode: str = "drop") -> FaultWindow:
        """One way: what `src` sends to `dst` (heartbeat and fabric) is lost; `dst` still
        reaches `src`."""
        with self._lock:
            self._check_pair(src, dst)
            self._check_mode(mode)
            self._check_up()
            return self._links.block(self, "cut", [src, dst], [(src, dst)], mode, both_ways=False)

    def latency(self, a: str, b: str | Sequence[str], ms: int, jitter: int = 0, *,
                channels: Sequence[str] = CHANNELS, one_way: bool = False) -> FaultWindow:
        """Delay every message between `a` and `b` (a node, or several: one window for all
        those links, targets `a` then each of them) by `ms` (± `jitter`) on the given
        channels (heartbeat, fabric), both ways unless `one_way` (then only a -> b)."""
        with self._lock:
            peers = self._check_links(a, b, channels)
            if ms < 0 or jitter < 0:
                raise FaultError("latency and jitter must be >= 0 ms")
            self._check_up()
            return self._links.toxic(self, "latency", [a, *peers], _link_pairs(a, peers, one_way), channels,
                                     "latency", {"latency": int(ms), "jitter": int(jitter)})

    def bandwidth(self, a: str, b: str | Sequence[str], kb_per_s: int, *, channels: Sequence[str] = CHANNELS,
                  one_way: bool = False) -> FaultWindow:
        """Limit what flows between `a` and `b` (a node, or several, as for latency) to
        `kb_per_s` KB/s per connection."""
        with self._lock:
            peers = self._check_links(a, b, channels)
            if kb_per_s < 0:
                raise FaultError("bandwidth must be >= 0 KB/s")
            self._check_up()
            return self._links.toxic(self, "bandwidth", [a, *peers], _link_pairs(a, peers, one_way), channels,
                                     "bandwidth", {"rate": int(kb_per_s)})

    def client_latency(self, node: str, ms: int, jitter: int = 0) -> FaultWindow:
        """Delay every answer `node` sends to clients by `ms` (± `jitter`)."""
        with self._lock:
            self._check_node(node)
            if ms < 0 or jitter < 0:
                raise FaultError("latency and jitter must be >= 0 ms")
            self._check_up()
            return self._links.client_toxic(self, "client_latency", node, "latency",
                                            {"latency": int(ms), "jitter": int(jitter)})

    def heal(self) -> list[FaultWindow]:
        """Remove every network fault this API made (and nothing else); returns their windows."""
        with self._lock:
            healed = [w for w in self.active() if w.kind in NETWORK_KINDS]
            errors = []
            for window in healed:
                try:
                    self._close(window)
                except RuntimeError as exc:
                    errors.append(str(exc))
            if self.cluster.links == "proxied" and self.cluster.proxy_ports:
                self._links.sweep()  # ours left behind by a process that lost its state
            if errors:
                raise RuntimeError("; ".join(errors))
            return healed

    # -- capacity ------------------------------------------------------------------------------

    def stop_writes(self, namespace: str = "test", nodes: Sequence[str] | None = None) -> FaultWindow:
        """Drive `namespace` into stop-writes on `nodes` (default: all running) by lowering
        stop-writes-used-pct to 0 with set-config; the window ends (thresholds back) with
        `end(window)`, `clear_stop_writes()` or `restore()`. When each node entered and left
        stop-writes is in `stop_writes_report()`."""
        with self._lock:
            self._check_up()
            names = [self._check_node(n) for n in nodes] if nodes else [n.work_dir.name for n in self.cluster.running()]
            undo = []
            for name in names:
                cfg = parse_info_kv(self.cluster.nodes[name].info(f"get-config:context=namespace;id={namespace}"))
                if "storage-engine.stop-writes-used-pct" not in cfg:
                    raise FaultError(f"node {name}: no namespace {namespace!r}")
                undo.append(["config", name, f"namespace;id={namespace}",
                             {"stop-writes-used-pct": cfg["storage-engine.stop-writes-used-pct"]}])
            self._watcher(namespace).watch(names)
            window = self._open("stop_writes", names, undo, namespace=namespace)
            for name in names:
                _set_config(self.cluster.nodes[name], f"namespace;id={namespace}", {"stop-writes-used-pct": "0"})
            self._watch.wait(names, True)  # returns once every node is in stop-writes (or 10 s)
            return window

    def clear_stop_writes(self) -> None:
        with self._lock:
            for window in self.active():
                if window.kind == "stop_writes":
                    self._close(window)

    def stop_writes_report(self) -> dict[str, list[tuple[float, float | None]]]:
        """node -> [(entered, left or None), ...] as seen by polling each node every 100 ms."""
        return self._watch.report() if self._watch else {}

    def _watcher(self, namespace: str) -> _StopWritesWatch:
        if self._watch is None or self._watch.namespace != namespace:
            if self._watch:
                self._watch.stop()
            self._watch = _StopWritesWatch(self.cluster, namespace)
        elif self._watch._stop.is_set():  # stopped by restore(): watch again
            self._watch = _StopWritesWatch(self.cluster, namespace)
        return self._watch

    # -- everything ------------------------------------------------------------------------------

    def restore(self) -> list[FaultWindow]:
        """Undo every fault still in force: heal the network, resume paused nodes, start
        killed or stopped ones, put thresholds back. For rollbacks and Ctrl-C."""
        with self._lock:
            ended = self.active()
            errors = []
            # network first, so that restarted nodes find their peers
            for window in sorted(ended, key=lambda w: w.kind not in NETWORK_KINDS):
                try:
                    self._close(window)
                except RuntimeError as exc:
                    errors.append(str(exc))
            if self._watch:
                self._watch.stop()
            if errors:
                raise RuntimeError("; ".join(errors))
            return ended

    def close(self) -> None:
        if self._watch:
            self._watch.stop()

    # -- undo steps (also run by a later process from faults.json) --------------------------------

    def _run_undo(self, step: list) -> None:
        what = step[0]
        if what == "resume":
            self.cluster.resume(step[1])
        elif what == "start":
            node = self.cluster.nodes[step[1]]
            if not node.is_running():
                node.start(wait=30)
                self.cluster.save()
        elif what == "config":
            node = self.cluster.nodes[step[1]]
            if node.is_running():
                _set_config(node, step[2], step[3])
        elif what in ("toxic", "enable", "iptables"):
            self._links.undo(step)
        else:
            raise ValueError(f"unknown undo step {step!r}")

    def _save_state(self) -> None:
        if not self._state_path.parent.exists():
            return
        state = {"next_id": self._next_id, "windows": [w.to_json() for w in self.windows],
                 "undo": {str(k): v for k, v in self._undo.items()}}
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, self._state_path)

    def _load_state(self) -> None:
        try:
            state = json.loads(self._state_path.read_text())
        except (FileNotFoundError, ValueError):
            return
        self._next_id = state.get("next_id", 1)
        self.windows = [FaultWindow.from_json(w) for w in state.get("windows", [])]
        self._undo = {int(k): v for k, v in state.get("undo", {}).items()}

    # -- helpers -------------------------------------------------------------------------------

    @property
    def _links(self):
        if self._links_backend is None:
            backend = getattr(self.cluster, "network_faults", None)  # a backend's own (DockerCluster)
            if backend is not None:
                self._links_backend = backend(self)
            else:
                from cluster.deploy.links import links_for
                self._links_backend = links_for(self)
        return self._links_backend

    def _check_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise FaultError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")

    def _check_channels(self, channels: Sequence[str]) -> None:
        bad = [c for c in channels if c not in CHANNELS]
        if bad or not channels:
            raise FaultError(f"channels must be among {', '.join(CHANNELS)}, not {list(channels)!r}")

    def _check_links(self, a: str, b: str | Sequence[str], channels: Sequence[str]) -> list[str]:
        """The peers of `a` in `b` (one node or several), checked with the channels."""
        peers = [b] if isinstance(b, str) else list(b)
        if not peers or len(set(peers)) != len(peers):
            raise FaultError(f"expected one or more different peers of {a}, got {peers}")
        for peer in peers:
            self._check_pair(a, peer)
        self._check_channels(channels)
        return peers

    def _check_pair(self, a: str, b: str) -> None:
        self._check_node(a)
        self._check_node(b)
        if a == b:
            raise FaultError(f"a link needs two different nodes, not {a} and {b}")

    def _check_groups(self, groups: Sequence[Sequence[str]]) -> list[list[str]]:
        groups = [list(g) for g in groups if g]
        seen: set[str] = set()
        for group in groups:
            for name in group:
                self._check_node(name)
                if name in seen:
                    raise FaultError(f"node {name} is in more than one group")
                seen.add(name)
        rest = [n for n in self.cluster.nodes if n not in seen]
        if rest:
            groups.append(rest)
        if len(groups) < 2:
            raise FaultError("a partition needs at least two groups")
        return groups


def _link_pairs(a: str, peers: Sequence[str], one_way: bool) -> list[tuple[str, str]]:
    return [(a, peer) for peer in peers] + ([] if one_way else [(peer, a) for peer in peers])


def wipe_data(work_dir: Path) -> None:
    """Delete a stopped node's data (everything in its directory but its log)."""
    for path in Path(work_dir).iterdir():
        if path.name == "node.log":
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def _wipe(node) -> None:
    """A node with its own way to lose its data (a container's volume), else its directory."""
    wipe = getattr(node, "wipe", None)
    if wipe is not None:
        wipe()
    else:
        wipe_data(node.work_dir)


def _set_config(node, context: str, values: dict[str, str]) -> None:
    command = f"set-config:context={context};" + ";".join(f"{k}={v}" for k, v in values.items())
    answer = node.info(command)
    if answer != "ok":
        raise RuntimeError(f"{command} answered {answer}")


class _StopWritesWatch:
    """Polls namespace/<ns> stop_writes on the nodes every 100 ms and records transitions."""

    def __init__(self, cluster: LocalCluster, namespace: str, interval: float = 0.1):
        self.cluster, self.namespace, self.interval = cluster, namespace, interval
        self.nodes: set[str] = set()
        self.spans: dict[str, list[list]] = {}
        self._state: dict[str, bool] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def watch(self, names: Iterable[str]) -> None:
        with self._lock:
            self.nodes.update(names)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="stop-writes-watch", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                names = list(self.nodes)
            for name in names:
                self.poll(name)

    def wait(self, names: Iterable[str], in_stop_writes: bool, timeout: float = 10.0) -> bool:
        """Poll `names` until all are (or are no longer) in stop-writes; False at the timeout."""
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending and time.monotonic() < deadline:
            pending = {n for n in pending if self.poll(n) is not in_stop_writes}
            if pending:
                time.sleep(0.02)
        return not pending

    def poll(self, name: str) -> bool | None:
        """Ask one node and record a transition; its state, or None if it did not answer."""
        node = self.cluster.nodes.get(name)
        try:
            now_in = parse_info_kv(node.info(f"namespace/{self.namespace}")).get("stop_writes") == "true"
        except (OSError, AttributeError):
            return None
        with self._lock:
            was = self._state.get(name, False)
            if now_in and not was:
                self.spans.setdefault(name, []).append([time.time(), None])
            elif was and not now_in:
                self.spans[name][-1][1] = time.time()
            self._state[name] = now_in
        return now_in

    def report(self) -> dict[str, list[tuple[float, float | None]]]:
        with self._lock:
            return {name: [tuple(s) for s in spans] for name, spans in self.spans.items()}

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
