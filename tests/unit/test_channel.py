"""Channel connection hygiene on loopback sockets: connections to a silent peer are dropped
and redialled, silent incoming ones are closed (and all are TCP keepalive probed), and
outgoing ones leave from our address."""

import asyncio
import socket

from cluster.node.channel import _LEN, Channel


class Peer:
    """A listener that records each connection's source and the bytes it sent, and never
    answers: like a node behind a blackholing proxy."""

    def __init__(self):
        self.sources: list[tuple[str, int]] = []
        self.data: list[bytearray] = []

    async def start(self, host: str = "127.0.0.1") -> tuple[str, int]:
        self.server = await asyncio.start_server(self._on_connection, host, 0)
        return self.server.sockets[0].getsockname()[:2]

    async def _on_connection(self, reader, _writer):
        self.sources.append(_writer.get_extra_info("peername")[:2])
        received = bytearray()
        self.data.append(received)
        while chunk := await reader.read(65536):
            received += chunk


async def settle(condition, rounds: int = 200) -> None:
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


def frame(payload: bytes) -> bytes:
    return _LEN.pack(len(payload)) + payload


def test_a_connection_to_a_silent_peer_is_replaced_by_a_fresh_one():
    async def main():
        peer = Peer()
        endpoint = await peer.start()
        channel = Channel("hb", "127.0.0.2", 0, lambda _: None)
        channel.send(endpoint, b"one")
        await settle(lambda: peer.data and peer.data[0] == frame(b"one"))

        channel.heard_from(endpoint)
        channel.close_silent(idle=60)
        channel.send(endpoint, b"two")
        await settle(lambda: peer.data[0] == frame(b"one") + frame(b"two"))
        assert len(peer.sources) == 1, "a peer heard from keeps its connection"

        await asyncio.sleep(0.05)
        channel.close_silent(idle=0.01)  # nothing heard for 50 ms
        channel.send(endpoint, b"three")
        await settle(lambda: len(peer.data) == 2 and peer.data[1] == frame(b"three"))
        assert [host for host, _ in peer.sources] == ["127.0.0.2", "127.0.0.2"], "dialled from our address"
        assert channel.connections_opened == 2 and channel.connections_closed == 1
        channel.close()

    asyncio.run(main())


def test_a_departed_peer_is_disconnected_and_redialled_on_the_next_send():
    async def main():
        peer = Peer()
        endpoint = await peer.start()
        channel = Channel("fabric", "127.0.0.1", 0, lambda _: None)
        channel.send(endpoint, b"before")
        await settle(lambda: peer.data and peer.data[0] == frame(b"before"))
        channel.disconnect(endpoint)
        channel.send(endpoint, b"after")
        await settle(lambda: len(peer.data) == 2 and peer.data[1] == frame(b"after"))
        channel.close()

    asyncio.run(main())


def test_a_silent_incoming_connection_is_closed_and_a_talking_one_kept():
    async def main():
        received = []
        channel = Channel("hb", "127.0.0.1", 0, received.append)
        await channel.start()
        endpoint = channel._server.sockets[0].getsockname()[:2]
        _, silent = await asyncio.open_connection(*endpoint)
        _, talking = await asyncio.open_connection(*endpoint)
        await settle(lambda: len(channel._inbound) == 2)
        sockets = [inbound.transport.get_extra_info("socket") for inbound in channel._inbound]
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) for s in sockets), "probed when quiet"

        await asyncio.sleep(0.05)
        talking.write(frame(b"pulse"))
        await settle(lambda: received == [b"pulse"])
        channel.close_silent(idle=0.03)  # the silent one: 50 ms; the talking one: just now
        await settle(lambda: len(channel._inbound) == 1)
        talking.write(frame(b"again"))
        await settle(lambda: received == [b"pulse", b"again"])  # the talking one survived
        silent.close()
        talking.close()
        channel.close()

    asyncio.run(main())


def test_closing_while_dialling_leaves_no_connection_and_drops_later_sends():
    async def main():
        peer = Peer()
        endpoint = await peer.start()
        channel = Channel("fabric", "127.0.0.1", 0, lambda _: None)
        channel.send(endpoint, b"queued")
        channel.close()  # before the dial ran
        channel.send(endpoint, b"after")
        await asyncio.sleep(0.2)
        assert not channel._out and not peer.sources and channel.sent == 0 and channel.dropped == 2
        assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    asyncio.run(main())


def test_an_unexpected_dial_failure_is_logged_and_the_next_send_dials_again(caplog):
    async def main():
        peer = Peer()
        endpoint = await peer.start()
        routes = iter([RuntimeError("no route"), endpoint])

        def route(_endpoint):
            step = next(routes)
            if isinstance(step, Exception):
                raise step
            return step

        unretrieved = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: unretrieved.append(context))
        channel = Channel("fabric", "127.0.0.1", 0, lambda _: None, route=route)
        channel.send(endpoint, b"lost")
        await asyncio.sleep(0.05)
        channel.send(endpoint, b"delivered")
        await settle(lambda: peer.data and peer.data[0] == frame(b"delivered"))
        channel.close()
        assert not unretrieved

    asyncio.run(main())
    assert "connecting failed: RuntimeError('no route')" in caplog.text
