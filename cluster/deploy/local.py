"""Reference nodes as local processes on loopback (the embedded default).

A `LocalNode` is one `refnode` process with its own config, data directory and log file.
Children are started with PR_SET_PDEATHSIG so that none outlives the Python process that
started it, even when that process is killed or a test fails half-way.
"""

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from cluster.wire import info as winfo
from cluster.wire import proto

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass  # not Linux: LocalNode.__exit__ / atexit still stop the node


def ephemeral_port_floor(default: int = 32768) -> int:
    """Lowest port the kernel hands to outgoing connections; ours must stay below it, or a
    client socket may take a killed node's port before the node restarts."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return default


def free_port_block(count: int, start: int = 10000, end: int | None = None) -> int:
    """A port P in [start, end) such that P..P+count-1 are all free on 127.0.0.1."""
    end = end or ephemeral_port_floor()
    port = start + (os.getpid() * 37) % (end - start - count)  # spread parallel runs apart
    for _ in range((end - start) // count):
        socks = []
        try:
            for i in range(count):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", port + i))
                socks.append(s)
            return port
        except OSError:
            port = start + (port + count - start) % (end - start - count)
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free block of loopback ports")


def info_request(host: str, port: int, commands: list[str], timeout: float = 2.0) -> dict[str, str]:
    """Send one info request and return {command: value}."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(winfo.build_request(commands))
        header = recv_exact(sock, proto.HEADER_SIZE)
        _type, size = proto.unpack_header(header)
        return winfo.parse_response(recv_exact(sock, size))


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed mid-reply")
        buf += chunk
    return bytes(buf)


def wait_in_cluster(node, label: str, timeout: float, poll: float) -> None:
    """Until `node` (a LocalNode or DockerNode) is a member of a cluster whose exchange
    completed, so that it publishes a partition map; at once an error if it exits."""
    deadline = time.monotonic() + timeout
    command = "cluster-stable:ignore-migrations=true"
    while time.monotonic() < deadline:
        if not node.is_running():
            raise RuntimeError(f"{label} {node.exit_status()}; log tail:\n{node.log_tail()}")
        try:
            if not info_request(node.host, node.port, [command], timeout=0.5)[command].startswith("ERROR"):
                return
        except (OSError, KeyError):
            pass
        time.sleep(poll)
    raise TimeoutError(f"{label} not in a cluster after {timeout}s; log tail:\n{node.log_tail()}")


class LocalNode:
    """One node process. `settings` are `--set KEY=VALUE` overrides for its config."""

    def __init__(self, work_dir: str | Path, port: int, settings: list[str] = (), config: str | None = None,
                 host: str = "127.0.0.1", detached: bool = False, pid: int | None = None):
        self.work_dir = Path(work_dir)
        self.detached = detached  # True for `refcluster up`: the node outlives the command
        self.host = host
        self.port = port
        self.settings = list(settings)
        self.config = config
        self.proc: subprocess.Popen | None = None
        self._pid = pid  # a node started by another process (refcluster CLI state)
        self.log_path = self.work_dir / "node.log"

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "cluster.node.main", "--port", str(self.port),
               "--work-dir", str(self.work_dir), "--set", f"network.service.address={self.host}"]
        if self.config:
            cmd += ["--config", self.config]
        for item in self.settings:
            cmd += ["--set", item]
        return cmd

    def start(self, wait: float = 20.0) -> "LocalNode":
        self.work_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        repo_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=repo_root + os.pathsep + os.environ.get("PYTHONPATH", ""))
        # A node dies with its runner, but in a process group of its own: a terminal's Ctrl-C
        # goes to the runner, which restores and stops the cluster in order (a node that got
        # the SIGINT itself would already be gone, mid-rollback).
        lifetime = ({"start_new_session": True} if self.detached
                    else {"preexec_fn": _die_with_parent, "process_group": 0})
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env, **lifetime)
        log.close()
        if wait:
            self.wait_ready(wait)
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        wait_in_cluster(self, f"node on port {self.port}", timeout, poll=0.05)

    def info(self, command: str) -> str:
        return info_request(self.host, self.port, [command])[command]

    def exit_status(self) -> str:
        return f"exited with {self.proc.returncode}" if self.proc else "exited"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else self._pid

    def is_running(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        if self._pid is None:
            return False
        try:
            return psutil.Process(self._pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def signal(self, sig: int) -> None:
        if self.is_running():
            os.kill(self.pid, sig)

    def _wait_exit(self, timeout: float) -> bool:
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        try:
            psutil.Process(self._pid).wait(timeout)
        except psutil.NoSuchProcess:
            pass
        except psutil.TimeoutExpired:
            return False
        return True

    def kill(self) -> None:
        """SIGKILL: the node gets no chance to flush anything."""
        if self.is_running():
            os.kill(self.pid, signal.SIGKILL)
            self._wait_exit(10)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if not self.is_running():
            return
        self.resume()  # a paused process cannot act on SIGTERM
        os.kill(self.pid, signal.SIGTERM)
        if not self._wait_exit(timeout):
            self.kill()

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    def restart(self, wait: float = 20.0) -> "LocalNode":
        self.stop()
        return self.start(wait)

    def __enter__(self) -> "LocalNode":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()
