"""Cluster discovery and the tend loop, in the order the official C client uses.

1. Seeds: `node\\npartition-generation\\nbuild\\n[cluster-name\\n]` on a new socket, which
   becomes that node's tend socket.
2. Peers: `peers-clear-std` on every healthy node; unknown peers are validated like seeds
   and their own peers fetched in the same pass.
3. Partition map: `partition-generation\\nreplicas\\n` from every node whose generation moved.
4. Then every tend interval: `node\\npeers-generation\\npartition-generation\\n` per node;
   a moved peers generation (or a node recovering from failures) refetches all peers,
   a moved partition generation refetches that node's replicas.

Nodes are dropped after MAX_FAILURES failed tends in a row, or when no other node
lists them and they hold no partition. The node table and partition map are replaced,
never mutated, so command threads read them without locks.
"""

import logging
import threading

from cluster.wire.result_codes import AerospikeError

from .connection import Connection
from .errors import ClientError, ConnectionFailed, InvalidNode, NamespaceNotFound
from .node import Node
from .partitions import PartitionMap, parse_replicas
from .peers import parse_peers

log = logging.getLogger(__name__)

MAX_FAILURES = 5
VALIDATE = ["node", "partition-generation", "build"]
REFRESH = ["node", "peers-generation", "partition-generation"]
PEERS = "peers-clear-std"
PEERS_ALT = "peers-clear-alt"  # use_services_alternate: the nodes' alternate-access addresses
REPLICAS = ["partition-generation", "replicas"]


def _value(reply: dict[str, str], name: str) -> str:
    value = reply.get(name)
    if value is None or value.startswith("ERROR:"):
        raise ClientError(f"info {name!r} answered {value!r}")
    return value


