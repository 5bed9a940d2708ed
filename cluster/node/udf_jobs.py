"""Background scans and queries: a record UDF (`scan_apply`, `query_apply`) or write ops
(`execute_background`) applied to every record a scan or index query selects, as a job the
client polls with `query-show:trid=<id>` (what `job_info` sends).

The request is answered at once (OK, LAST), as the server answers it, and the job runs as a
task on the node's loop over the partitions this node masters (the client sends it to every
node). Each record is one single-record write request through `Transactions.single` —
routed, its filter expression checked, the UDF run or the ops applied by core/write.py,
replicated — so a background write is exactly a client write. Bounded: one record at a time,
the loop is yielded to every BATCH records, `rps` (records per second, the client's
policy) is honoured, and at most MAX_DONE finished jobs are remembered (the server's
query-max-done default).
"""

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cluster.core.sindex import has_index_filter, parse_query
from cluster.lazy import lazy_import
from cluster.node.query import query_partition, scan_partition
from cluster.wire import message as wm
from cluster.wire.message import FieldType, Info2, Info3, Message, OpType
from cluster.wire.result_codes import AerospikeError, ResultCode

if TYPE_CHECKING:
    from cluster.node.transactions import Transactions

expressions = lazy_import("cluster.core.expressions")

log = logging.getLogger(__name__)

MAX_DONE = 100  # finished jobs query-show remembers
BATCH = 64  # records between two yields to the loop
# what a background job may carry over to each record's write: the client's write flags
_WRITE_FLAGS = Info2.DURABLE_DELETE | Info2.RESPOND_ALL_OPS
_MODIFY_OPS = frozenset({OpType.WRITE, OpType.INCR, OpType.APPEND, OpType.PREPEND, OpType.TOUCH, OpType.DELETE,
                         OpType.CDT_MODIFY, OpType.EXP_MODIFY, OpType.BIT_MODIFY, OpType.HLL_MODIFY})


@dataclass
class Job:
    trid: int
    ns: str
    set_name: str
    rps: int
    module: str = ""
    function: str = ""
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    status: str = "active(ok)"
    partitions_total: int = 0
    partitions_done: int = 0
    task: asyncio.Task | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("recs-throttled", "recs-filtered-meta", "recs-filtered-bins", "recs-succeeded", "recs-failed"), 0))

    def show(self) -> str:
        now = time.monotonic()
        progress = 100.0 if self.finished else 100.0 * self.partitions_done / max(self.partitions_total, 1)
        end = self.finished or now
        items = [f"trid={self.trid}", f"ns={self.ns}"]
        if self.set_name:
            items.append(f"set={self.set_name}")
        items += [f"rps={self.rps}", "active-threads=0" if self.finished else "active-threads=1",
                  f"status={self.status}", f"job-progress={progress:.2f}", f"run-time={int((end - self.started) * 1000)}"]
        if self.finished:
            items.append(f"time-since-done={int((now - self.finished) * 1000)}")
        items += [f"{k}={v}" for k, v in self.counts.items()]
        if self.module:
            items += ["job-type=background-udf", f"udf-filename={self.module}", f"udf-function={self.function}"]
        else:
            items.append("job-type=background-ops")
        return ":".join(items)


