"""Partition rebalance after an exchange: who serves, who migrates what to whom
(Aerospike's balance_namespace_ap and queue_namespace_migrations in partition_balance.c).

Every member runs `balance_namespace` on the same exchanged versions and gets the same
global decisions; each keeps the part that concerns itself. For one partition, with the
node sequence from `partition_balance` and every node's version of its copy:

1. Working master: the first node in sequence order whose copy has the master flag — moved
   forward to an earlier node holding a full copy of the same lineage, if any. Without a
   master flag anywhere, the best-scoring copy (full > subset > evade > subset+evade,
   earlier position first). Nobody holding data: the partition is *fresh*, the final master
   serves it empty and nothing migrates.
2. Duplicates: copies of lineages other than the working master's that may hold records it
   lacks — every "unique" copy, one full copy per other lineage, or every subset of a
   lineage with no full copy. They are merged into the final master.
3. Immigrators: with duplicates, every replica (all must receive the merge); otherwise the
   final master unless it is the working master, and every other replica that lacks a full
   copy of the working master's lineage.
4. No immigrators: replicas adopt the final version at once, non-replicas drop their copy.
   Otherwise: the working master (an *acting* master when it is not the final master) and
   every duplicate holder emigrate to the final master; the final master, once it has
   received all of them, emigrates to the other immigrating replicas ("contingent"
   migrations) and then tells the witnesses (non-replicas with data) that they may drop
   their copies (ALL_DONE).
5. Versions while duplicates merge: copies keep their lineages apart under the new cluster
   key (families, as Aerospike does), so a cluster change before the merge is done still
   finds every copy the working master may lack; a copy joins the merge's lineage once its
   migration to the final master is acknowledged (data_plane).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .partition_version import FAMILY_UNIQUE, NO_VERSION, Version, unpack, version_ckey

# kinds of emigration, in the order the spec gives them priority
ACTING_MASTER, DUPLICATE, CONTINGENT = "acting-master", "duplicate", "contingent"


@dataclass(slots=True)
class PartitionPlan:
    """One partition, from one node's point of view, right after a rebalance."""

    pid: int
    replicas: tuple[int, ...]  # position 0 = final master
    working_master: int  # who serves it now (the final master of a fresh partition)
    immigrate_from: frozenset[int]  # sources this node waits for
    emigrate_to: tuple[tuple[int, str], ...]  # (destination, kind) to send now
    contingent_to: tuple[int, ...]  # final master only: to send once all immigrations are in
    witnesses: tuple[int, ...]  # final master only: non-replicas with data, told ALL_DONE
    version: Version  # this node's version now
    final_version: Version  # this node's version once its part is done
    drop: bool  # not a replica and no migration needs this copy: forget it now
    duplicates: tuple[int, ...] = ()

    @property
    def final_master(self) -> int:
        return self.replicas[0]


def _working_master(seq: Sequence[int], versions: Mapping[int, Version]) -> int | None:
    for i, node in enumerate(seq):
        v = versions[node]
        if v.master:
            for earlier in seq[:i]:  # an identical full copy earlier in the sequence serves instead
                e = versions[earlier]
                if e.full and e.lineage == v.lineage:
                    return earlier
            return node
    best, best_score = None, -1
    for node in seq:
        v = versions[node]
        if v.has_data and v.score() > best_score:
            best, best_score = node, v.score()
    return best


def _duplicates(seq: Sequence[int], versions: Mapping[int, Version], wm: int) -> tuple[int, ...]:
    by_lineage: dict[tuple[int, int], list[int]] = {}
    dups: list[int] = []
    for node in seq:
        v = versions[node]
        if not v.has_data or node == wm:
            continue
        if v.family == FAMILY_UNIQUE:  # no known lineage: not even another unique copy shares it
            dups.append(node)
        elif v.lineage != versions[wm].lineage:
            by_lineage.setdefault(v.lineage, []).append(node)
    for nodes in by_lineage.values():
        full = [n for n in nodes if versions[n].full]
        if full:
            dups.append(full[0])
        else:
            dups.extend(nodes)
    return tuple(sorted(dups, key=seq.index))


def _prole_family(replicas: Sequence[int], versions: Mapping[int, Version], wm: int, self_id: int) -> int:
    """A replica's family under the new cluster key while duplicates merge (find_family in
    Aerospike's partition_balance.c).

    Copies that shared a lineage still share one, and none joins the working master's
    unless it was of it: a copy of another lineage may hold records the working master
    lacks, and if the cluster changes before its duplicate migration is acknowledged
    (data_plane adopts family 0 then), the next rebalance must still see it as a duplicate.
    Family 0 is the working master's lineage when it is the final master; otherwise 0 is
    the merge's, which no copy has yet, and 1 the acting master's."""
    def key(node: int):
        v = versions[node]
        return node if v.family == FAMILY_UNIQUE else v.lineage  # a unique copy shares with nobody

    families: list = [versions[wm].lineage] if wm == replicas[0] else [None, versions[wm].lineage]
    for node in replicas[1:]:
        if node != wm and versions[node].has_data and key(node) not in families:
            families.append(key(node))
    return min(families.index(key(self_id)), FAMILY_UNIQUE)


