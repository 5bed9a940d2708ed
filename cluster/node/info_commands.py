"""Info commands (proto type 1) as asinfo and the official clients know them.

Each handler returns the value text for one request line; unknown commands answer
`ERROR:4:unrecognized command`, bad arguments `ERROR:4:<why>`.
"""

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from cluster.core import sindex
from cluster.node.config import NAMESPACE, NETWORK, SERVICE, STORAGE, ConfigError
from cluster.node.query import count_entries
from cluster.storage.record import CITRUSLEAF_EPOCH, now_cl_ms, now_cl_seconds
from cluster.wire import proto
from cluster.wire.info import build_request, error_value, parse_command
from cluster.wire.result_codes import ResultCode

if TYPE_CHECKING:
    from cluster.node.server import Node

log = logging.getLogger(__name__)

BUILD = "7.2.0.0"  # >= 6.0 selects the modern batch format; < 8.1 avoids 8.1-only client paths
FEATURES = ("batch-any;batch-index;blob-bits;cdt-list;cdt-map;cluster-stable;float;peers;"
            "pipelining;pquery;pscans;query-show;replicas;replicas-all;replicas-master;replicas-max;truncate-namespace")


def advertised_service(std: str, cfg) -> str:
    """What this node tells the cluster (in the exchange) clients may reach it at: its
    service endpoint, and after a `|` its alternate one if configured (Aerospike's
    `alternate-access-address`/`-port`, listed by peers-clear-alt and services-alternate)."""
    svc = cfg.network["service"]
    if not (svc["alternate-access-address"] or svc["alternate-access-port"]):
        return std
    host = svc["alternate-access-address"] or svc["access-address"] or svc["address"]
    return f"{std}|{host}:{svc['alternate-access-port'] or svc['port']}"


def split_service(advertised: str) -> tuple[str, str]:
    """(standard, alternate) from `advertised_service`'s text; alternate = standard if none."""
    std, _, alt = advertised.partition("|")
    return std, alt or std


async def _tell(address: str, lines: list[str], timeout: float = 5.0) -> None:
    """Send info commands to another node's service port; its answers only get logged."""
    host, _, port = address.rpartition(":")
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, int(port))
            try:
                writer.write(build_request(lines))
                _type, length = proto.unpack_header(await reader.readexactly(8))
                answer = (await reader.readexactly(length)).decode(errors="replace")
            finally:
                writer.close()
        if "ERROR" in answer:
            log.warning("%s answered %r", address, answer)
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        log.warning("could not tell %s %s: %s", address, lines, exc)


class InfoError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def _kv(pairs: dict) -> str:
    return ";".join(f"{k}={v}" for k, v in pairs.items())


