"""`refcluster`: start and operate a local cluster of reference nodes.

    refcluster up --nodes 3 [--rf 2] [--racks 1] [--dir run/cluster] [--set KEY=VALUE ...]
    refcluster status | info NODE COMMAND | kill|stop|pause|resume|restart NODE | add | down
"""

import argparse
import shutil
import sys
from pathlib import Path

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
    command("status", help="one row per node")
    info = command("info", help="run an info command on a node (asinfo -v)")
    info.add_argument("node")
    info.add_argument("command")
    for name in ("kill", "stop", "pause", "resume", "restart"):
        command(name, help=f"{name} one node").add_argument("node")
    add = command("add", help="start one more node")
    add.add_argument("--rack", type=int)
    command("down", help="stop every node and remove the run directory")
    args = ap.parse_args(argv)

    try:
        if args.cmd == "up":
            if (Path(args.dir) / STATE_FILE).exists():
                raise ValueError(f"{args.dir} already holds a cluster: `refcluster down --dir {args.dir}` first")
            cluster = LocalCluster(args.nodes, args.rf, args.racks, run_dir=args.dir, settings=args.set,
                                   detached=True)
            with_cleanup(cluster.start, cluster)
            print_status(cluster)
            return 0
        cluster = LocalCluster.load(args.dir)
        if args.cmd == "status":
            print_status(cluster)
        elif args.cmd == "info":
            print(cluster[args.node].info(args.command))
        elif args.cmd in ("kill", "pause", "resume", "restart"):
            getattr(cluster, args.cmd)(args.node)
        elif args.cmd == "stop":
            cluster.stop_node(args.node)
        elif args.cmd == "add":
            node = cluster.add(rack=args.rack)
            print(f"added {node.work_dir.name} on 127.0.0.1:{node.port}")
        elif args.cmd == "down":
            cluster.stop()
            shutil.rmtree(args.dir, ignore_errors=True)
    except KeyError as exc:
        print(f"refcluster: no node {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, RuntimeError, TimeoutError) as exc:
        print(f"refcluster: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
