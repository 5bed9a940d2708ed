"""The HTTP API over raw HTTP: routes, status codes, JSON shapes and error messages as
Toxiproxy 2.x answers them; bad input never takes the server down."""

import json
import socket

import pytest
import requests

from chaos.proxy.process import ProxyServer
from tests.chaos.proxy.tcp import Upstream, connect, echo, round_trip_ms


@pytest.fixture
def http(server, api):
    """call(method, path, body) -> requests.Response against the module's server."""
    def call(method: str, path: str, body=None, **kw):
        data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
        return requests.request(method, server.url + path, data=data, timeout=5, **kw)
    return call


def error_of(response) -> dict:
    return json.loads(response.text)


def test_version_and_request_id(http):
    r = http("GET", "/version")
    assert r.status_code == 200 and r.json() == {"version": "2.12.0-refproxy"}
    assert r.headers["X-Toxiproxy-Request-Id"]


def test_proxy_lifecycle_and_json(http):
    r = http("POST", "/proxies", {"name": "a", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"})
    assert r.status_code == 201
    created = r.json()
    assert list(created) == ["name", "listen", "upstream", "enabled", "toxics"]
    assert created["name"] == "a" and created["enabled"] is True and created["toxics"] == []
    assert created["listen"].startswith("127.0.0.1:") and not created["listen"].endswith(":0")
    assert http("GET", "/proxies").json() == {"a": created}
    assert http("GET", "/proxies/a").json() == created
    r = http("PATCH", "/proxies/a", {"upstream": "127.0.0.1:10"})
    assert r.status_code == 200 and r.json()["upstream"] == "127.0.0.1:10"
    r = http("POST", "/proxies/a", {"enabled": False})  # the deprecated POST still updates
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert http("DELETE", "/proxies/a").status_code == 204
    assert http("GET", "/proxies").json() == {}


@pytest.mark.parametrize("body, status, message", [
    ({"name": "a", "upstream": "127.0.0.1:9"}, 409, "proxy already exists"),
    ({"upstream": "127.0.0.1:9"}, 400, "missing required field: name"),
    ({"name": "b"}, 400, "missing required field: upstream"),
    ("", 400, "bad request body: EOF"),
    ("{not json", 400, "bad request body"),
    ([], 400, "bad request body"),
    ({"name": 7, "upstream": "127.0.0.1:9"}, 400, "bad request body"),
    ({"name": "b", "upstream": "127.0.0.1:9", "listen": "nonsense"}, 500,
     "listen tcp: address nonsense: missing port in address"),
])
def test_proxy_create_errors(http, body, status, message):
    http("POST", "/proxies", {"name": "a", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"})
    r = http("POST", "/proxies", body)
    assert r.status_code == status
    assert error_of(r)["status"] == status and error_of(r)["error"].startswith(message)


def test_a_port_in_use_is_a_500_and_the_proxy_is_not_created(http):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        r = http("POST", "/proxies", {"name": "a", "listen": listen, "upstream": "127.0.0.1:9"})
    assert r.status_code == 500
    assert error_of(r) == {"error": f"listen tcp {listen}: bind: address already in use", "status": 500}
    assert http("GET", "/proxies").json() == {}


@pytest.mark.parametrize("method, path", [
    ("GET", "/proxies/nope"), ("PATCH", "/proxies/nope"), ("DELETE", "/proxies/nope"),
    ("GET", "/proxies/nope/toxics"), ("POST", "/proxies/nope/toxics"), ("GET", "/proxies/nope/toxics/t"),
])
def test_unknown_proxy_is_404(http, method, path):
    r = http(method, path, {"type": "latency"})
    assert r.status_code == 404 and error_of(r) == {"error": "proxy not found", "status": 404}


def test_toxic_lifecycle_and_json(http):
    http("POST", "/proxies", {"name": "a", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"})
    r = http("POST", "/proxies/a/toxics", {"type": "latency", "attributes": {"latency": 10}})
    assert r.status_code == 200  # Toxiproxy answers 200 here, not 201
    assert r.json() == {"attributes": {"latency": 10, "jitter": 0}, "name": "latency_downstream",
                        "type": "latency", "stream": "downstream", "toxicity": 1.0}
    http("POST", "/proxies/a/toxics", {"type": "limit_data", "name": "cap", "stream": "upstream",
                                       "toxicity": 0.5, "attributes": {"bytes": 5}})
    # upstream toxics are listed first, then downstream, each in the order added
    assert [t["name"] for t in http("GET", "/proxies/a/toxics").json()] == ["cap", "latency_downstream"]
    assert [t["name"] for t in http("GET", "/proxies/a").json()["toxics"]] == ["cap", "latency_downstream"]
    r = http("PATCH", "/proxies/a/toxics/latency_downstream", {"attributes": {"jitter": 3}})
    assert r.json()["attributes"] == {"latency": 10, "jitter": 3}  # only what was given changes
    r = http("POST", "/proxies/a/toxics/cap", {"toxicity": 0.25})
    assert r.json()["toxicity"] == 0.25 and r.json()["attributes"] == {"bytes": 5}
    assert http("GET", "/proxies/a/toxics/cap").json()["type"] == "limit_data"
    assert http("DELETE", "/proxies/a/toxics/cap").status_code == 204
    r = http("GET", "/proxies/a/toxics/cap")
    assert r.status_code == 404 and error_of(r) == {"error": "toxic not found", "status": 404}
    assert http("DELETE", "/proxies/a/toxics/cap").status_code == 404


@pytest.mark.parametrize("body, status, message", [
    ({"type": "latency"}, 409, "toxic already exists"),
    ({"type": "nope"}, 400, "invalid toxic type"),
    ({"type": "latency", "stream": "sideways"}, 400, "stream was invalid, can be either upstream or downstream"),
    ({"type": "latency", "name": "x", "attributes": {"latency": "100"}}, 400, "bad request body"),
    ({"type": "latency", "name": "x", "attributes": {"latency": 1.5}}, 400, "bad request body"),
    ({"type": "latency", "name": "x", "attributes": {"jitter": -1}}, 400, "bad request body"),
    ({"type": "slicer", "attributes": {"average_size": 10, "size_variation": 10}}, 400, "bad request body"),
    ({"type": "latency", "name": "x", "attributes": [1]}, 400, "bad request body"),
    ({"type": "latency", "name": "x", "toxicity": "all"}, 400, "bad request body"),
])
def test_toxic_create_errors(http, body, status, message):
    http("POST", "/proxies", {"name": "a", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"})
    http("POST", "/proxies/a/toxics", {"type": "latency"})
    r = http("POST", "/proxies/a/toxics", body)
    assert r.status_code == status
    assert error_of(r)["status"] == status and error_of(r)["error"].startswith(message)
    assert [t["name"] for t in http("GET", "/proxies/a/toxics").json()] == ["latency_downstream"]


def test_a_bad_toxic_update_changes_nothing(http):
    http("POST", "/proxies", {"name": "a", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"})
    http("POST", "/proxies/a/toxics", {"type": "latency", "attributes": {"latency": 10}})
    r = http("PATCH", "/proxies/a/toxics/latency_downstream", {"attributes": {"jitter": 5, "latency": "x"}})
    assert r.status_code == 400
    assert http("GET", "/proxies/a/toxics/latency_downstream").json()["attributes"] == {"latency": 10, "jitter": 0}


def test_browsers_are_refused(http):
    r = http("GET", "/proxies", headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"})
    assert r.status_code == 403 and r.text == "User agent not allowed\n"


def test_populate_creates_keeps_and_replaces(http):
    with Upstream(echo) as up1, Upstream(echo) as up2:
        with socket.create_server(("127.0.0.1", 0)) as probe:
            port = probe.getsockname()[1]  # a free port to ask for explicitly
        entries = [{"name": "a", "listen": f"127.0.0.1:{port}", "upstream": up1.address},
                   {"name": "b", "listen": "127.0.0.1:0", "upstream": up1.address, "enabled": False}]
        r = http("POST", "/populate", entries)
        assert r.status_code == 201
        assert [(p["name"], p["enabled"]) for p in r.json()["proxies"]] == [("a", True), ("b", False)]
        with connect(port) as sock:
            round_trip_ms(sock)
            r = http("POST", "/populate", entries[:1])  # unchanged: kept, connection and all
            assert r.status_code == 201
            round_trip_ms(sock)
            r = http("POST", "/populate", [dict(entries[0], upstream=up2.address)])  # changed: replaced
            assert r.json()["proxies"][0]["upstream"] == up2.address
            assert sock.recv(10) == b""  # the old proxy's connections went with it
        with connect(port) as sock:
            round_trip_ms(sock)
        assert len(up2.received) == 1


def test_populate_errors_carry_the_proxies_done(http):
    r = http("POST", "/populate", [{"name": "a", "upstream": "127.0.0.1:9"}, {"upstream": "127.0.0.1:9"}])
    assert r.status_code == 400
    assert r.json() == {"error": "missing required field: name at proxy 2", "status": 400, "proxies": None}
    assert http("GET", "/proxies").json() == {}  # checked before creating any
    with socket.create_server(("127.0.0.1", 0)) as taken:
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        r = http("POST", "/populate", [{"name": "a", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"},
                                       {"name": "b", "listen": listen, "upstream": "127.0.0.1:9"}])
    assert r.status_code == 500
    assert r.json()["error"] == f"listen tcp {listen}: bind: address already in use"
    assert [p["name"] for p in r.json()["proxies"]] == ["a"]


def test_metrics_count_the_bytes_of_each_direction(http):
    with Upstream(echo) as upstream:
        proxy = http("POST", "/proxies", {"name": "m", "listen": "127.0.0.1:0", "upstream": upstream.address}).json()
        with connect(int(proxy["listen"].rsplit(":", 1)[1])) as sock:
            round_trip_ms(sock, b"x" * 1000)
        text = http("GET", "/metrics").text
    labels = f'listener="{proxy["listen"]}",proxy="m",upstream="{upstream.address}"'
    for name in ("toxiproxy_proxy_received_bytes_total", "toxiproxy_proxy_sent_bytes_total"):
        assert f"# TYPE {name} counter" in text
        for direction in ("upstream", "downstream"):
            assert f'{name}{{direction="{direction}",{labels}}} 1000\n' in text, text


def test_garbage_never_takes_the_server_down(server, http):
    http("POST", "/proxies", {"name": "z", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"})
    for method, path, body, status in [
            ("POST", "/proxies", b"\xff\xfe", 400), ("POST", "/populate", "{}", 400),
            ("POST", "/proxies", {"name": "y", "upstream": "x", "listen": "127.0.0.1:99999"}, 500),
            ("PATCH", "/proxies/z", "[]", 400), ("PATCH", "/proxies/z", {"listen": "no-port"}, 500),
            ("POST", "/proxies/z/toxics", {"type": "slicer", "attributes": {"average_size": 0}}, 400),
            ("GET", "/nothing-here", None, 404), ("PUT", "/proxies", "{}", 405), ("POST", "/reset", "x", 204)]:
        assert http(method, path, body).status_code == status, (method, path, body)
    assert server.proc.poll() is None
    assert http("GET", "/version").status_code == 200


def test_config_file_is_populated_at_start(tmp_path):
    with Upstream(echo) as upstream:
        config = tmp_path / "proxies.json"
        config.write_text(json.dumps([{"name": "cfg", "listen": "127.0.0.1:0", "upstream": upstream.address}]))
        with ProxyServer(config=config) as server:
            proxy = server.client().proxy("cfg")
            assert proxy.enabled
            with connect(proxy.port) as sock:
                round_trip_ms(sock)