class BackgroundJobs:
    def __init__(self, tx: "Transactions"):
        self.tx = tx
        self.jobs: OrderedDict[int, Job] = OrderedDict()  # each job keeps its task (a reference, so it runs on)

    def start(self, msg: Message) -> bytes:
        """Validate the request, start its job, and answer OK (errors: the code, as a LAST reply)."""
        tx = self.tx
        ns = tx._namespace(msg.fields)
        fields = msg.fields
        udf = FieldType.UDF_FUNCTION in fields
        if not udf and not any(op.op in _MODIFY_OPS for op in msg.ops):
            raise AerospikeError(ResultCode.PARAMETER, "a background scan needs a UDF or write ops")
        if any(op.op not in _MODIFY_OPS for op in msg.ops):
            raise AerospikeError(ResultCode.PARAMETER, "read ops in a background scan")
        if FieldType.FILTER in fields:
            expressions.compile_filter(fields[FieldType.FILTER])  # a bad one fails the request, not every record
        set_name = fields.get(FieldType.SET, b"").decode("utf-8", errors="replace")
        index_query = parse_query(fields, set_name, ns.sindexes) if has_index_filter(fields) else None
        trid = int.from_bytes(fields.get(FieldType.TASK_ID, b"\0"), "big")
        rps_raw = fields.get(FieldType.RPS)
        job = Job(trid, ns.name, set_name, int.from_bytes(rps_raw, "big") if rps_raw else 0,
                  fields.get(FieldType.UDF_PACKAGE_NAME, b"").decode(errors="replace") if udf else "",
                  fields.get(FieldType.UDF_FUNCTION, b"").decode(errors="replace") if udf else "")
        plan = [pid for pid, _resume in tx._scan_plan(fields, index_query is not None)]
        job.partitions_total = len(plan)
        self._remember(job)
        # what every record's request carries: the UDF call or the ops, the filter, the write flags
        carried = {k: v for k in (FieldType.UDF_PACKAGE_NAME, FieldType.UDF_FUNCTION, FieldType.UDF_ARGLIST, FieldType.FILTER)
                   if (v := fields.get(k)) is not None}
        request = Message(info2=Info2.WRITE | (msg.info2 & _WRITE_FLAGS), info3=msg.info3 & ~Info3.LAST,
                          record_ttl=msg.record_ttl, fields=carried, ops=msg.ops)
        job.task = asyncio.get_running_loop().create_task(self._run(job, ns, plan, index_query, request))
        log.info("background job %d on {%s|%s} started: %s", trid, ns.name, set_name,
                 f"UDF {job.module}.{job.function}" if udf else f"{len(msg.ops)} ops")
        return wm.encode_header_only(ResultCode.OK, info3=Info3.LAST)

    def _remember(self, job: Job) -> None:
        self.jobs.pop(job.trid, None)
        self.jobs[job.trid] = job
        while len(self.jobs) > MAX_DONE:
            oldest = next(iter(self.jobs))
            if self.jobs[oldest].finished is None:
                break
            del self.jobs[oldest]

    async def _run(self, job: Job, ns, plan: list[int], index_query, request: Message) -> None:
        tx = self.tx
        ns_field = ns.name.encode()
        done_since_yield = 0
        try:
            for pid in plan:
                if not tx.cluster.plane.is_master(ns.name, pid):
                    job.partitions_done += 1
                    continue
                now = tx.clock.now_s()
                records = (scan_partition(ns.storage, pid, now, job.set_name, (None, None)) if index_query is None
                           else query_partition(index_query, ns.storage, pid, now, job.set_name, (None, None)))
                # take the partition's digests first: the job's own writes must not move the cursor
                for digest, meta, _payload, _bval in list(records):
                    fields = dict(request.fields)
                    fields[FieldType.NAMESPACE] = ns_field
                    fields[FieldType.DIGEST] = digest
                    if meta.set_name:
                        fields[FieldType.SET] = meta.set_name.encode()
                    one = Message(info2=request.info2, info3=request.info3, record_ttl=request.record_ttl,
                                  fields=fields, ops=request.ops)
                    await self._one(job, one)
                    done_since_yield += 1
                    if job.rps:
                        await asyncio.sleep(1 / job.rps)
                    elif done_since_yield >= BATCH:
                        done_since_yield = 0
                        await asyncio.sleep(0)
                job.partitions_done += 1
            job.status = "done(ok)"
        except asyncio.CancelledError:
            if job.status.startswith("active"):  # not a user's abort: the node is stopping
                job.status = "done(abandoned-unknown)"
            raise
        except Exception:  # a job never takes the node down; its status says it failed
            log.exception("background job %d failed", job.trid)
            job.status = "done(abandoned-unknown)"
        finally:
            job.finished = time.monotonic()
            log.info("background job %d %s: %s", job.trid, job.status, job.counts)

    async def _one(self, job: Job, msg: Message) -> None:
        job.counts["recs-throttled"] += 1
        try:
            reply = self.tx.single(msg, b"", 0, self.tx.deadline(0))
            if not isinstance(reply, bytes):
                reply = await reply
            result = wm.parse(reply)[0].result_code
        except AerospikeError as exc:
            result = exc.code
        if result == ResultCode.OK:
            job.counts["recs-succeeded"] += 1
        elif result == ResultCode.FILTERED_OUT:
            job.counts["recs-filtered-bins"] += 1
        elif result != ResultCode.KEY_NOT_FOUND:  # gone since the scan saw it: nothing to do
            job.counts["recs-failed"] += 1

    def show(self, kv: dict[str, str]) -> str:
        """`query-show[:id=<id>]` (`trid=` too): one job, or every job."""
        if "id" not in kv and "trid" not in kv:
            return ";".join(job.show() for job in reversed(self.jobs.values()))
        job = self.jobs.get(_job_id(kv))
        if job is None:
            raise LookupError("job not found")
        return job.show()

    def abort(self, kv: dict[str, str]) -> str:
        """`query-abort:id=<id>`: stop a running job (its status: done(user-aborted))."""
        job = self.jobs.get(_job_id(kv))
        if job is None or job.finished is not None or job.task is None:
            raise LookupError("id not active")
        job.task.cancel()
        job.status = "done(user-aborted)"
        return "ok"

    def abort_all(self) -> str:
        running = [job for job in self.jobs.values() if job.finished is None and job.task is not None]
        for job in running:
            job.task.cancel()
            job.status = "done(user-aborted)"
        return f"number-of-queries-killed:{len(running)}"


def _job_id(kv: dict[str, str]) -> int:
    """The id a job command names (decimal; `trid` is the older name), ValueError if bad."""
    raw = kv.get("id") or kv.get("trid") or ""
    if not raw.isdigit() or int(raw) == 0:
        raise ValueError("bad id")
    return int(raw)
