"""The real clients, unmodified, against refproxy: toxiproxy-python, chaostoolkit-toxiproxy's
actions and probes run by chaoslib's activity runner and by the `chaos run` CLI, and our
own ToxiproxyClient. Their effects are checked on real bytes."""

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
from chaoslib.activity import run_activity
from toxiproxy import Toxiproxy
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from chaos.proxy.api import ToxiproxyError
from tests.chaos.proxy.tcp import Upstream, connect, echo, round_trip_ms

LATENCY_TOLERANCE_MS = 20


@pytest.fixture
def upstream():
    with Upstream(echo) as upstream:
        yield upstream


@pytest.fixture
def toxiproxy(server, api) -> Toxiproxy:
    client = Toxiproxy()
    url = urlparse(server.url)
    client.update_api_consumer(url.hostname, url.port)  # a class-level setting of the client
    return client


def median_rtt_ms(port: int) -> float:
    with connect(port) as sock:
        round_trip_ms(sock)
        return statistics.median(round_trip_ms(sock) for _ in range(4))


def test_toxiproxy_python(toxiproxy, upstream):
    assert toxiproxy.running() and b"refproxy" in toxiproxy.version()
    proxy = toxiproxy.create(upstream=upstream.address, name="tp")
    with pytest.raises(ProxyExists):
        toxiproxy.create(upstream=upstream.address, name="tp")
    port = int(proxy.listen.rsplit(":", 1)[1])
    baseline = median_rtt_ms(port)

    proxy.add_toxic(type="latency", attributes={"latency": 100})
    assert list(proxy.toxics()) == ["latency_downstream"]
    assert proxy.get_toxic("latency_downstream").attributes == {"latency": 100, "jitter": 0}
    assert abs(median_rtt_ms(port) - baseline - 100) <= LATENCY_TOLERANCE_MS
    with pytest.raises(ProxyExists):
        proxy.add_toxic(type="latency", attributes={"latency": 100})
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="nope")
    proxy.destroy_toxic("latency_downstream")
    assert proxy.toxics() == {}

    proxy.disable()
    assert toxiproxy.get_proxy("tp").enabled is False
    with pytest.raises(ConnectionRefusedError):
        connect(port)
    proxy.enable()
    with proxy.down():
        with pytest.raises(ConnectionRefusedError):
            connect(port)
    median_rtt_ms(port)

    proxy.add_toxic(type="timeout", stream="upstream", attributes={"timeout": 0})
    proxy.disable()
    assert toxiproxy.reset()
    assert toxiproxy.get_proxy("tp").enabled and proxy.toxics() == {}

    populated = toxiproxy.populate([{"name": "tp2", "upstream": upstream.address, "listen": "127.0.0.1:0"}])
    assert [p.name for p in populated] == ["tp2"]
    assert sorted(toxiproxy.proxies()) == ["tp", "tp2"]
    assert proxy.destroy()
    toxiproxy.destroy_all()
    assert toxiproxy.proxies() == {}
    with pytest.raises(NotFound):
        proxy.destroy()


def activity(module: str, func: str, **arguments) -> dict:
    """An activity as an experiment file declares one."""
    return {"type": "action", "name": func,
            "provider": {"type": "python", "module": module, "func": func, "arguments": arguments}}


def test_chaostoolkit_actions_and_probes_via_chaoslib(server, api, upstream, monkeypatch):
    monkeypatch.setenv("ctk_PORT", "")  # create_proxy writes it to os.environ: restored after
    configuration = {"toxiproxy_url": server.url}
    host, port = upstream.address.split(":")

    def run(module, func, **arguments):
        return run_activity(activity(module, func, **arguments), configuration, {})

    assert run("chaostoxi.proxy.actions", "create_proxy", proxy_name="ctk", upstream_host=host,
               upstream_port=int(port), listen_host="127.0.0.1")
    proxy_port = int(os.environ["ctk_PORT"])  # chaoslib hands actions a copy of the configuration
    assert proxy_port == api.proxy("ctk").port
    assert run("chaostoxi.proxy.probes", "proxy_exist", proxy_name="ctk") is True
    assert run("chaostoxi.proxy.probes", "get_proxy_attribute", proxy_name="ctk", attribute="upstream") \
        == upstream.address
    baseline = median_rtt_ms(proxy_port)

    assert run("chaostoxi.toxic.actions", "create_latency_toxic", for_proxy="ctk", toxic_name="slow", latency=100)
    assert abs(median_rtt_ms(proxy_port) - baseline - 100) <= LATENCY_TOLERANCE_MS
    assert run("chaostoxi.toxic.actions", "delete_toxic", for_proxy="ctk", toxic_name="slow")
    for func, kwargs in [("create_bandwith_degradation_toxic", {"rate": 100}),
                         ("create_slow_connection_close_toxic", {"delay": 100}),
                         ("create_timeout_toxic", {"timeout": 0}),
                         ("create_slicer_toxic", {"average_size": 10, "size_variation": 2, "delay": 10}),
                         ("create_limiter_toxic", {"bytes_limit": 10})]:
        assert run("chaostoxi.toxic.actions", func, for_proxy="ctk", toxic_name=func, **kwargs)
    assert run("chaostoxi.toxic.actions", "create_toxic", for_proxy="ctk", toxic_name="rst",
               toxic_type="reset_peer", stream="upstream", attributes={"timeout": 0})
    assert [t.name for t in api.toxics("ctk")][:1] == ["rst"] and len(api.toxics("ctk")) == 6

    assert run("chaostoxi.proxy.actions", "disable_proxy", proxy_name="ctk")
    assert run("chaostoxi.proxy.probes", "get_proxy_attribute", proxy_name="ctk", attribute="enabled") is False
    assert run("chaostoxi.proxy.actions", "enable_proxy", proxy_name="ctk")
    assert run("chaostoxi.proxy.actions", "reset")
    assert api.toxics("ctk") == []
    assert median_rtt_ms(proxy_port) - baseline <= LATENCY_TOLERANCE_MS
    run("chaostoxi.proxy.actions", "delete_proxy", proxy_name="ctk")
    assert run("chaostoxi.proxy.probes", "proxy_exist", proxy_name="ctk") is False


