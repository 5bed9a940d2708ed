"""A proxy's dial to an upstream that does not answer yet (its SYN dropped, as a docker-killed
node's are): a client that leaves meanwhile takes its bytes with it; one that stays gets
them delivered when the upstream answers a retransmitted SYN. The upstream's accept queue is
kept full so that the kernel drops the proxy's first SYN."""

import socket
import time

from tests.chaos.proxy.tcp import connect

REQUEST = b"a request its client gave up on"


def upstream_deaf_to_syns() -> tuple[socket.socket, socket.socket]:
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    filler = socket.create_connection(listener.getsockname())  # fills the accept queue
    return listener, filler


def bytes_delivered(listener: socket.socket, within_s: float) -> bytes:
    """Accept for `within_s` (the filler first) and return everything the proxy sent."""
    listener.settimeout(0.2)
    received, deadline = b"", time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        with conn:
            conn.settimeout(0.5)
            try:
                while chunk := conn.recv(4096):
                    received += chunk
            except TimeoutError:
                pass
    return received


def test_a_client_that_leaves_while_the_proxy_dials_sends_nothing(proxy_to):
    listener, filler = upstream_deaf_to_syns()
    with listener, filler:
        proxy = proxy_to(f"127.0.0.1:{listener.getsockname()[1]}")
        client = connect(proxy.port)
        client.sendall(REQUEST)
        time.sleep(0.3)  # the proxy dials; its SYN is dropped
        client.close()
        time.sleep(0.3)
        assert bytes_delivered(listener, within_s=4) == b""  # the SYN retransmit at +1 s found no dial


def test_a_client_that_stays_gets_its_bytes_through_at_the_syn_retransmit(proxy_to):
    listener, filler = upstream_deaf_to_syns()
    with listener, filler:
        proxy = proxy_to(f"127.0.0.1:{listener.getsockname()[1]}")
        with connect(proxy.port) as client:
            client.sendall(REQUEST)
            time.sleep(0.6)
            assert bytes_delivered(listener, within_s=4) == REQUEST
