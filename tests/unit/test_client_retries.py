"""Error paths of single-record commands against a scripted fake node: retries, timeouts, sockets."""

import select
import threading

import pytest

from cluster.client import Client, errors
from tests.conftest import wait_until
from tests.unit.client_fakes import ALL_PARTITIONS, FakeNode

KEY = ("test", "demo", 1)


@pytest.fixture
def fake():
    node = FakeNode()
    yield node
    node.stop()


def connect(seed: FakeNode, **config) -> Client:
    return Client({"hosts": [seed.address], "tend_interval": 60_000, **config}).connect()


def test_reads_retry_retryable_codes(fake):
    fake.script.extend([("rc", 11), ("rc", 18)])
    client = connect(fake)
    assert client.get(KEY)[2] == {"a": 1}
    assert len(fake.requests) == 3
    client.close()


def test_reads_give_up_after_max_retries(fake):
    fake.script.extend([("rc", 9)] * 5)
    client = connect(fake, policies={"read": {"max_retries": 2}})
    with pytest.raises(errors.Timeout) as info:
        client.get(KEY)
    assert info.value.code == 9 and len(fake.requests) == 3
    client.close()


def test_writes_are_not_retried_by_default(fake):
    fake.script.append(("rc", 11))
    client = connect(fake)
    with pytest.raises(errors.ClusterError):
        client.put(KEY, {"a": 1})
    assert len(fake.requests) == 1
    fake.script.append(("rc", 11))
    client.put(KEY, {"a": 1}, policy={"max_retries": 1})
    assert len(fake.requests) == 3
    client.close()


def test_other_codes_fail_at_once(fake):
    fake.script.append(("rc", 8))
    client = connect(fake)
    with pytest.raises(errors.ServerFull):
        client.get(KEY)
    assert len(fake.requests) == 1
    client.close()


def test_broken_socket_is_discarded_and_the_read_retried(fake):
    fake.script.append(("close",))
    client = connect(fake)
    assert client.get(KEY)[2] == {"a": 1}
    assert fake.accepted == 3  # tend socket, the socket the fake closed, its replacement
    client.close()


def test_total_timeout_bounds_a_stalled_command(fake):
    release = threading.Event()
    fake.script.append(("hold", release))
    client = connect(fake, policies={"total_timeout": 300})
    try:
        with pytest.raises(errors.Timeout):
            client.get(KEY)
        # the client gave up while the node still held its answer (it holds it up to 10 s)
        assert fake.answered == 0 and len(fake.requests) == 1
    finally:
        release.set()
    assert client.get(KEY)[2] == {"a": 1}  # on a fresh socket: the late reply is never read
    assert fake.accepted == 3  # tend socket, the timed-out one (discarded), its replacement
    client.close()


def test_sockets_are_pooled_and_reused(fake):
    client = connect(fake)
    for _ in range(5):
        client.get(KEY)
    assert fake.accepted == 2  # tend socket + one command socket
    client.close()


def test_a_socket_with_stray_bytes_is_not_reused(fake):
    fake.script.append(("stray",))
    client = connect(fake)
    client.get(KEY)
    node = next(iter(client._cluster.nodes.values()))
    pooled = node._idle[-1].sock
    wait_until(lambda: select.select([pooled], [], [], 0)[0], 5, "the stray byte on the pooled socket")
    client.get(KEY)
    assert fake.accepted == 3
    client.close()


def test_pool_is_bounded(fake):
    client = connect(fake, max_conns_per_node=1)
    node = next(iter(client._cluster.nodes.values()))
    with node.connection():
        with pytest.raises(errors.NoMoreConnections) as info:
            client.put(KEY, {"a": 1})
    assert info.value.code == -7
    client.put(KEY, {"a": 1})
    client.close()


def test_pool_is_thread_safe(fake):
    client = connect(fake, max_conns_per_node=4)
    failures = []

    def work():
        try:
            for _ in range(20):
                client.get(KEY, policy={"max_retries": 50, "sleep_between_retries": 1})
        except Exception as exc:  # collected: the assertion below reports it
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures and fake.accepted <= 5
    client.close()


def test_unreachable_node_raises_connection_error(fake):
    client = connect(fake)
    fake.stop()
    with pytest.raises(errors.ConnectionFailed) as info:
        client.get(KEY)
    assert info.value.code == -10
    client.close()


@pytest.fixture
def master_and_prole():
    master = FakeNode("BB9000000000001", [ALL_PARTITIONS, []])
    prole = FakeNode("BB9000000000002", [[], ALL_PARTITIONS])
    master.peers = [(prole.name, prole.port)]
    prole.peers = [(master.name, master.port)]
    yield master, prole
    master.stop()
    prole.stop()


def test_sequence_reads_retry_on_the_prole(master_and_prole):
    master, prole = master_and_prole
    master.script.append(("rc", 11))
    client = connect(master)
    assert client.get(KEY)[2] == {"a": 1}
    assert (len(master.requests), len(prole.requests)) == (1, 1)
    client.close()


def test_master_reads_and_writes_stay_on_the_master(master_and_prole):
    master, prole = master_and_prole
    master.script.extend([("rc", 11)] * 3 + [("rc", 11)] * 2)
    client = connect(master)
    with pytest.raises(errors.ClusterError):
        client.get(KEY, policy={"replica": "master"})
    with pytest.raises(errors.ClusterError):
        client.put(KEY, {"a": 1}, policy={"max_retries": 1})
    assert (len(master.requests), len(prole.requests)) == (5, 0)
    client.close()
