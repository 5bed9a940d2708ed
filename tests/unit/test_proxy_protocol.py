"""core/proxy.py: a proxied request carries the client's remaining time and its hop count."""

from cluster.core.data_messages import ProxyRequest, ProxyResponse
from cluster.core.effects import Outbox
from cluster.core.messages import decode, encode
from cluster.core.proxy import MAX_HOPS, TIMEOUT_REPLY, Proxies, ProxyDone, ServeProxied


def sent(outbox: Outbox):
    sends, events = outbox.take()
    return [decode(encode(s.msg)) for s in sends], events


def test_the_deadline_travels_with_the_request_and_the_hops_are_counted():
    a, b = Proxies(1, Outbox(1)), Proxies(2, Outbox(2))
    tid = a.forward(2, b"request", 0, deadline_ms=1_800, now_ms=1_000)
    [req], _ = sent(a.out)
    assert type(req) is ProxyRequest and (req.hops, req.timeout_ms) == (1, 800)
    b.on_request(req, now_ms=50_000)  # another node, another clock: only the remaining time counts
    _, [serve] = sent(b.out)
    assert serve == ServeProxied(1, tid, 1, 50_800, b"request")
    b.respond(1, tid, b"reply")
    [resp], _ = sent(b.out)
    assert type(resp) is ProxyResponse
    a.on_response(resp)
    assert sent(a.out)[1] == [ProxyDone(tid, b"reply", False)]


def test_no_hop_beyond_the_budget_and_timeout_at_the_deadline():
    p = Proxies(1, Outbox(1))
    assert p.forward(2, b"r", MAX_HOPS, deadline_ms=2_000, now_ms=1_000) is None
    tid = p.forward(2, b"r", MAX_HOPS - 1, deadline_ms=2_000, now_ms=1_000)
    assert p.tick(1_999) == 2_000 and sent(p.out)[1] == []
    assert p.tick(2_000) is None
    assert sent(p.out)[1] == [ProxyDone(tid, TIMEOUT_REPLY, True)]
