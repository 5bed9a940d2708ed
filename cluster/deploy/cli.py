"""`refcluster`: start and operate a local cluster of reference nodes.

    refcluster up --nodes 3 [--rf 2] [--racks 1] [--proxied [--toxiproxy-url URL]] [--dir run/cluster] [--set KEY=VALUE ...]
    refcluster up --backend docker ...   (node containers, docs/docker.md);   refcluster gc [--all]
    refcluster status | info NODE COMMAND | kill|stop|pause|resume|restart NODE | add | down
    refcluster fault partition n1,n2 n3,n4 [--refuse] | isolate n3 | cut n1 n2 | latency n1 n2 200 [--jitter 20]
                     | bandwidth n1 n2 100 | client-latency n2 50 | kill-rack 1 | restart-rack 1
                     | stop-writes [--ns test] | heal | restore | list
"""

import argparse
import shutil
import sys
import time
from pathlib import Path

from cluster.deploy.docker_cluster import DockerCluster, load
from cluster.deploy.docker_cluster import gc as docker_gc
from cluster.deploy.faults import FaultError, FaultWindow
from cluster.deploy.local_cluster import STATE_FILE, LocalCluster

DEFAULT_DIR = "run/cluster"
STATUS_COLUMNS = ["node", "state", "id", "address", "rack", "cluster_key", "size", "principal",
                  "migrations", "device_used_pct", "stop_writes"]


def print_status(cluster: LocalCluster) -> None:
    rows = [{k: str(row.get(k, "-") if row.get(k) is not None else "-") for k in STATUS_COLUMNS}
            for row in cluster.status()]
    widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in STATUS_COLUMNS}
    print("  ".join(k.ljust(widths[k]) for k in STATUS_COLUMNS))
    for row in rows:
        print("  ".join(row[k].ljust(widths[k]) for k in STATUS_COLUMNS))


def print_windows(windows: list[FaultWindow]) -> None:
    print("id  kind            targets                  start     end       detail")
    for w in windows:
        start = time.strftime("%H:%M:%S", time.localtime(w.start))
        end = "active" if w.end is None else time.strftime("%H:%M:%S", time.localtime(w.end))
        detail = " ".join(f"{k}={v}" for k, v in w.detail.items())
        print(f"{w.id:<3} {w.kind:<15} {','.join(w.targets):<24} {start:<9} {end:<9} {detail}")


