"""What must hold once faults stop (safety is checked on every event by the simulation).

Components: the final network (all nodes, or each side of a final split), further cut
into the groups of nodes that can still discover each other: A and B belong together when
one of them still pulses the other's heartbeat endpoint (a seed, or learned and not yet
forgotten), and transitively. Mesh discovery works exactly along such links (a pulse
teaches the receiver the sender's endpoint; pulses list the sender's neighbours), while
nodes that forgot each other (silent for 10 node timeouts, Aerospike's
MESH_INACTIVE_TIMEOUT) and are cut off from every node that knows them both never meet
again — in Aerospike too, whose only other way is an operator's ``tip``.

For every component, once every node's heartbeat adjacency is exactly the rest of its
component (the failure detector has caught up; before that, nodes rightly act on stale
adjacency): if it has at least ``min-cluster-size`` nodes, every node in it has applied
the same cluster key with exactly the component as succession list, has completed the
exchange for that cluster, and its client partition map (derived from the exchange's
succession list) equals partition balance of the component. A smaller component must
consist of orphans.
"""

from functools import lru_cache

from cluster.core.node_id import format_node_id
from cluster.core.partition_balance import effective_replication_factor, partition_table, replica_bitmaps


@lru_cache(maxsize=256)
def partition_map(succession: tuple[int, ...], node_id: int, replication_factor: int) -> tuple[bytes, ...]:
    rf = effective_replication_factor(replication_factor, len(succession))
    return tuple(replica_bitmaps(partition_table(succession), node_id, rf))


def _hex(nodes) -> str:
    return "[" + " ".join(format_node_id(n) for n in nodes) + "]"


def _seen(sim, i: int) -> set[int]:
    """Node ``i`` and the nodes its heartbeat holds adjacent."""
    node = sim.nodes[i]
    return node.membership.heartbeat.adjacency.keys() | {node.node_id}


def discovery_groups(sim, group, seen=None) -> list[tuple[int, ...]]:
    """``group`` (node indexes) cut into the sets of nodes that can discover each other."""
    seen = seen or {i: _seen(sim, i) for i in group}
    everyone = {sim.nodes[i].node_id for i in group}
    if all(seen[i] == everyone for i in group):
        return [tuple(group)]  # all hear each other (the usual case), so all know each other
    leader = {i: i for i in group}

    def find(i):
        while leader[i] != i:
            leader[i] = i = leader[leader[i]]
        return i

    for i in group:
        heartbeat = sim.nodes[i].membership.heartbeat
        for j in group:
            if j != i and heartbeat.knows(sim.nodes[j].endpoint):
                leader[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in group:
        groups.setdefault(find(i), []).append(i)
    return [tuple(g) for g in groups.values()]


def components(sim, seen=None) -> list[tuple[int, ...]]:
    return [part for group in sim.final_groups for part in discovery_groups(sim, group, seen)]


def convergence_problems(sim) -> list[str]:
    problems = []
    rf = sim.config.replication_factor
    seen = {i: _seen(sim, i) for group in sim.final_groups for i in group}
    for group in components(sim, seen):
        expected = tuple(sorted((sim.nodes[i].node_id for i in group), reverse=True))
        members = set(expected)
        forms_cluster = len(group) >= sim.config.min_cluster_size
        keys = set()
        for i in group:
            node = sim.nodes[i]
            clustering = node.membership.clustering
            adjacent = seen[i]
            if adjacent != members:
                problems.append(f"{_name(node)} sees {_hex(sorted(adjacent, reverse=True))}, its component is {_hex(expected)}")
            elif not forms_cluster:
                if not clustering.is_orphan:
                    problems.append(f"{_name(node)} is in cluster {_hex(clustering.succession)} below min-cluster-size")
            elif clustering.succession != expected:
                problems.append(f"{_name(node)} has succession {_hex(clustering.succession)}, expected {_hex(expected)}")
            elif not clustering.synced:
                problems.append(f"{_name(node)} has not seen every member apply cluster {clustering.cluster_key:x}")
            elif node.exchanged is None or node.exchanged.cluster_key != clustering.cluster_key:
                problems.append(f"{_name(node)} has not completed the exchange for {clustering.cluster_key:x}")
            elif node.exchanged.succession != expected and (  # the same list gives the same map
                partition_map(node.exchanged.succession, node.node_id, rf) != partition_map(expected, node.node_id, rf)
            ):
                problems.append(f"{_name(node)} partition map differs from partition balance of {_hex(expected)}")
            else:
                keys.add(clustering.cluster_key)
        if len(keys) > 1:
            problems.append(f"component {_hex(expected)} holds several cluster keys: {sorted(keys)}")
    return problems


def _name(node) -> str:
    return format_node_id(node.node_id)