def _fmt(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


class InfoHandler:
    def __init__(self, node: "Node"):
        self.node = node
        self.commands: dict[str, Callable[[list[str], dict[str, str]], str]] = {
            "node": lambda a, k: node.name,
            "build": lambda a, k: BUILD,
            "version": lambda a, k: f"Aerospike Community Edition build {BUILD}",
            "edition": lambda a, k: "Aerospike Community Edition",
            "features": lambda a, k: FEATURES,
            "partitions": lambda a, k: "4096",
            "status": lambda a, k: "ok",
            "cluster-name": lambda a, k: node.cfg.service["cluster-name"],
            "partition-generation": lambda a, k: str(node.partition_table.generation),
            "rebalance-generation": lambda a, k: str(node.rebalance_generation),
            "cluster-generation": lambda a, k: str(node.cluster_generation),
            "peers-generation": lambda a, k: str(node.peers_generation),
            "peers-clear-std": lambda a, k: self._peers(alt=False),
            "peers-clear-alt": lambda a, k: self._peers(alt=True),
            "peers-tls-std": lambda a, k: f"{node.peers_generation},,[]",
            "peers-tls-alt": lambda a, k: f"{node.peers_generation},,[]",
            "alumni-clear-std": lambda a, k: self._peers(alt=False),
            "service": lambda a, k: node.service_address(),
            "service-clear-std": lambda a, k: node.service_address(),
            "service-clear-alt": lambda a, k: split_service(advertised_service(node.service_address(), node.cfg))[1],
            "services": lambda a, k: ";".join(split_service(p.service)[0] for p in node.peers()),
            "services-alternate": lambda a, k: ";".join(split_service(p.service)[1] for p in node.peers()),
            "services-alumni": lambda a, k: ";".join(split_service(p.service)[0] for p in node.peers()),
            "replicas": self._replicas,
            "replicas-all": lambda a, k: node.partition_table.replicas_value(with_regime=False),
            "replicas-master": lambda a, k: node.partition_table.master_value(),
            "rack-ids": lambda a, k: ";".join(f"{ns}:{p['rack-id']}" for ns, p in node.cfg.namespaces.items()),
            "namespaces": lambda a, k: ";".join(node.namespaces),
            "namespace": self._namespace,
            "sets": self._sets,
            "logs": lambda a, k: "0:stderr",  # the node logs to its standard error
            # UDF modules (cluster/node/udf_modules.py), shared with every member like truncate
            "udf-put": lambda a, k: self._udf_change(node.udf.put(k)),
            "udf-remove": lambda a, k: self._udf_change(node.udf.remove(k)),
            "udf-get": lambda a, k: node.udf.registry.get(k),
            "udf-list": lambda a, k: node.udf.registry.list(),
            "udf-merge": self._udf_merge,  # ours: one node telling another (see _udf_change)
            # background scan/query jobs (cluster/node/udf_jobs.py)
            "query-show": lambda a, k: self._job_command(node.transactions.jobs.show, k),
            "query-abort": lambda a, k: self._job_command(node.transactions.jobs.abort, k),
            "query-abort-all": lambda a, k: node.transactions.jobs.abort_all(),
            "bins": lambda a, k: "",
            "sindex-create": self._sindex_create,
            "sindex-delete": self._sindex_delete,
            "sindex": self._sindex,  # the pre-8.1 listing and stats: sindex[/ns[/name]]
            "sindex-list": self._sindex_list,
            "sindex-stat": self._sindex_stat,
            "sindex-exists": self._sindex_exists,
            "sindex-merge": self._sindex_merge,  # ours: one node telling another (see _share_sindex)
            "statistics": lambda a, k: _kv({key: _fmt(v) for key, v in node.statistics().items()}),
            "get-config": self._get_config,
            "set-config": self._set_config,
            "cluster-stable": self._cluster_stable,
            # ours, not the real server's columns: namespace:pid:replica-index(-1 = none):
            # working-master:version:immigrations-pending:records
            "partition-info": lambda a, k: ";".join(node.data.partition_info(k.get("namespace"))),
            "user-agent-set": lambda a, k: "ok",
            "log-message": self._log_message,
            "truncate": lambda a, k: self._truncate(k, whole_namespace=False),
            "truncate-namespace": lambda a, k: self._truncate(k, whole_namespace=True),
            "truncate-undo": self._truncate_undo,
            "truncate-merge": self._truncate_merge,  # ours: one node telling another (see _share)
        }
        self._sending: set[asyncio.Task] = set()
        # Index entries for namespaces this node does not serve: the server's SMD keeps them
        # (the name is taken, a second create with another definition fails with 200) though
        # no node builds them. Ours live in memory on the node that took the command.
        self._unserved_sindexes: dict[str, sindex.Catalog] = {}

    def answer(self, line: str) -> str:
        name, args, kv = parse_command(line)
        handler = self.commands.get(name)
        if handler is None:
            return error_value(4, "unrecognized command")
        try:
            return handler(args, kv)
        except (InfoError, sindex.SindexError) as exc:
            return error_value(exc.code, str(exc))
        except ConfigError as exc:
            return error_value(4, str(exc))

    def _sets(self, args, kv) -> str:
        """`sets[/ns[/set]]`: one `ns=..:set=..:objects=..` entry per set that holds records
        (the records without a set are not a set); with both names, that set's values alone."""
        names = [args[0]] if args else list(self.node.namespaces)
        entries = []
        for ns in names:
            if ns not in self.node.namespaces:
                raise InfoError(2, "namespace not found")
            namespace = self.node.namespaces[ns]
            for set_name, (objects, tombstones) in sorted(namespace.storage.set_counts().items()):
                if not set_name or (len(args) > 1 and set_name != args[1]):
                    continue
                values = f"objects={objects}:tombstones={tombstones}:truncate_lut={namespace.truncate_lut(set_name)}"
                entries.append(values if len(args) > 1 else f"ns={ns}:set={set_name}:{values}")
        return ";".join(entries)

    def _peers(self, alt: bool) -> str:
        # Other nodes only: listing ourselves makes the official client add a duplicate node.
        entries = ",".join(f"[{p.name},,[{split_service(p.service)[alt]}]]" for p in self.node.peers())
        return f"{self.node.peers_generation},,[{entries}]"

    def _replicas(self, args, kv) -> str:
        max_cols = kv.get("max")
        return self.node.partition_table.replicas_value(max_columns=int(max_cols) if max_cols else None)

    def _namespace(self, args, kv) -> str:
        if not args or args[0] not in self.node.namespaces:
            raise InfoError(2, "namespace not found")
        return _kv({k: _fmt(v) for k, v in self.node.namespace_statistics(args[0]).items()})

    def _get_config(self, args, kv) -> str:
        cfg = self.node.cfg
        context = kv.get("context", "service")
        if context == "service":
            values = {p.name: cfg.service[p.name] for p in SERVICE}
        elif context == "network":
            values = {f"{ctx}.{p.name}": cfg.network[ctx][p.name] for ctx, params in NETWORK.items() for p in params}
        elif context == "namespace":
            ns = kv.get("id") or kv.get("namespace")
            if ns not in cfg.namespaces:
                raise InfoError(4, f"namespace {ns!r} not found")
            values = {p.name: cfg.namespaces[ns][p.name] for p in NAMESPACE}
            values.update({f"storage-engine.{p.name}": cfg.namespaces[ns]["storage-engine"][p.name] for p in STORAGE})
        else:
            raise InfoError(4, f"unknown context {context!r}")
        return _kv({k: _fmt(v) for k, v in values.items()})

    def _set_config(self, args, kv) -> str:
        context = kv.pop("context", None)
        if context is None:
            raise InfoError(4, "set-config needs context=")
        self.node.cfg.set_dynamic(context, kv)
        self.node.config_changed(context)
        log.info("set-config context=%s %s", context, kv)
        return "ok"

    def _cluster_stable(self, args, kv) -> str:
        """asinfo's `cluster-stable:[size=N];[ignore-migrations=BOOL];[namespace=NS]`.

        The cluster key (hex) when balanced, of that size and, unless migrations are
        ignored, with none remaining (in that namespace, or anywhere); otherwise the real
        server's `ERROR::<reason>` strings, which tools such as asadm match on.
        """
        node = self.node
        key = node.cluster_key
        if not node.cluster_is_stable():
            return "ERROR::unstable-cluster"
        if "size" in kv:
            if not kv["size"].isdigit():
                return "ERROR::bad-size"
            if int(kv["size"]) != node.cluster_size:
                return "ERROR::cluster-not-specified-size"
        ignore = kv.get("ignore-migrations", "false")
        if ignore not in ("true", "yes", "false", "no"):
            return "ERROR::bad-ignore-migrations"
        if ignore in ("false", "no"):
            ns = kv.get("namespace")
            if ns is not None and ns not in node.namespaces:
                return "ERROR::unknown-namespace"
            if node.migrations_remaining(ns):
                return "ERROR::unstable-cluster"
        if key != node.cluster_key:  # the cluster changed while we looked
            return "ERROR::unstable-cluster"
        return f"{key:X}"

    # -- truncate: the server distributes it through its system metadata (SMD); we share it --

    def _truncate_ns(self, kv: dict[str, str]):
        ns = self.node.namespaces.get(kv.get("namespace", ""))
        if ns is None:
            raise InfoError(4, f"namespace {kv.get('namespace')!r} not found")
        return ns

    def _truncate_target(self, kv: dict[str, str]):
        """The namespace a client's truncate names. As on the server, which stores the entry
        in its metadata without looking the namespace up: none named → NAMESPACE_NOT_FOUND
        (20), one this node does not have → None (answered ok, nothing to drop)."""
        if not kv.get("namespace"):
            raise InfoError(20, "missing 'namespace'")
        return self.node.namespaces.get(kv["namespace"])

    def _truncate(self, kv: dict[str, str], whole_namespace: bool) -> str:
        """`truncate:namespace=;set=[;lut=]` / `truncate-namespace:namespace=[;lut=]`: drop the
        records last updated before `lut` (ns since the Unix epoch; default now), on every node."""
        ns = self._truncate_target(kv)
        if ns is None:
            return "ok"
        set_name = "" if whole_namespace else kv.get("set", "")
        if not whole_namespace and not set_name:
            raise InfoError(4, "truncate needs set= (truncate-namespace for a whole namespace)")
        now = now_cl_ms()
        lut = now
        if "lut" in kv:
            if not kv["lut"].isdigit():
                raise InfoError(4, f"bad lut {kv['lut']!r}")
            lut = int(kv["lut"]) // 1_000_000 - CITRUSLEAF_EPOCH * 1000
            if lut <= 0:
                raise InfoError(4, "lut would truncate to 0")
            if lut > now:
                raise InfoError(4, "lut is in the future")
        if lut > ns.truncate_lut(set_name):  # as on the server, an older cutoff changes nothing
            self._share(ns, set_name, lut)
        return "ok"

    def _truncate_undo(self, args, kv) -> str:
        """`truncate-undo:namespace=[;set=]`: forget the cutoff. Records already dropped stay
        dropped (ours are dropped at once; the server's may come back from its device)."""
        ns = self._truncate_target(kv)
        if ns is not None and ns.truncate_lut(kv.get("set", "")):
            self._share(ns, kv.get("set", ""), 0)
        return "ok"

    def _truncate_merge(self, args, kv) -> str:
        ns = self._truncate_ns(kv)
        if not (kv.get("lut", "").isdigit() and kv.get("stamp", "").isdigit()):
            raise InfoError(4, "truncate-merge needs lut= and stamp=")
        ns.merge_truncation(kv.get("set", ""), int(kv["lut"]), int(kv["stamp"]))
        return "ok"

    def _share(self, ns, set_name: str, lut: int) -> None:
        """Take the entry here (persisted before the reply) and tell every cluster member;
        a member that misses it gets it from share_truncations when it next joins."""
        stamp = max(now_cl_ms(), ns.truncation.get(set_name, (0, 0))[1] + 1)
        ns.merge_truncation(set_name, lut, stamp)
        self._send_to_peers([f"truncate-merge:namespace={ns.name};set={set_name};lut={lut};stamp={stamp}"])

    def share_truncations(self) -> None:
        """After every exchange: our namespaces' system metadata to every member — truncate
        entries, so that a node that was away when a truncate (or undo) was issued takes it
        and none brings truncated data back, and secondary-index entries (deletes included),
        so that every member, one that joins later too, serves the same indexes."""
        namespaces = self.node.namespaces.values()
        self._send_to_peers([f"truncate-merge:namespace={ns.name};set={set_name};lut={lut};stamp={stamp}"
                             for ns in namespaces for set_name, (lut, stamp) in ns.truncation.items()]
                            + [f"sindex-merge:namespace={ns.name};key={key};name={name or ''};stamp={stamp}"
                               for ns in namespaces for key, (name, stamp) in ns.sindexes.entries.items()])

    # -- secondary indexes: SMD module "sindex" on the server; shared here like truncate --

    def _sindex_create(self, args, kv) -> str:
        """ok also for a namespace this node does not have, as the server's SMD takes it:
        the client's wait for the index then fails (20) when it asks for its progress."""
        ns_name, name, index = sindex.parse_create(kv)
        self._sindex_change(ns_name, name, lambda catalog: catalog.create(name, index))
        return "ok"

    def _sindex_delete(self, args, kv) -> str:
        name, ns_name = sindex.indexname_param(kv), sindex.namespace_param(kv)
        self._sindex_change(ns_name, None, lambda catalog: catalog.delete(name))
        return "ok"  # deleting what does not exist is ok, as on the server

    def _sindex_change(self, ns_name: str, name: str | None, change) -> None:
        ns = self.node.namespaces.get(ns_name)
        catalog = ns.sindexes if ns is not None else self._unserved_sindexes.setdefault(
            ns_name, sindex.Catalog(ns_name))
        key = change(catalog)
        if key is None:
            return
        if ns is not None:
            self._share_sindex(ns, key, name)
        else:
            catalog.merge(key, name, catalog.next_stamp(key, now_cl_ms()))

    def _local_ns(self, kv: dict[str, str], required: bool = True):
        if not required and not ({"namespace", "ns"} & kv.keys()):
            return None
        ns = self.node.namespaces.get(sindex.namespace_param(kv))
        if ns is None:
            raise InfoError(int(ResultCode.NAMESPACE_NOT_FOUND), "namespace not found on node")
        return ns

    def _sindex_list(self, args, kv) -> str:
        if kv.get("b64", "false") not in ("true", "false"):
            raise InfoError(4, "bad b64")
        ns = self._local_ns(kv, required=False)
        return self._listing([ns] if ns is not None else self.node.namespaces.values())

    @staticmethod
    def _listing(namespaces) -> str:
        """Contexts are listed in base64 (the server shows them decoded unless b64=true)."""
        return ";".join(index.listing(ns.name, name) for ns in namespaces for name, index in ns.sindexes.live().items())

    def _sindex(self, args, kv) -> str:
        if not args:
            return self._listing(self.node.namespaces.values())
        ns = self.node.namespaces.get(args[0])
        if ns is None and len(args) == 1:
            return "ns_type=unknown"
        if ns is None:  # what 8.1's sindex-stat answers: clients before 8.1 poll this instead
            raise InfoError(int(ResultCode.NAMESPACE_NOT_FOUND), "namespace not found on node")
        return self._listing([ns]) if len(args) == 1 else self._stats(ns, "/".join(args[1:]))

    def _sindex_stat(self, args, kv) -> str:
        ns = self._local_ns(kv)
        return self._stats(ns, sindex.indexname_param(kv))

    def _sindex_exists(self, args, kv) -> str:
        name, ns = sindex.indexname_param(kv), self._local_ns(kv)
        return str(name in ns.sindexes.live()).lower()

    def _stats(self, ns, name: str) -> str:
        """An index's statistics. Ours is complete the moment it exists (there is nothing to
        build: queries test records as they go), so load_pct is 100 at once; entries counts
        what the index would hold for this node's records (a walk over them)."""
        index = ns.sindexes.live().get(name)
        if index is None:
            raise InfoError(sindex.INDEX_NOT_FOUND, "no index")
        entries = count_entries(index, ns.storage, now_cl_seconds())
        return _kv({"entries": entries, "load_pct": 100, "load_time": 0, "stat_gc_recs": 0})

    def _sindex_merge(self, args, kv) -> str:
        ns = self._truncate_ns(kv)
        if not kv.get("stamp", "").isdigit() or not kv.get("key"):
            raise InfoError(4, "sindex-merge needs key= and stamp=")
        ns.merge_sindex(kv["key"], kv.get("name") or None, int(kv["stamp"]))
        return "ok"

    def _share_sindex(self, ns, key: str, name: str | None) -> None:
        """Take the entry here (persisted before the reply) and tell every cluster member; a
        member that misses it gets it from share_truncations after its next exchange."""
        stamp = ns.sindexes.next_stamp(key, now_cl_ms())
        ns.merge_sindex(key, name, stamp)
        self._send_to_peers([f"sindex-merge:namespace={ns.name};key={key};name={name or ''};stamp={stamp}"])

    # -- UDF modules: the server keeps them in SMD too; shared as truncate entries are ----

    def _udf_change(self, change: tuple[str, list[str]]) -> str:
        answer, lines = change
        self._send_to_peers(lines)
        return answer

    def _udf_merge(self, args, kv) -> str:
        try:
            return self.node.udf.merge(kv)
        except ValueError as exc:
            raise InfoError(4, str(exc)) from None

    @staticmethod
    def _job_command(command: Callable[[dict[str, str]], str], kv: dict[str, str]) -> str:
        try:
            return command(kv)
        except ValueError as exc:
            raise InfoError(int(ResultCode.PARAMETER), str(exc)) from None
        except LookupError as exc:
            raise InfoError(int(ResultCode.KEY_NOT_FOUND), str(exc)) from None

    def share_udf_modules(self) -> None:
        """After every exchange: our entries to every member (a node away at the time of a
        udf-put or udf-remove takes it now; the newest stamp wins)."""
        self._send_to_peers(self.node.udf.share_lines())

    def _send_to_peers(self, lines: list[str]) -> None:
        if not lines:
            return
        for peer in self.node.peers():
            task = asyncio.get_running_loop().create_task(_tell(split_service(peer.service)[0], lines))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    def _log_message(self, args, kv) -> str:
        log.info("log-message: %s", kv.get("message", ""))
        return "ok"