def add_fault_commands(fault: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    subs = fault.add_subparsers(dest="fault", required=True)

    class _Kinds:  # every fault command takes --dir too
        @staticmethod
        def add_parser(name, **kw):
            return subs.add_parser(name, parents=[common], **kw)

    kinds = _Kinds
    p = kinds.add_parser("partition", help="cut the cluster into groups (nodes in none form one more)")
    p.add_argument("groups", nargs="+", metavar="n1,n2")
    p.add_argument("--refuse", action="store_true", help="closed ports instead of a silent network")
    p = kinds.add_parser("isolate", help="cut one node off from every other node")
    p.add_argument("node")
    p.add_argument("--refuse", action="store_true")
    p = kinds.add_parser("cut", help="one way: what SRC sends to DST is lost")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--refuse", action="store_true")
    for name, unit in (("latency", "ms"), ("bandwidth", "KB/s")):
        p = kinds.add_parser(name, help=f"{name} between two nodes ({unit}), both ways unless --one-way")
        p.add_argument("a")
        p.add_argument("b")
        p.add_argument("value", type=int, metavar=unit.replace("/", "_per_"))
        if name == "latency":
            p.add_argument("--jitter", type=int, default=0)
        p.add_argument("--channel", choices=("heartbeat", "fabric"), action="append",
                       help="only this channel (repeatable; default both)")
        p.add_argument("--one-way", action="store_true")
    p = kinds.add_parser("client-latency", help="delay a node's answers to clients")
    p.add_argument("node")
    p.add_argument("ms", type=int)
    p.add_argument("--jitter", type=int, default=0)
    for name in ("kill-rack", "stop-rack", "pause-rack", "restart-rack"):
        kinds.add_parser(name, help=f"{name.split('-')[0]} every node of a rack").add_argument("rack", type=int)
    p = kinds.add_parser("stop-writes", help="drive a namespace into stop-writes (set-config); heal-all: restore")
    p.add_argument("--ns", default="test")
    kinds.add_parser("heal", help="remove every network fault made by refcluster (works after a crashed runner)")
    kinds.add_parser("restore", help="undo every fault: heal, resume, restart, thresholds back")
    kinds.add_parser("list", help="every fault window recorded in the run directory")


def run_fault(cluster: LocalCluster, args) -> None:
    faults = cluster.faults
    mode = "refuse" if getattr(args, "refuse", False) else "drop"
    kind = args.fault
    if kind == "partition":
        faults.partition([g.split(",") for g in args.groups], mode=mode)
    elif kind == "isolate":
        faults.isolate(args.node, mode=mode)
    elif kind == "cut":
        faults.cut(args.src, args.dst, mode=mode)
    elif kind in ("latency", "bandwidth"):
        channels = tuple(args.channel or ("heartbeat", "fabric"))
        if kind == "latency":
            faults.latency(args.a, args.b, args.value, args.jitter, channels=channels, one_way=args.one_way)
        else:
            faults.bandwidth(args.a, args.b, args.value, channels=channels, one_way=args.one_way)
    elif kind == "client-latency":
        faults.client_latency(args.node, args.ms, args.jitter)
    elif kind.endswith("-rack"):
        getattr(faults, kind.replace("-", "_"))(args.rack)
    elif kind == "stop-writes":
        faults.stop_writes(args.ns)
    elif kind == "heal":
        for w in faults.heal():
            print(f"healed {w.kind} {','.join(w.targets)}")
        return
    elif kind == "restore":
        for w in faults.restore():
            print(f"ended {w.kind} {','.join(w.targets)}")
        return
    if kind != "list":
        print_windows(faults.windows[-1:])
    else:
        print_windows(faults.windows)


def with_cleanup(start, cluster: LocalCluster) -> None:
    """Detached nodes outlive this command, so a failed start must stop what it started."""
    try:
        start()
    except BaseException:
        cluster.stop()
        raise


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="refcluster", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=DEFAULT_DIR, help=f"run directory (default {DEFAULT_DIR})")
    # --dir is accepted after the sub-command too; SUPPRESS keeps the top-level value otherwise
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", default=argparse.SUPPRESS, help="run directory")
    sub = ap.add_subparsers(dest="cmd", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, parents=[common])

    up = command("up", help="start a cluster")
    up.add_argument("--nodes", type=int, default=3)
    up.add_argument("--rf", type=int, default=2)
    up.add_argument("--racks", type=int, default=1)
    up.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="node config override")
    up.add_argument("--proxied", action="store_true",
                    help="every node-to-node and client link through its own fault proxy (refproxy)")
    up.add_argument("--toxiproxy-url", help="with --proxied: use this Toxiproxy instead of starting refproxy")
    up.add_argument("--backend", choices=("local", "docker"), default="local",
                    help="node processes on loopback, or node containers (docs/docker.md)")
    command("status", help="one row per node")
    info = command("info", help="run an info command on a node (asinfo -v)")
    info.add_argument("node")
    info.add_argument("command")
    for name in ("kill", "stop", "pause", "resume", "restart"):
        command(name, help=f"{name} one node").add_argument("node")
    add = command("add", help="start one more node")
    add.add_argument("--rack", type=int)
    command("down", help="stop every node (and the proxies), remove the run directory")
    gc = sub.add_parser("gc", help="remove Docker containers, networks and volumes left by crashed runs")
    gc.add_argument("--all", action="store_true", help="every one of refcluster's, also of live clusters")
    add_fault_commands(command("fault", help="network, process and capacity faults (see docs/faults.md)"), common)
    args = ap.parse_args(argv)

    try:
        if args.cmd == "up":
            if (Path(args.dir) / STATE_FILE).exists():
                raise ValueError(f"{args.dir} already holds a cluster: `refcluster down --dir {args.dir}` first")
            if args.toxiproxy_url and not args.proxied:
                raise ValueError("--toxiproxy-url goes with --proxied")
            if args.backend == "docker":
                if args.proxied:
                    raise ValueError("--proxied is for the local backend")
                cluster = DockerCluster(args.nodes, args.rf, args.racks, run_dir=args.dir, settings=args.set,
                                        detached=True)
            else:
                cluster = LocalCluster(args.nodes, args.rf, args.racks, run_dir=args.dir, settings=args.set,
                                       detached=True, links="proxied" if args.proxied else "direct",
                                       toxiproxy_url=args.toxiproxy_url)
            with_cleanup(cluster.start, cluster)
            print_status(cluster)
            return 0
        if args.cmd == "gc":
            for what in docker_gc(everything=args.all):
                print(f"removed {what}")
            return 0
        cluster = load(args.dir)
        if args.cmd == "status":
            print_status(cluster)
        elif args.cmd == "info":
            print(cluster[args.node].info(args.command))
        elif args.cmd in ("kill", "stop", "pause", "resume", "restart"):
            cluster[args.node]  # noqa: B018 -- an unknown node is a KeyError, reported below
            getattr(cluster.faults, args.cmd)(args.node)  # recorded as fault windows
        elif args.cmd == "fault":
            run_fault(cluster, args)
        elif args.cmd == "add":
            node = cluster.add(rack=args.rack)
            print(f"added {node.work_dir.name} on 127.0.0.1:{node.port}")
        elif args.cmd == "down":
            try:
                cluster.faults.heal()  # iptables rules of ours, toxics on someone else's Toxiproxy
            except Exception as exc:  # the nodes and proxies go anyway
                print(f"refcluster: heal before down: {exc}", file=sys.stderr)
            cluster.stop()
            shutil.rmtree(args.dir, ignore_errors=True)
    except KeyError as exc:
        print(f"refcluster: no node {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, RuntimeError, TimeoutError, FaultError, OSError) as exc:
        print(f"refcluster: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
