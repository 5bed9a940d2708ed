"""refproxy: a Toxiproxy-compatible TCP fault proxy of our own, because no Toxiproxy can
be installed here; and what the harness uses to drive any Toxiproxy (ours or a real one)
through the HTTP API only.

    server.py    the HTTP API (aiohttp), Toxiproxy 2.x's routes, JSON and status codes
    proxy.py     proxies: listener, live connections, toxics; /populate and /reset rules
    link.py      the byte path (asyncio/uvloop): connections, links, toxic stages
    toxics.py    latency, bandwidth, slow_close, timeout, reset_peer, slicer, limit_data
    metrics.py   toxiproxy_proxy_{received,sent}_bytes_total
    __main__.py  the `refproxy` command
    api.py       ToxiproxyClient: a typed client of the HTTP API, for the harness
    process.py   ProxyServer: our server as a child process, for tests and the harness
"""
