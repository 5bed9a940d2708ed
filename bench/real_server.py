"""The real Aerospike server (`asd`) as local processes, for benchmarks side by side with ours.

`RealNode` / `RealCluster` are `LocalNode` / `LocalCluster` whose process is `asd` instead of
refnode: same ports (service P, fabric P+1, heartbeat P+2, loopback only), same settings
list (our `--set` names are Aerospike's; the ones asd has no equivalent for are ignored),
same lifetime rules (a process group of its own, killed with its runner, stopped by
SIGTERM then SIGKILL, the run directory removed). Each node gets an aerospike.conf written
from those settings into its own directory, with what 8.1 requires on loopback: a
`cluster-name`, an existing `<work-directory>/smd`, `access-address 127.0.0.1`, a memory
namespace's `data-size` >= 512M, `nsup-period` > 0 (else writes with a TTL are refused),
a heartbeat `connect-timeout-ms` <= interval × timeout / 3, no `rack-id` (enterprise-only);
and the node id ours would take, so asd needs no network interface to derive one.

    asd = real_server.asd_path(args.asd)          # --asd PATH, else $ASD_BIN, else None
    with RealCluster(asd, nodes=4, rf=2, settings=[...]) as rc: ...

Nothing here is built or downloaded: the binary is whatever the caller points at.
"""

import argparse
import os
import statistics
from collections.abc import Callable
from pathlib import Path

from cluster.deploy.docker_aerospike import _block, _value
from cluster.deploy.local import LocalNode
from cluster.deploy.local_cluster import LocalCluster
from cluster.node.config import MiB, NodeConfig
from cluster.node.server import format_node_id, node_id_of

MIN_MEMORY_DATA_SIZE = 512 * MiB  # asd 8.1 refuses a smaller memory namespace
NSUP_PERIOD_S = 120


def add_asd_argument(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--asd", metavar="PATH", default=os.environ.get("ASD_BIN"),
                    help="the real Aerospike server binary (default $ASD_BIN): also run every case against it")


def asd_path(path: str | None) -> str | None:
    if path and not os.access(path, os.X_OK):
        raise SystemExit(f"--asd / ASD_BIN: {path} is not an executable")
    return path


def aerospike_conf(settings: list[str], work_dir: Path) -> str:
    """aerospike.conf for one loopback node from our settings list."""
    cfg = NodeConfig.load(None, list(settings))
    svc, net = cfg.service, cfg.network
    hb = net["heartbeat"]
    lines = _block("service", [
        # the id ours would take (fabric port + this host's MAC): asd needs no NIC to derive it
        f"node-id {format_node_id(node_id_of(cfg))}",
        f"cluster-name {svc['cluster-name']}", f"work-directory {work_dir}", "proto-fd-max 2048",
        f"migrate-threads {svc['migrate-threads']}", f"migrate-max-num-incoming {svc['migrate-max-num-incoming']}"])
    lines += _block("mod-lua", [f"user-path {work_dir / 'udf'}"])
    lines += _block("logging", _block("console", ["context any info"]))
    seeds = [f"mesh-seed-address-port {seed.replace(':', ' ')}" for seed in hb["mesh-seed-address-port"]]
    network = _block("service", [f"address {net['service']['address']}", f"port {net['service']['port']}",
                                 f"access-address {net['service']['address']}"])
    network += _block("heartbeat", ["mode mesh", f"address {hb['address']}", f"port {hb['port']}", *seeds,
                                    f"interval {hb['interval']}", f"timeout {hb['timeout']}",
                                    # asd refuses a connect timeout above interval × timeout / 3
                                    f"connect-timeout-ms {min(500, hb['interval'] * hb['timeout'] // 3)}"])
    network += _block("fabric", [f"address {net['fabric']['address']}", f"port {net['fabric']['port']}"])
    lines += _block("network", network)
    for name, ns in cfg.namespaces.items():
        storage = ns["storage-engine"]
        if storage["type"] == "device":
            engine = _block("storage-engine device", [f"file {work_dir / (name + '.dat')}",
                                                      f"filesize {_value('filesize', storage['filesize'])}"])
        else:
            size = max(storage["data-size"], MIN_MEMORY_DATA_SIZE)
            engine = _block("storage-engine memory", [f"data-size {_value('data-size', size)}"])
        lines += _block(f"namespace {name}", [
            f"replication-factor {ns['replication-factor']}",  # (rack-id is enterprise-only)
            f"migrate-sleep {ns['migrate-sleep']}", f"conflict-resolution-policy {ns['conflict-resolution-policy']}",
            f"nsup-period {NSUP_PERIOD_S}", *engine])
    return "\n".join(lines) + "\n"


class RealNode(LocalNode):
    """One asd process in `work_dir`, configured from `settings` (see aerospike_conf)."""

    def __init__(self, asd: str, work_dir: str | Path, port: int, settings: list[str] = (), host: str = "127.0.0.1"):
        super().__init__(work_dir, port, [f"network.service.port={port}", f"network.service.address={host}",
                                          *settings], host=host)
        self.asd = str(Path(asd).resolve())
        self.conf_path = self.work_dir / "aerospike.conf"

    def command(self) -> list[str]:
        return [self.asd, "--foreground", "--config-file", str(self.conf_path)]

    def start(self, wait: float = 20.0) -> "RealNode":
        for sub in ("smd", "udf"):
            (self.work_dir / sub).mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(aerospike_conf(self.settings, self.work_dir.resolve()))
        return super().start(wait)


class RealCluster(LocalCluster):
    """A LocalCluster of asd processes: same ports, seeds, settings and cleanup."""

    def __init__(self, asd: str, *args, **kw):
        super().__init__(*args, **kw)
        self.asd = asd

    def _node(self, spec) -> RealNode:
        ours = super()._node(spec)
        return RealNode(self.asd, ours.work_dir, ours.port, ours.settings, host=ours.host)


def cluster_kinds(asd: str | None) -> dict[str, Callable[..., LocalCluster]]:
    """{"ours": factory, "real": factory} (real only with a binary): call one as LocalCluster(...)."""
    kinds: dict[str, Callable[..., LocalCluster]] = {"ours": LocalCluster}
    if asd:
        kinds["real"] = lambda *a, **kw: RealCluster(asd, *a, **kw)
    return kinds


def median_ratio(values: dict[str, list[float]]) -> str:
    """real/ours of the medians, or '' when either is missing."""
    if values.get("real") and values.get("ours"):
        return f"{statistics.median(values['real']) / statistics.median(values['ours']):.2f}"
    return ""


def print_side_by_side(unit: str, results: dict[str, dict[str, list[float]]]) -> None:
    """One row per case: n, median and max for ours and the real server, and real/ours."""
    kinds = ["ours", "real"] if any("real" in r for r in results.values()) else ["ours"]
    head = "".join(f"{k + ' n':>8}{k + ' median':>14}{k + ' max':>11}" for k in kinds)
    print(f"{'case':<28}{head}{'real/ours':>11}  ({unit})")
    for case, by_kind in results.items():
        cells = ""
        for k in kinds:
            vals = by_kind.get(k, [])
            cells += (f"{len(vals):>8}{statistics.median(vals):>14.3f}{max(vals):>11.3f}" if vals
                      else f"{0:>8}{'-':>14}{'-':>11}")
        print(f"{case:<28}{cells}{median_ratio(by_kind):>11}")
