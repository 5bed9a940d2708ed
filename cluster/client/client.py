"""The public API, shaped like the official `aerospike` Python client.

    client = Client({"hosts": [("127.0.0.1", 3000)]}).connect()
    client.put(("test", "demo", 1), {"a": 7})
    key, meta, bins = client.get(("test", "demo", 1))

Records come back as (key, meta, bins): key is (namespace, set, user key, digest),
meta is {"gen": n, "ttl": seconds} (0xFFFFFFFF = never expires).
"""

from cluster.wire.message import READ_OPS, Info1, Info2, Info3, Message, Op, OpType
from cluster.wire.particles import ParticleType

from . import operations
from .batch import batch_read, read_message
from .cluster import Cluster
from .command import bins_of, check, execute, key_fields, meta_of
from .errors import FilteredOut, InvalidNode, ParamError, RecordNotFound, error_for
from .keys import Key
from .policies import BATCH, READ, SCAN, WRITE, Policy, resolve
from .scan import Scan

_CONFIG_KEYS = {"hosts", "cluster_name", "policies", "tend_interval", "connect_timeout", "max_conns_per_node",
                "use_services_alternate"}

_EXISTS_BITS = {  # policy exists -> (info2, info3)
    "ignore": (0, 0),
    "create_only": (Info2.CREATE_ONLY, 0),
    "update_only": (0, Info3.UPDATE_ONLY),
    "replace": (0, Info3.CREATE_OR_REPLACE),
    "replace_only": (0, Info3.REPLACE_ONLY),
}
_GEN_BITS = {"ignore": 0, "eq": Info2.GENERATION, "gt": Info2.GENERATION_GT}
_OK_IN_BATCH = frozenset({0, RecordNotFound.code_value, FilteredOut.code_value})  # both reported as missing


