"""`refproxy`: our Toxiproxy-compatible server, with toxiproxy-server's flags.

    refproxy -host 127.0.0.1 -port 8474 [-config proxies.json] [-seed N] [-proxy-metrics]

`-config` is a JSON list of proxies created at start as by POST /populate; `-seed` makes
every random draw of the toxics (toxicity, jitter, slicer sizes) repeat from run to run.
Logs go to stderr; LOG_LEVEL (debug, info, warn, error) sets how much.
"""

import argparse
import asyncio
import json
import logging
import os
import signal
import time

import uvloop
from aiohttp import web

from chaos.proxy.proxy import Proxies
from chaos.proxy.server import VERSION, make_app

log = logging.getLogger("refproxy")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="refproxy", description="A Toxiproxy-compatible TCP fault proxy.")
    p.add_argument("-host", "--host", default="localhost", help="address of the HTTP API")
    p.add_argument("-port", "--port", type=int, default=8474, help="port of the HTTP API")
    p.add_argument("-config", "--config", help="JSON file of proxies to create on start")
    p.add_argument("-seed", "--seed", type=int, default=time.time_ns(), help="seed of the toxics' randomness")
    p.add_argument("-proxy-metrics", "--proxy-metrics", action="store_true",
                   help="serve /metrics with the proxies' byte counters")
    p.add_argument("-version", "--version", action="store_true", help="print the version and exit")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    proxies = Proxies(args.seed)
    if args.config:
        await populate_from_file(proxies, args.config)
    runner = web.AppRunner(make_app(proxies, metrics=args.proxy_metrics), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port).start()
    log.info("Starting Toxiproxy HTTP server on %s:%s (version %s, seed %d)", args.host, args.port, VERSION, args.seed)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("Shutdown started")
    proxies.stop_all()
    await runner.cleanup()


async def populate_from_file(proxies: Proxies, path: str) -> None:
    """As Toxiproxy: a bad file is logged and the server starts without it."""
    try:
        with open(path) as f:
            body = json.load(f)
    except (OSError, ValueError) as e:
        log.error("Error reading config file %s: %s", path, e)
        return
    done, error = await proxies.populate(body)
    if error:
        log.error("Failed to populate proxies from file: %s", error.message)
    else:
        log.info("Populated %d proxies from file", len(done))


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.version:
        print(f"toxiproxy-server version {VERSION}")
        return
    level = os.environ.get("LOG_LEVEL", "info").upper()
    level = {"WARN": "WARNING"}.get(level, level)
    logging.basicConfig(level=level if level in logging.getLevelNamesMapping() else "INFO",
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvloop.run(serve(args))


if __name__ == "__main__":
    main()