class Cluster:
    def __init__(self, seeds: list[tuple[str, int]], cluster_name: str | None = None,
                 tend_interval: float = 1.0, timeout: float = 1.0, max_conns_per_node: int = 100,
                 services_alternate: bool = False):
        if not seeds:
            raise ClientError("no seed hosts configured")
        self.seeds = [(str(h), int(p)) for h, p in seeds]
        self.cluster_name = cluster_name
        self.tend_interval = tend_interval
        self.timeout = timeout
        self.max_conns_per_node = max_conns_per_node
        self.peers_command = PEERS_ALT if services_alternate else PEERS
        self.nodes: dict[str, Node] = {}
        self.partitions = PartitionMap()
        self.unreachable_peers: set[tuple[str, int]] = set()
        self._tend_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def connect(self) -> None:
        """One full tend in the caller's thread, then the background tend thread."""
        self.tend()
        if not self.nodes:
            raise ConnectionFailed(f"no seed answered: {self.seeds}")
        if self.unreachable_peers:
            missing = ", ".join(f"{h}:{p}" for h, p in sorted(self.unreachable_peers))
            self.close()
            raise ClientError(f"Peers not reachable: {missing}")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="aerospike-tend", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.timeout + self.tend_interval + 1)
        self._thread = None
        with self._tend_lock:
            nodes, self.nodes = self.nodes, {}
            self.partitions = PartitionMap()
        for node in nodes.values():
            node.close()

    @property
    def is_connected(self) -> bool:
        return self._thread is not None and bool(self.nodes)

    def _run(self) -> None:
        while not self._stop.wait(self.tend_interval):
            try:
                self.tend()
            except Exception:  # the loop must survive anything one tend throws
                log.exception("cluster tend failed")

    # -- routing -----------------------------------------------------------------------------

    def node_for(self, namespace: str, pid: int, attempt: int = 0, sequence: bool = False) -> Node:
        """The node to ask about `pid`: master, or with `sequence` the attempt-th live replica."""
        pmap = self.require_namespace(namespace)
        n_columns = pmap.n_replicas(namespace) if sequence else 1
        for step in range(n_columns):
            node = pmap.node(namespace, pid, (attempt + step) % n_columns)
            if node is not None and not node.closed:
                return node
        raise InvalidNode(f"no node for partition {pid} of {namespace}")

    def require_namespace(self, namespace: str) -> PartitionMap:
        """The current map, provided it knows `namespace`."""
        pmap = self.partitions
        if namespace not in pmap.namespaces():
            raise NamespaceNotFound(f"Invalid namespace: {namespace}")
        return pmap

    def any_node(self) -> Node:
        for node in self.nodes.values():
            if node.failures == 0:
                return node
        raise InvalidNode("no live node in the cluster")

    # -- tend --------------------------------------------------------------------------------

    def tend(self) -> None:
        with self._tend_lock:
            self._tend()

    def _tend(self) -> None:
        nodes = dict(self.nodes)
        if nodes:
            refreshed = [self._refresh(node) for node in nodes.values()]  # every node, no short-circuit
            peers_changed = any(refreshed)
        else:  # first tend, or every node was lost: start over from the seeds
            nodes = self._seed_nodes()
            peers_changed = True
        if peers_changed:
            self._refresh_peers(nodes)
        pmap = self.partitions
        for node in nodes.values():
            if node.failures == 0 and node.partition_generation != node.seen_partition_generation:
                pmap = self._load_replicas(node, pmap)
        gone = self._removable(nodes, pmap)
        for node in gone:
            log.info("removing %r from the cluster view", node)
            del nodes[node.name]
            node.close()
        self.partitions = pmap.without(gone) if gone else pmap
        self.nodes = nodes

    def _seed_nodes(self) -> dict[str, Node]:
        nodes: dict[str, Node] = {}
        for host, port in self.seeds:
            node = self._validate([(host, port)])
            if node is None:
                continue
            if node.name in nodes:  # two seeds reaching one node
                node.close()
            else:
                nodes[node.name] = node
        return nodes

    def _validate(self, hosts: list[tuple[str, int]], expected: str | None = None) -> Node | None:
        """A Node for the first host that answers validation as `expected` (any name if None)."""
        commands = VALIDATE + (["cluster-name"] if self.cluster_name else [])
        for host, port in hosts:
            conn = None
            try:
                conn = Connection(host, port, self.timeout)
                conn.set_timeout(self.timeout)
                reply = conn.info(commands)
                name = _value(reply, "node")
                generation = int(_value(reply, "partition-generation"))
                _value(reply, "build")
                if generation == -1:
                    raise ClientError(f"{name} is not yet fully initialized")
                if self.cluster_name and _value(reply, "cluster-name") != self.cluster_name:
                    raise ClientError(f"{name} is in another cluster")
                if expected is not None and name != expected:
                    raise ClientError(f"peer {expected} is actually {name}")
            except (AerospikeError, ValueError) as exc:
                log.warning("cannot validate %s:%d: %s", host, port, exc)
                if conn is not None:
                    conn.close()
                continue
            node = Node(name, host, port, conn, self.max_conns_per_node, self.timeout)
            node.seen_partition_generation = generation
            return node
        return None

    def _refresh(self, node: Node) -> bool:
        """Poll one node; True if the peers lists must be refetched."""
        try:
            reply = node.tend_info(REFRESH, self.timeout)
            name = _value(reply, "node")
            if name != node.name:
                raise ClientError(f"node name changed from {node.name} to {name}")
            peers_generation = int(_value(reply, "peers-generation"))
            node.seen_partition_generation = int(_value(reply, "partition-generation"))
        except (AerospikeError, ValueError) as exc:
            node.failures += 1
            log.warning("tend of %r failed (%d in a row): %s", node, node.failures, exc)
            return True  # its peers may now list other nodes, or none
        recovered = node.failures > 0
        node.failures = 0
        return recovered or peers_generation != node.peers_generation

    def _refresh_peers(self, nodes: dict[str, Node]) -> None:
        """Fetch peers from every healthy node, adding (and then asking) peers we did not know."""
        self.unreachable_peers = set()
        queue = [n for n in nodes.values() if n.failures == 0]
        while queue:
            node = queue.pop(0)
            try:
                command = self.peers_command
                generation, peers = parse_peers(_value(node.tend_info([command], self.timeout), command))
            except (AerospikeError, ValueError) as exc:
                node.failures += 1
                log.warning("peers of %r failed: %s", node, exc)
                continue
            node.peers = peers
            complete = True
            for name, hosts in peers:
                if name in nodes:
                    continue
                new = self._validate(hosts, expected=name)
                if new is None:
                    complete = False
                    self.unreachable_peers.update(hosts)
                    continue
                nodes[name] = new
                queue.append(new)
            # An incomplete view is retried next tend by leaving the generation unrecorded.
            if complete:
                node.peers_generation = generation

    def _load_replicas(self, node: Node, pmap: PartitionMap) -> PartitionMap:
        try:
            reply = node.tend_info(REPLICAS, self.timeout)
            generation = int(_value(reply, "partition-generation"))
            claims = parse_replicas(_value(reply, "replicas"))
        except (AerospikeError, ValueError) as exc:
            node.failures += 1
            log.warning("replicas of %r failed: %s", node, exc)
            return pmap
        pmap, losers = pmap.with_claims(node, claims)
        for loser in losers:
            loser.partition_generation = None  # its map is older than this one: refetch it
        node.partition_generation = generation
        return pmap

    @staticmethod
    def _removable(nodes: dict[str, Node], pmap: PartitionMap) -> set[Node]:
        listed = {name for n in nodes.values() if n.failures == 0 for name, _ in n.peers}
        gone = set()
        for node in nodes.values():
            if node.failures >= MAX_FAILURES:
                gone.add(node)
            elif len(nodes) > 1 and node.name not in listed and not pmap.owns_any(node):
                gone.add(node)
        return gone