def plan_partition(pid: int, seq: Sequence[int], rf: int, versions: Mapping[int, Version], cluster_key: int,
                   self_id: int) -> PartitionPlan:
    replicas = tuple(seq[:rf])
    final_master = replicas[0]
    ckey = version_ckey(cluster_key)
    mine = versions[self_id]
    pos = replicas.index(self_id) if self_id in replicas else -1
    final = Version(ckey, 0, master=pos == 0) if pos >= 0 else Version()

    wm = _working_master(seq, versions)
    if wm is None:  # fresh: nobody has data
        return PartitionPlan(pid, replicas, final_master, frozenset(), (), (), (), final, final, drop=False)

    dups = _duplicates(seq, versions, wm)
    wm_lineage = versions[wm].lineage
    if dups:
        immigrators = set(replicas)
    else:
        immigrators = {n for n in replicas if n != wm
                       and not (versions[n].full and versions[n].lineage == wm_lineage)}
        if final_master != wm:
            immigrators.add(final_master)
    if not immigrators:
        return PartitionPlan(pid, replicas, wm, frozenset(), (), (), (), final, final, drop=pos < 0 and mine.has_data)

    sources = ({wm} | set(dups)) - {final_master}
    witnesses = tuple(n for n in seq if n not in replicas and versions[n].has_data)
    contingent = tuple(n for n in replicas[1:] if n in immigrators)
    emigrate: list[tuple[int, str]] = []
    if self_id != final_master:
        if self_id == wm:
            emigrate.append((final_master, ACTING_MASTER))
        elif self_id in dups:
            emigrate.append((final_master, DUPLICATE))

    if self_id == wm:
        # family 0 is the lineage the merge ends in (the final master's): an acting master
        # that is not the final master keeps its own copy apart as family 1 until handed off
        version = Version(ckey, 1 if dups and wm != final_master else 0, master=True)
    elif dups and pos > 0 and mine.has_data:
        family = _prole_family(replicas, versions, wm, self_id)
        version = Version(ckey, family, subset=mine.subset or family == 0, evade=mine.evade)
    elif self_id in immigrators:
        version = Version(ckey, 0, subset=True, evade=not mine.has_data)
    elif pos >= 0:
        version = final  # a full copy of the working master's lineage
    else:
        version = mine  # a duplicate or a stale copy, kept until ALL_DONE
    if self_id == final_master:
        immigrate_from = frozenset(sources)
        if not sources:  # already the working master: send the contingent migrations now
            emigrate.extend((n, CONTINGENT) for n in contingent)
    elif self_id in immigrators:
        immigrate_from = frozenset({final_master})
    else:
        immigrate_from = frozenset()
    return PartitionPlan(
        pid, replicas, wm, immigrate_from, tuple(emigrate),
        contingent if self_id == final_master else (),
        witnesses if self_id == final_master else (),
        version, final if pos >= 0 else Version(), drop=False, duplicates=dups)


def balance_namespace(table: Sequence[Sequence[int]], rf: int, versions_by_node: Mapping[int, Mapping[int, int]],
                      cluster_key: int, self_id: int) -> list[PartitionPlan]:
    """Plans for all partitions; `versions_by_node` maps node -> pid -> packed version.

    A plan depends only on the versions in sequence order and on our position, so it is
    computed once per distinct such pattern (a handful in a 4096-partition table) on
    positions, then relabelled with each partition's nodes."""
    empty: Mapping[int, int] = {}
    plans = []
    cache: dict[tuple, PartitionPlan] = {}
    for pid, seq in enumerate(table):
        packed = tuple(versions_by_node.get(n, empty).get(pid, NO_VERSION) for n in seq)
        pos = seq.index(self_id)
        rel = cache.get((packed, pos))
        if rel is None:
            positions = tuple(range(len(seq)))
            rel = plan_partition(0, positions, rf, dict(zip(positions, map(unpack, packed), strict=True)),
                                 cluster_key, pos)
            cache[(packed, pos)] = rel
        plans.append(PartitionPlan(
            pid, tuple(seq[i] for i in rel.replicas), seq[rel.working_master],
            frozenset(seq[i] for i in rel.immigrate_from), tuple((seq[i], k) for i, k in rel.emigrate_to),
            tuple(seq[i] for i in rel.contingent_to), tuple(seq[i] for i in rel.witnesses),
            rel.version, rel.final_version, rel.drop, tuple(seq[i] for i in rel.duplicates)))
    return plans


def versions_by_pid(versions: Mapping[int, Sequence[int]]) -> dict[int, int]:
    """The exchange's ``version -> pids`` form turned into ``pid -> version``."""
    return {pid: v for v, pids in versions.items() for pid in pids}
