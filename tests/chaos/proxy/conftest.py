"""One refproxy process per test module (a real child process on loopback, stopped at the
end even when a test fails); every test starts with no proxies."""

import itertools

import pytest

from chaos.proxy.api import ToxiproxyClient
from chaos.proxy.process import ProxyServer

SEED = 42


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ProxyServer(seed=SEED, log_path=tmp_path_factory.mktemp("refproxy") / "refproxy.log") as server:
        yield server


@pytest.fixture
def api(server) -> ToxiproxyClient:
    api = server.client()
    yield api
    assert server.proc.poll() is None, "refproxy died"
    for name in api.proxies():
        api.delete_proxy(name)


_names = itertools.count()


@pytest.fixture
def proxy_to(api):
    """proxy_to(upstream_address) -> a new Proxy to it, listening on 127.0.0.1:0."""
    def create(upstream: str):
        return api.create_proxy(f"p{next(_names)}", upstream=upstream)
    return create
