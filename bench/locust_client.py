"""Requests/s of one Locust process with our client against one node, next to Locust's
FastHttpUser against a minimal HTTP server, in the same run on the same machine (loopback).

Cases, each a separate `locust --headless` process with the same users and run time:

* fasthttp — FastHttpUser GETs a 1 KiB body from a bare uvloop HTTP/1.1 server (the baseline);
* client   — a User that GETs 1 KiB records with our client and fires Locust's request event;
* ycsb     — workloads/ycsb.py, workload C (read-only) over the same client, with the YCSB
             bookkeeping and HDR measurements on top.

Ratios are requests/s over the fasthttp baseline. The CPU columns say which side was the
bottleneck: a Locust process near 100 % is the generator's limit, a server near 100 % the
server's. Run time includes no start-up: Locust counts from its own test start.

    python bench/locust_client.py [--seconds 10] [--users 16] [--records 1000]
"""

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.raw_load import wait_listening  # noqa: E402
from cluster.client import Client  # noqa: E402
from cluster.deploy.local import LocalNode, free_port_block  # noqa: E402

VALUE = b"v" * 1024
NAMESPACE, SET = "test", "bench"
NODE_ENV = "LOCUST_CLIENT_BENCH_NODE"  # host:port of the node, for the client user
RECORDS_ENV = "LOCUST_CLIENT_BENCH_RECORDS"


# -- the baseline server ---------------------------------------------------------------------------


class _Http(asyncio.Protocol):
    """HTTP/1.1 keep-alive: every request (GET, no body) gets the same 1 KiB response."""

    RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Length: %d\r\n\r\n" % len(VALUE)) + VALUE

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        requests = self.buffer.count(b"\r\n\r\n")
        if requests:
            self.buffer = self.buffer.rsplit(b"\r\n\r\n", 1)[1]
            self.transport.write(self.RESPONSE * requests)


def serve_http(port: int) -> None:
    import uvloop

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(_Http, "127.0.0.1", port, reuse_address=True)
        await server.serve_forever()

    uvloop.run(serve())


# -- running one case ------------------------------------------------------------------------------


def run_case(locust_args: list[str], server_pid: int, args, env: dict[str, str]) -> dict:
    """One headless Locust process; its requests/s and the CPU use of it and of the server."""
    command = [sys.executable, "-m", "locust", *locust_args, "--headless", "-u", str(args.users),
               "-r", str(args.users), "-t", f"{args.seconds}s", "--stop-timeout", "1", "--json", "--only-summary"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    # CPU over the middle of the run: after imports and spawning, before stopping.
    time.sleep(2.0)
    sampled = [psutil.Process(proc.pid), psutil.Process(server_pid)]
    before = [sum(p.cpu_times()[:2]) for p in sampled]
    started = time.monotonic()
    time.sleep(max(1.0, args.seconds - 2.5))
    after = [sum(p.cpu_times()[:2]) for p in sampled]
    elapsed = time.monotonic() - started
    stdout, stderr = proc.communicate(timeout=args.seconds + 60)
    if not stdout.strip().startswith("["):
        raise RuntimeError(f"locust {' '.join(locust_args)} exited {proc.returncode}:\n{stderr[-2000:]}")
    entries = json.loads(stdout)
    requests = sum(e["num_requests"] for e in entries)
    failures = sum(e["num_failures"] for e in entries)
    span = max(e["last_request_timestamp"] for e in entries) - min(e["start_time"] for e in entries)
    locust_cpu, server_cpu = ((a - b) / elapsed * 100 for a, b in zip(after, before, strict=True))
    return {"ops": requests / span, "failures": failures, "locust_cpu": locust_cpu, "server_cpu": server_cpu}


def preload(address: tuple[str, int], records: int) -> None:
    client = Client({"hosts": [address]}).connect()
    try:
        for i in range(records):
            client.put((NAMESPACE, SET, i), {"v": VALUE})
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--records", type=int, default=1000)
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    rows = []

    http_port = free_port_block(1)
    http = mp.Process(target=serve_http, args=(http_port,), daemon=True)
    http.start()
    try:
        wait_listening(http_port)
        rows.append(("fasthttp", run_case(["-f", __file__, "FastHttpBench", "--host", f"http://127.0.0.1:{http_port}"],
                                          http.pid, args, env)))
    finally:
        http.kill()
        http.join()

    with tempfile.TemporaryDirectory() as work:
        node = LocalNode(Path(work) / "node", free_port_block(3)).start()
        try:
            preload(node.address, args.records)
            hosts = "{}:{}".format(*node.address)
            client_env = env | {NODE_ENV: hosts, RECORDS_ENV: str(args.records)}
            rows.append(("client", run_case(["-f", __file__, "ClientBench"], node.pid, args, client_env)))
            ycsb = ["-f", str(ROOT / "workloads" / "ycsb.py"), "--hosts", hosts, "--workload", "c",
                    "--recordcount", str(args.records)]
            load = ycsb + ["--phase", "load", "--results-dir", str(Path(work) / "ycsb-load")]
            subprocess.run([sys.executable, "-m", "locust", *load, "--headless", "-u", "4", "-t", "60s",
                            "--only-summary"], env=env, check=True, capture_output=True, timeout=120)
            run = ycsb + ["--operationcount", "0", "--results-dir", str(Path(work) / "ycsb")]
            rows.append(("ycsb", run_case(run, node.pid, args, env)))
        finally:
            node.stop()

    base = rows[0][1]["ops"]
    print(f"one Locust process, {args.users} users, {args.seconds} s per case, loopback, 1 KiB values")
    print(f"{'case':<10}{'req/s':>10}{'ratio':>8}{'failures':>10}{'locust CPU':>12}{'server CPU':>12}")
    for name, row in rows:
        print(f"{name:<10}{row['ops']:>10.0f}{row['ops'] / base:>7.2f}x{row['failures']:>10}"
              f"{row['locust_cpu']:>11.0f}%{row['server_cpu']:>11.0f}%")


if __name__ == "__main__":
    main()
else:  # imported by `locust -f bench/locust_client.py`: the two user classes
    import random

    from locust import User, constant, task
    from locust.contrib.fasthttp import FastHttpUser

    from cluster.wire.result_codes import AerospikeError
    from workloads.aerospike_binding import failure_name

    class FastHttpBench(FastHttpUser):
        wait_time = constant(0)

        @task
        def get(self) -> None:
            self.client.get("/")

    class ClientBench(User):
        """The minimal custom-client pattern: time the call, fire the request event."""

        wait_time = constant(0)
        client: Client | None = None  # one per process, shared by its users

        def on_start(self) -> None:
            if ClientBench.client is None:
                host, port = os.environ[NODE_ENV].rsplit(":", 1)
                ClientBench.client = Client({"hosts": [(host, int(port))],
                                             "max_conns_per_node": self.environment.runner.target_user_count}).connect()
            self.records = int(os.environ[RECORDS_ENV])

        @task
        def get(self) -> None:
            start = time.perf_counter()
            exception = None
            try:
                self.client.get((NAMESPACE, SET, random.randrange(self.records)))
            except AerospikeError as error:
                exception = failure_name(error.code)
            self.environment.events.request.fire(
                request_type="GET", name="record", response_time=(time.perf_counter() - start) * 1000.0,
                response_length=len(VALUE), exception=exception, context={},
            )