def test_chaos_run_cli_experiment(server, api, upstream, tmp_path):
    """A whole experiment through the real `chaos run`: steady state, latency injected and
    checked by a probe measuring real round trips, rollback."""
    host, port = upstream.address.split(":")
    probe_module = tmp_path / "rtt_probe.py"
    probe_module.write_text(
        "import socket, time\n"
        "def rtt_ms(port):\n"
        "    with socket.create_connection(('127.0.0.1', int(port)), timeout=5) as s:\n"
        "        t = time.perf_counter(); s.sendall(b'ping'); s.recv(10)\n"
        "        return (time.perf_counter() - t) * 1000\n")
    experiment = {
        "title": "latency on the echo link", "description": "refproxy through chaostoolkit-toxiproxy",
        "configuration": {"toxiproxy_url": server.url},
        "steady-state-hypothesis": {"title": "the proxy exists", "probes": [
            {"type": "probe", "name": "exists", "tolerance": True, "provider": {
                "type": "python", "module": "chaostoxi.proxy.probes", "func": "proxy_exist",
                "arguments": {"proxy_name": "exp"}}}]},
        "method": [
            {"type": "action", "name": "latency", "provider": {
                "type": "python", "module": "chaostoxi.toxic.actions", "func": "create_latency_toxic",
                "arguments": {"for_proxy": "exp", "toxic_name": "lag", "latency": 200}}},
            {"type": "probe", "name": "slow round trip", "provider": {
                "type": "python", "module": "rtt_probe", "func": "rtt_ms",
                "arguments": {"port": "${exp_PORT}"}}}],
        "rollbacks": [{"type": "action", "name": "remove latency", "provider": {
            "type": "python", "module": "chaostoxi.toxic.actions", "func": "delete_toxic",
            "arguments": {"for_proxy": "exp", "toxic_name": "lag"}}}],
    }
    proxy = api.create_proxy("exp", upstream=f"{host}:{port}")
    experiment["configuration"]["exp_PORT"] = str(proxy.port)
    (tmp_path / "experiment.json").write_text(json.dumps(experiment))
    chaos = Path(sys.executable).with_name("chaos")
    done = subprocess.run([str(chaos), "run", "--rollback-strategy", "always", "--journal-path",
                           "journal.json", "experiment.json"], cwd=tmp_path, timeout=120,
                          env={"PYTHONPATH": str(tmp_path), "PATH": str(chaos.parent)}, capture_output=True)
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["status"] == "completed", done.stderr.decode()[-2000:]
    runs = {r["activity"]["name"]: r for r in journal["run"]}
    assert runs["latency"]["output"] is True
    assert abs(runs["slow round trip"]["output"] - 200) <= LATENCY_TOLERANCE_MS
    assert journal["rollbacks"][0]["output"] is True
    assert api.toxics("exp") == []


def test_our_client_raises_the_servers_errors(api, upstream):
    proxy = api.create_proxy("ours", upstream=upstream.address)
    assert api.proxies()["ours"] == proxy
    with pytest.raises(ToxiproxyError) as e:
        api.create_proxy("ours", upstream=upstream.address)
    assert (e.value.status, e.value.message) == (409, "proxy already exists")
    toxic = api.add_toxic("ours", "bandwidth", {"rate": 50}, name="bw", stream="upstream", toxicity=0.5)
    assert (toxic.name, toxic.stream, toxic.toxicity, toxic.attributes) == ("bw", "upstream", 0.5, {"rate": 50})
    assert api.update_toxic("ours", "bw", {"rate": 70}, toxicity=1.0).attributes == {"rate": 70}
    assert api.proxy("ours").toxics == [api.update_toxic("ours", "bw", toxicity=1.0)]
    with pytest.raises(ToxiproxyError) as e:
        api.add_toxic("ours", "latency", {"latency": "slow"})
    assert e.value.status == 400
    api.remove_toxic("ours", "bw")
    moved = api.update_proxy("ours", listen="127.0.0.1:0")
    assert moved.port != proxy.port and moved.enabled
    assert [p.name for p in api.populate([{"name": "ours", "listen": moved.listen, "upstream": upstream.address}])] \
        == ["ours"]
    api.delete_proxy("ours")
    with pytest.raises(ToxiproxyError) as e:
        api.proxy("ours")
    assert e.value.status == 404