class Client:
    def __init__(self, config: dict):
        unknown = set(config) - _CONFIG_KEYS
        if unknown:
            raise ParamError(f"unknown config keys {sorted(unknown)}")
        if not config.get("hosts"):
            raise ParamError("config needs hosts: [(host, port), ...]")
        self._policies = resolve(config.get("policies"))
        self._cluster = Cluster(
            config["hosts"],
            cluster_name=config.get("cluster_name"),
            tend_interval=config.get("tend_interval", 1000) / 1000,
            timeout=config.get("connect_timeout", 1000) / 1000,
            max_conns_per_node=config.get("max_conns_per_node", 100),
            services_alternate=bool(config.get("use_services_alternate", False)),
        )

    # -- lifecycle -----------------------------------------------------------------------------

    def connect(self) -> "Client":
        self._cluster.connect()
        return self

    def close(self) -> None:
        self._cluster.close()

    def is_connected(self) -> bool:
        return self._cluster.is_connected

    def get_nodes(self) -> list[tuple[str, int]]:
        return [node.address for node in self._cluster.nodes.values()]

    # -- single-record reads -------------------------------------------------------------------

    def get(self, key: tuple, policy: dict | None = None) -> tuple:
        return self._read(key, None, policy)

    def select(self, key: tuple, bins: list[str], policy: dict | None = None) -> tuple:
        return self._read(key, list(bins), policy)

    def exists(self, key: tuple, policy: dict | None = None) -> tuple:
        k = Key.of(key)
        p = self._policy(READ, policy)
        reply, node = execute(self._cluster, k, read_message(k, [], p), p, write=False)
        if reply.result_code == RecordNotFound.code_value:
            return k.as_tuple(), None
        return k.as_tuple(), meta_of(check(reply, node))

    def _read(self, key: tuple, bins: list[str] | None, policy: dict | None) -> tuple:
        k = Key.of(key)
        p = self._policy(READ, policy)
        reply = self._execute(k, read_message(k, bins, p), p, write=False)
        return k.as_tuple(), meta_of(reply), bins_of(reply)

    # -- single-record writes ------------------------------------------------------------------

    def put(self, key: tuple, bins: dict, meta: dict | None = None, policy: dict | None = None) -> None:
        if not isinstance(bins, dict) or not bins:
            raise ParamError("bins must be a non-empty dict")
        self.operate(key, [operations.write(name, value) for name, value in bins.items()], meta, policy)

    def remove(self, key: tuple, meta: dict | None = None, policy: dict | None = None) -> None:
        self._write(Key.of(key), [], meta, policy, extra_info2=Info2.DELETE)

    def remove_bin(self, key: tuple, bins: list[str], meta: dict | None = None, policy: dict | None = None) -> None:
        self._write(Key.of(key), [Op(OpType.WRITE, ParticleType.NULL, name) for name in bins], meta, policy)

    def touch(self, key: tuple, val: int = 0, meta: dict | None = None, policy: dict | None = None) -> None:
        self.operate(key, [operations.touch(val)], meta, policy)

    def increment(self, key: tuple, bin_name: str, offset, meta: dict | None = None,
                  policy: dict | None = None) -> None:
        self.operate(key, [operations.increment(bin_name, offset)], meta, policy)

    def append(self, key: tuple, bin_name: str, value, meta: dict | None = None, policy: dict | None = None) -> None:
        self.operate(key, [operations.append(bin_name, value)], meta, policy)

    def prepend(self, key: tuple, bin_name: str, value, meta: dict | None = None, policy: dict | None = None) -> None:
        self.operate(key, [operations.prepend(bin_name, value)], meta, policy)

    def operate(self, key: tuple, ops: list[dict], meta: dict | None = None, policy: dict | None = None) -> tuple:
        """Apply ops atomically; returns (key, meta, bins read by the read ops)."""
        if not ops:
            raise ParamError("operate needs at least one operation")
        k = Key.of(key)
        wire_ops = [operations.to_wire(op) for op in ops]
        if all(op.op in READ_OPS for op in wire_ops):
            p = self._policy(READ, policy)
            reply = self._execute(k, Message(info1=Info1.READ, fields=key_fields(k, p), ops=wire_ops), p, write=False)
        else:
            meta = dict(meta or {})
            for op in ops:
                if op.get("op") == operations.TOUCH:
                    meta["ttl"] = op.get("val", 0)  # a touch op carries the record's new TTL
            reply = self._write(k, wire_ops, meta, policy)
        return k.as_tuple(), meta_of(reply), bins_of(reply)

    def _write(self, k: Key, ops: list[Op], meta: dict | None, policy: dict | None,
               extra_info2: int = 0) -> Message:
        p = self._policy(WRITE, policy)
        meta = meta or {}
        exists_info2, info3 = _EXISTS_BITS[p.exists]
        msg = Message(
            info1=Info1.READ if any(op.op in READ_OPS for op in ops) else 0,
            info2=Info2.WRITE | extra_info2 | exists_info2 | _GEN_BITS[p.gen],
            info3=info3,
            generation=meta.get("gen", 0) if p.gen != "ignore" else 0,
            record_ttl=meta.get("ttl", 0),
            fields=key_fields(k, p),
            ops=ops,
        )
        return self._execute(k, msg, p, write=True)

    def _execute(self, k: Key, msg: Message, p: Policy, write: bool) -> Message:
        reply, node = execute(self._cluster, k, msg, p, write)
        return check(reply, node)

    # -- multi-record --------------------------------------------------------------------------

    def batch_read(self, keys: list[tuple], bins: list[str] | None = None, policy: dict | None = None) -> list:
        """(key, meta, bins) per key in order; (key, None, None) for a missing record."""
        parsed = [Key.of(key) for key in keys]
        replies = batch_read(self._cluster, parsed, None if bins is None else list(bins),
                             self._policy(BATCH, policy))
        records = []
        for k, reply in zip(parsed, replies, strict=True):
            if reply.result_code not in _OK_IN_BATCH:
                raise error_for(reply.result_code, f"batch key {k.as_tuple()[:3]}")
            if reply.result_code:
                records.append((k.as_tuple(), None, None))
            else:
                records.append((k.as_tuple(), meta_of(reply), bins_of(reply)))
        return records

    def scan(self, namespace: str, set: str | None = None, policy: dict | None = None) -> Scan:
        return Scan(self._cluster, namespace, set, self._policy(SCAN, policy))

    # -- info ----------------------------------------------------------------------------------

    def info(self, command: str, node: str | tuple[str, int] | None = None) -> str:
        """Raw value of one info command on one node (by name or address; any node if None)."""
        target = self._find_node(node) if node is not None else self._cluster.any_node()
        return self._info_on(target, command)

    def info_all(self, command: str) -> dict[str, str]:
        """{node name: raw value} from every node."""
        return {name: self._info_on(node, command) for name, node in self._cluster.nodes.items()}

    def _info_on(self, node, command: str) -> str:
        with node.connection() as conn:
            conn.set_timeout(self._cluster.timeout)
            reply = conn.info([command])
        return reply.get(command, "")

    def _find_node(self, wanted: str | tuple[str, int]):
        for node in self._cluster.nodes.values():
            if wanted in (node.name, node.address, list(node.address)):
                return node
        raise InvalidNode(f"no node {wanted!r} in the cluster")

    def _policy(self, kind: str, overrides: dict | None) -> Policy:
        return self._policies[kind].merged(overrides)
