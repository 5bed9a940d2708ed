"""The node's UDF modules: the registry (persisted in <work-dir>/smd/UDF.json), the Lua
runtime that runs them, and the record UDF step of a transaction.

Registration is cluster-wide, as the server's SMD makes it: the node that takes a
udf-put or udf-remove persists the entry, answers, and tells every member (the internal
`udf-merge` info command, as truncate entries travel); after every exchange each node
sends all its entries to every member, so a node that was away catches up, and the
newest stamp wins everywhere.
"""

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from cluster.core.records import image_of
from cluster.core.udf import record as udf_record
from cluster.core.udf.registry import Entry, UdfRegistry
from cluster.core.udf.runtime import LuaRuntime
from cluster.core.write import Outcome
from cluster.storage.record import now_cl_ms
from cluster.wire.message import Info2, Message
from cluster.wire.result_codes import AerospikeError, ResultCode

if TYPE_CHECKING:
    from cluster.node.namespace import Namespace
    from cluster.node.transactions import Transactions

log = logging.getLogger(__name__)


class UdfModules:
    def __init__(self, work_dir: Path | None):
        smd = work_dir / "smd" / "UDF.json" if work_dir is not None else None
        self.registry = UdfRegistry(smd, self._compile_error)
        # module paths in error messages, as the server names them under its user-path
        self.runtime = LuaRuntime(self.registry.source_of, str(work_dir / "udf") if work_dir else "udf")

    def _compile_error(self, filename: str, text: bytes) -> str | None:
        return self.runtime.compile_error(filename, text)

    # -- info commands: each returns (answer, lines to tell every member) --------------

    def put(self, kv: dict[str, str]) -> tuple[str, list[str]]:
        answer, entry = self.registry.put(kv, now_cl_ms())
        if entry is not None:
            log.info("UDF module %s registered", kv["filename"])
        return answer, [merge_line(kv["filename"], entry)] if entry else []

    def remove(self, kv: dict[str, str]) -> tuple[str, list[str]]:
        answer, entry = self.registry.remove(kv, now_cl_ms())
        if entry is not None:
            log.info("UDF module %s removed", kv["filename"])
            self.runtime.forget(kv["filename"].rpartition(".")[0])
        return answer, [merge_line(kv["filename"], entry)] if entry else []

    def merge(self, kv: dict[str, str]) -> str:
        """`udf-merge:filename=;type=;stamp=[;content=]` (ours): another member's entry; no
        content is a removal."""
        if not kv.get("filename") or not kv.get("stamp", "").isdigit():
            raise ValueError("udf-merge needs filename= and stamp=")
        entry = Entry(kv.get("content") or None, kv.get("type", "LUA"), int(kv["stamp"]))
        if self.registry.merge(kv["filename"], entry):
            log.info("UDF module %s %s by a member", kv["filename"], "removed" if entry.content64 is None else "set")
        return "ok"

    def share_lines(self) -> list[str]:
        return [merge_line(name, entry) for name, entry in self.registry.entries.items()]

    # -- client.apply ----------------------------------------------------------------

    def apply(self, tx: "Transactions", ns: "Namespace", digest: bytes, set_name: str, fields: dict[int, bytes],
              info2: int, record_ttl: int, exp: bytes | None) -> Outcome:
        """One record UDF, stored as Transactions stores a write (replicated by its caller)."""
        if ns.stop_writes:
            raise AerospikeError(ResultCode.OUT_OF_SPACE, f"namespace {ns.name} is in stop-writes")
        current = image_of(ns.storage, digest, tx.clock.now_s())
        if exp is not None and tx._filtered_write(ns, exp, current, info2, 0):
            return Outcome(ResultCode.FILTERED_OUT)
        request = Message(info2=info2 & ~(Info2.GENERATION | Info2.GENERATION_GT), record_ttl=record_ttl,
                          fields=fields)
        outcome = udf_record.apply(self.runtime, current, digest, request, set_name, tx.clock.now_ms(),
                                   ns.params["default-ttl"], ns.params["max-record-size"])
        ns.counters["client_udf_complete" if outcome.result == ResultCode.OK else "client_udf_error"] += 1
        return tx._store(ns, outcome)


def merge_line(filename: str, entry: Entry) -> str:
    content = f";content={entry.content64}" if entry.content64 is not None else ""
    return f"udf-merge:filename={filename};type={entry.udf_type};stamp={entry.stamp}{content}"

