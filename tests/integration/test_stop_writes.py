"""A small device fills: client writes get 8, reads and deletes work, freeing space clears it."""

import time

import aerospike
import pytest
from aerospike import exception as ex

NS, SET = "test", "fill"
DEVICE = [
    "namespaces.test.storage-engine.filesize=4M",
    "namespaces.test.storage-engine.write-block-size=128K",
    "namespaces.test.storage-engine.defrag-lwm-pct=50",
    "service.tick-ms=20",
]


def _stats(node) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in node.info("namespace/test").split(";"))


def test_stop_writes_then_recovery(start_node):
    node = start_node(DEVICE)
    client = aerospike.client({"hosts": [node.address]}).connect()
    value = "v" * 1000
    written = 0
    with pytest.raises(ex.ServerFull):
        for i in range(20_000):
            client.put((NS, SET, i), {"v": value})
            written += 1
            if i % 200 == 0:
                time.sleep(0.03)  # let the housekeeping tick re-evaluate stop-writes
    stats = _stats(node)
    assert stats["stop_writes"] == "true"
    assert float(stats["data_used_pct"]) >= 69 or float(stats["data_avail_pct"]) < 5
    assert 1000 < written < 4000  # ~70% of 4 MiB in ~1 KiB records

    # Reads and deletes still work under stop-writes.
    assert client.get((NS, SET, 0))[2] == {"v": value}
    with pytest.raises(ex.ServerFull):
        client.put((NS, SET, "one-more"), {"v": 1})
    for i in range(0, written, 2):
        client.remove((NS, SET, i))
    for i in range(1, written // 2, 2):
        client.remove((NS, SET, i))

    deadline = time.monotonic() + 15
    while _stats(node)["stop_writes"] == "true" and time.monotonic() < deadline:
        time.sleep(0.1)
    stats = _stats(node)
    assert stats["stop_writes"] == "false", stats
    client.put((NS, SET, "after"), {"v": value})
    assert client.get((NS, SET, "after"))[2] == {"v": value}
    # Everything not deleted is still there.
    survivors = [i for i in range(1, written, 2) if i >= written // 2]
    assert survivors
    for i in survivors:
        assert client.get((NS, SET, i))[2] == {"v": value}
    client.close()
