"""Prometheus metrics served by the node itself (`network.metrics.port`, GET /metrics).

Names and labels are the Aerospike Prometheus exporter's, so its dashboards' queries work:

    aerospike_node_up                                   1 while the node answers
    aerospike_node_stats_<statistic>{cluster_name,service}       every numeric `statistics` value
    aerospike_namespace_<statistic>{cluster_name,service,ns}     every numeric `namespace/<ns>` value
    aerospike_latencies_{read,write}_ms_bucket{cluster_name,service,ns,le}   (+ _count, _sum)
    refcluster_fault_active{id,kind,targets}            our extension: the harness's fault windows

A custom collector reads the node's own statistics at scrape time, so there is no second
set of counters to keep in step, and the values are as fresh as `asinfo` would give.
Booleans ("true"/"false") become 1/0 as the exporter makes them; text values (cluster_key,
storage-engine) are left out, the hex ones by name (a cluster key such as 12E4… or
1234… would read as a number). Counters keep the exporter's names without `_total`, which
prometheus_client would append to a counter-typed family, so they are exposed untyped;
`rate()` works on them all the same.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from bisect import bisect_left
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric, UnknownMetricFamily

from cluster.wire.message import FieldType, Info2, Message

if TYPE_CHECKING:
    from cluster.node.server import Node

# Aerospike's latency histograms double from 1 ms; a Python node answers in well under 1 ms,
# so three finer buckets come first (0.125 ms .. 8.192 s).
LATENCY_BUCKETS_MS = tuple(2.0 ** e for e in range(-3, 14))
_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")
HEX_STATS = frozenset({"cluster_key", "cluster_principal"})  # text, though a key may be all digits
# The node counts these from their first event; Aerospike reports them from start, and a
# dashboard's error panel should show 0 rather than nothing.
NAMESPACE_COUNTERS = (
    *(f"client_read_{r}" for r in ("success", "error", "timeout", "not_found")),
    *(f"client_write_{r}" for r in ("success", "error", "timeout")),
    *(f"client_delete_{r}" for r in ("success", "error", "timeout", "not_found")),
    "fail_generation", "fail_record_too_big", "fail_out_of_space",
)


class Histogram:
    __slots__ = ("counts", "sum_ms")

    def __init__(self):
        self.counts = [0] * (len(LATENCY_BUCKETS_MS) + 1)  # the last one is +Inf
        self.sum_ms = 0.0

    def observe(self, ms: float) -> None:
        self.counts[bisect_left(LATENCY_BUCKETS_MS, ms)] += 1  # a value on a bound is `le` it
        self.sum_ms += ms


class Latencies:
    """Client single-record latency per namespace, as Aerospike's `read` and `write` histograms
    (deletes count as writes, as there): from the request being handled to its reply being
    ready, replicas acknowledged or the proxied answer back. Batch and scan are not timed."""

    def __init__(self):
        self.histograms: dict[tuple[str, str], Histogram] = {}

    def timed(self, msg: Message, start: float, reply: bytes | Coroutine[None, None, bytes]):
        ns = msg.fields.get(FieldType.NAMESPACE, b"").decode("utf-8", errors="replace")
        key = (ns, "write" if msg.info2 & Info2.WRITE else "read")
        histogram = self.histograms.get(key) or self.histograms.setdefault(key, Histogram())
        if isinstance(reply, bytes):
            histogram.observe((time.perf_counter() - start) * 1000)
            return reply
        return self._when_done(reply, histogram, start)

    @staticmethod
    async def _when_done(reply: Coroutine[None, None, bytes], histogram: Histogram, start: float) -> bytes:
        try:
            return await reply
        finally:
            histogram.observe((time.perf_counter() - start) * 1000)


def _number(value: Any) -> float | None:
    """A statistic as the exporter reads it: numbers and booleans; None for text."""
    if isinstance(value, int | float):  # bool too
        return float(value)
    if value in ("true", "false"):
        return float(value == "true")
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def metric_name(prefix: str, stat: str) -> str:
    return prefix + _UNSAFE.sub("_", stat)


class NodeCollector:
    """Everything above, read from the node when Prometheus scrapes."""

    def __init__(self, node: Node):
        self.node = node

    def collect(self) -> Iterator[Metric]:
        node = self.node
        labels = {"cluster_name": node.cfg.service["cluster-name"], "service": node.service_address()}
        up = GaugeMetricFamily("aerospike_node_up", "1 while the node answers", labels=list(labels))
        up.add_metric(list(labels.values()), 1)
        yield up
        yield from self._families("aerospike_node_stats_", node.statistics(), labels)
        for ns in node.namespaces:
            stats = dict.fromkeys(NAMESPACE_COUNTERS, 0) | node.namespace_statistics(ns)
            yield from self._families("aerospike_namespace_", stats, labels | {"ns": ns})
        yield from self._latencies(labels)
        yield from self._faults()

    @staticmethod
    def _families(prefix: str, stats: dict[str, Any], labels: dict[str, str]) -> Iterator[Metric]:
        for stat, raw in stats.items():
            value = None if stat in HEX_STATS else _number(raw)
            if value is None:
                continue
            family = UnknownMetricFamily(metric_name(prefix, stat), f"`{stat}` statistic", labels=list(labels))
            family.add_metric(list(labels.values()), value)
            yield family

    def _latencies(self, labels: dict[str, str]) -> Iterator[Metric]:
        by_kind: dict[str, list[tuple[str, Histogram]]] = {}
        for (ns, kind), histogram in sorted(self.node.transactions.latencies.histograms.items()):
            by_kind.setdefault(kind, []).append((ns, histogram))
        for kind, rows in by_kind.items():
            family = HistogramMetricFamily(f"aerospike_latencies_{kind}_ms", f"client {kind} latency (ms)",
                                           labels=[*labels, "ns"])
            for ns, histogram in rows:
                cumulative, buckets = 0, []
                for bound, count in zip((*LATENCY_BUCKETS_MS, math.inf), histogram.counts, strict=True):
                    cumulative += count
                    buckets.append(("+Inf" if bound == math.inf else f"{bound:g}", cumulative))
                family.add_metric([*labels.values(), ns], buckets, histogram.sum_ms)
            yield family

    def _faults(self) -> Iterator[Metric]:
        """1 while a fault window is open, 0 once it ended (kept, so a graph shows both edges).
        Every node reports the file's windows, so a killed node's fault is still seen."""
        path = self.node.cfg.network["metrics"]["faults-file"]
        if not path:
            return
        try:
            windows = json.loads(Path(path).read_text()).get("windows", [])
        except (FileNotFoundError, ValueError):
            windows = []  # no fault yet, or a writer mid-way (it replaces the file atomically)
        family = GaugeMetricFamily("refcluster_fault_active", "a harness fault (cluster.deploy.faults) in force",
                                   labels=["id", "kind", "targets"])
        for w in windows:
            family.add_metric([str(w.get("id", 0)), w["kind"], ",".join(w["targets"])], float(w.get("end") is None))
        yield family


async def serve(node: Node) -> asyncio.Server:
    """GET /metrics on the node's own event loop: a scrape is one short synchronous read of
    the statistics, like an info request, so no thread and no locking. HTTP/1.0-style (one
    request per connection) is all a scraper needs, and spares the node importing a web
    framework at start-up, which every node of a cluster pays at once."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(node))

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            request = head.split(b"\r\n", 1)[0].split(b" ")  # GET /metrics HTTP/1.1
            if request[0] == b"GET" and len(request) > 1 and request[1].split(b"?", 1)[0] == b"/metrics":
                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, generate_latest(registry)
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"only GET /metrics\n"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                         "Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass  # the scraper went away or sent something else than HTTP: nothing to answer
        finally:
            writer.close()

    cfg = node.cfg.network["metrics"]
    return await asyncio.start_server(answer, cfg["address"], cfg["port"], reuse_address=True)
