"""`refnode`: run one reference node.

    refnode --config node.toml [--set service.cluster-name=x] [--port 3000] [--work-dir DIR]
"""

import argparse
import asyncio
import logging
import signal
import sys

from cluster.node.config import ConfigError, NodeConfig


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="refnode", description="Run one reference Aerospike-style node.")
    p.add_argument("--config", help="TOML config file (aerospike.conf names); defaults apply without one")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. namespaces.test.replication-factor=1 (repeatable)")
    p.add_argument("--port", type=int, help="service port P; fabric and heartbeat move to P+1 and P+2 "
                                            "(as 3000/3001/3002) unless set with --set")
    p.add_argument("--work-dir", help="shortcut for service.work-directory (data files live there)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p.parse_args(argv)


def load_config(args: argparse.Namespace) -> NodeConfig:
    overrides = []
    if args.port is not None:
        overrides += [f"network.service.port={args.port}", f"network.fabric.port={args.port + 1}",
                      f"network.heartbeat.port={args.port + 2}"]
    overrides += args.set
    if args.work_dir is not None:
        overrides.append(f"service.work-directory={args.work_dir}")
    return NodeConfig.load(args.config, overrides)


async def serve(cfg: NodeConfig) -> None:
    from cluster.node.server import Node  # imported late: config errors should not pay for it

    node = Node(cfg)
    await node.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await node.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args)
    except ConfigError as exc:
        print(f"refnode: config error: {exc}", file=sys.stderr)
        return 2
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass  # the stock event loop works, only slower
    try:
        asyncio.run(serve(cfg))
    except OSError as exc:
        print(f"refnode: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
