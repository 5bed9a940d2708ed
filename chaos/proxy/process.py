"""ProxyServer: our `refproxy` as a child process on a free loopback port.

    with ProxyServer(seed=7) as server:         # returns once /version answers
        api = server.client()                   # a ToxiproxyClient on server.url
        ...
                                                # stopped on exit, also when the body raises

The child dies with the Python process that started it (PR_SET_PDEATHSIG), so none is
left behind by a killed test run. A harness given a real Toxiproxy (`toxiproxy_url`) skips
this and uses `ToxiproxyClient(url)` directly.
"""

import os
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

from chaos.proxy.api import ToxiproxyClient
from cluster.deploy.local import _die_with_parent, free_port_block


class ProxyServer:
    def __init__(self, seed: int = 0, host: str = "127.0.0.1", port: int | None = None,
                 config: str | Path | None = None, log_path: str | Path | None = None, proxy_metrics: bool = True):
        self.host, self.port, self.seed = host, port, seed
        self.config, self.proxy_metrics = config, proxy_metrics
        self.log_path = Path(log_path) if log_path else None
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client(self, timeout: float = 10.0) -> ToxiproxyClient:
        return ToxiproxyClient(self.url, timeout)

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "chaos.proxy", "-host", self.host, "-port", str(self.port),
               "-seed", str(self.seed)]
        if self.config:
            cmd += ["-config", str(self.config)]
        if self.proxy_metrics:
            cmd.append("-proxy-metrics")
        return cmd

    def start(self, wait: float = 15.0) -> "ProxyServer":
        """Start and wait until the API answers. A port taken meanwhile by someone else (the
        child then exits at once) is retried on another, unless the port was given."""
        for _attempt in range(3):
            port_given = self.port is not None
            self.port = self.port or free_port_block(1)
            self._spawn()
            if self._wait_ready(wait):
                return self
            if port_given:
                break
            self.port = None
        raise RuntimeError(f"refproxy did not start (exit code {self.proc.returncode}); see {self.log_path}")

    def _spawn(self) -> None:
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        repo_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=repo_root + os.pathsep + os.environ.get("PYTHONPATH", ""))
        try:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                         **self._lifetime())
        finally:
            if self.log_path:
                log.close()

    def _lifetime(self) -> dict:
        """Popen options tying the server's life to ours: it dies with its parent, but a
        terminal's Ctrl-C reaches only the parent, which still needs the proxy to heal."""
        return {"preexec_fn": _die_with_parent, "process_group": 0}

    def _wait_ready(self, timeout: float) -> bool:
        """True once /version answers; False if the child exited first."""
        api = self.client(timeout=1.0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                api.version()
                return True
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"refproxy on port {self.port} did not answer within {timeout}s")

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (it closes every proxy), then SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "ProxyServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
