"""Answers that must be the real server's, checked with the official client against a node process."""

import base64
import socket
import time

import aerospike
import pytest
from aerospike import exception as ex
from aerospike_helpers.operations import list_operations as lo
from aerospike_helpers.operations import map_operations as mo
from aerospike_helpers.operations import operations as op

from cluster.deploy.local import LocalNode, free_port_block, info_request, recv_exact
from cluster.deploy.local_cluster import LocalCluster
from cluster.wire import message as wm
from cluster.wire import proto
from cluster.wire.digest import compute_digest
from cluster.wire.message import FieldType, Info1, Info2, Info3, Message, OpType, value_op
from cluster.wire.result_codes import ResultCode
from tests.conftest import wait_until

NS, SET = "test", "demo"
FAST = ["network.heartbeat.interval=100", "service.quantum-interval-ms=200"]


def raw_request(node, msg: Message) -> Message:
    """One AS_MSG request on a fresh socket, its parsed reply."""
    with socket.create_connection(node.address, timeout=5) as sock:
        sock.sendall(wm.encode_frame(msg))
        _type, length = proto.unpack_header(recv_exact(sock, 8))
        return wm.parse(recv_exact(sock, length))[0]


def test_scan_bin_selection_leaves_out_records_without_those_bins(aero):
    aero.put((NS, "sel", 1), {"a": 1, "b": 2})
    aero.put((NS, "sel", 2), {"b": 3})
    scan = aero.scan(NS, "sel")
    scan.select("a")
    assert [bins for _, _, bins in scan.results()] == [{"a": 1}]


@pytest.mark.parametrize("info1", [Info1.READ | Info1.BATCH, Info1.READ], ids=["batch without rows", "scan"])
def test_a_refused_batch_or_scan_ends_with_a_last_reply(node, info1):
    """The client reads a batch or scan until a LAST reply: a refusal must be one."""
    fields = {FieldType.NAMESPACE: b"no-such-ns"} if info1 == Info1.READ else {}
    reply = raw_request(node, Message(info1=info1, fields=fields))
    assert reply.result_code in (ResultCode.PARAMETER, ResultCode.NAMESPACE_NOT_FOUND)
    assert reply.info3 & Info3.LAST


def test_recreate_after_plain_remove_starts_at_generation_1(aero):
    key = (NS, SET, "regen")
    aero.put(key, {"a": 1})
    aero.put(key, {"a": 2})
    aero.remove(key)
    aero.put(key, {"a": 3})
    assert aero.exists(key)[1]["gen"] == 1


def test_recreate_after_durable_delete_continues_the_tombstone(aero):
    key = (NS, SET, "durable")
    aero.put(key, {"a": 1})
    aero.put(key, {"a": 2})
    aero.remove(key, policy={"durable_delete": True})
    assert aero.exists(key)[1] is None
    aero.put(key, {"a": 3})
    assert aero.exists(key)[1]["gen"] == 4


@pytest.mark.parametrize("op_type, value", [
    (OpType.INCR, "text"), (OpType.INCR, 2.5), (OpType.APPEND, 7), (OpType.PREPEND, b"raw"), (OpType.APPEND, "s"),
])
def test_modify_ops_create_a_missing_bin_with_their_value(aero, node, op_type, value):
    """Sent raw: the official client refuses some of these pairs before they reach a server."""
    user_key = f"new-bin-{op_type}-{value!r}"
    fields = {FieldType.NAMESPACE: NS.encode(), FieldType.SET: SET.encode(),
              FieldType.DIGEST: compute_digest(SET, user_key)}
    reply = raw_request(node, Message(info2=Info2.WRITE, fields=fields, ops=[value_op(op_type, "v", value)]))
    assert reply.result_code == ResultCode.OK
    assert aero.get((NS, SET, user_key))[2] == {"v": value}


def test_read_touch_ttl_percent(aero):
    key = (NS, SET, "touched")
    aero.put(key, {"a": 1}, meta={"ttl": 100})
    time.sleep(2.2)  # over 2% of the TTL has passed: a read at 99% touches it, at 50% does not
    aero.get(key, policy={"read_touch_ttl_percent": 50})
    time.sleep(0.3)
    _, meta = aero.exists(key)
    assert meta["ttl"] <= 98 and meta["gen"] == 1
    _, read_meta, _ = aero.get(key, policy={"read_touch_ttl_percent": 99})
    assert read_meta["ttl"] <= 98  # the touch follows the read
    deadline = time.monotonic() + 3
    while aero.exists(key)[1]["ttl"] <= 98:
        assert time.monotonic() < deadline, "the read did not touch the record"
        time.sleep(0.05)
    assert aero.exists(key)[1]["gen"] == 1  # a read-touch leaves the generation alone


def test_read_without_bins_or_ops_is_refused(aero, node):
    key_digest = compute_digest(SET, "plain-read")
    aero.put((NS, SET, "plain-read"), {"a": 1})
    fields = {FieldType.NAMESPACE: NS.encode(), FieldType.SET: SET.encode(), FieldType.DIGEST: key_digest}
    assert raw_request(node, Message(info1=Info1.READ, fields=fields)).result_code == ResultCode.PARAMETER
    reply = raw_request(node, Message(info1=Info1.READ | Info1.GET_ALL, fields=fields))
    assert reply.result_code == ResultCode.OK and [o.name for o in reply.ops] == ["a"]


def test_info_sets_and_logs(aero, node):
    for i in range(3):
        aero.put((NS, "demo", i), {"i": i})
    aero.put((NS, "other", 1), {"i": 1})
    lines = {dict(kv.split("=", 1) for kv in entry.split(":"))["set"]: entry
             for entry in node.info("sets").split(";") if entry}
    assert lines["demo"].startswith("ns=test:set=demo:objects=3:")
    assert "objects=1:" in lines["other"]
    assert node.info("sets/test/demo").startswith("objects=3:")
    assert node.info("logs").startswith("0:")


def test_record_lives_through_its_void_time_second(aero):
    while time.time() % 1 > 0.3:  # start early in a second, so put and check are in known seconds
        time.sleep(0.05)
    start = int(time.time())
    key = (NS, SET, "expiring")
    aero.put(key, {"a": 1}, meta={"ttl": 1})  # void time = start + 1
    time.sleep(start + 1.5 - time.time())
    assert aero.exists(key)[1] is not None  # still alive in its void-time second
    time.sleep(start + 2.5 - time.time())
    assert aero.exists(key)[1] is None


def test_operate_delete_on_a_missing_record_is_not_found(aero):
    with pytest.raises(ex.RecordNotFound):
        aero.operate((NS, SET, "never-written"), [op.delete()])


# Which ops answer, as the real server (CE 8.1) does, issue #14. The client asks for every
# op's answer (RESPOND_ALL_OPS) only when a map op is in the request.
@pytest.mark.parametrize("ops, ordered_answer", [
    ([lo.list_set("l", 1, 9)], []),
    ([lo.list_clear("l"), lo.list_append("l", 5)], [("l", 1)]),
    ([lo.list_sort("l"), op.read("l")], [("l", [1, 2, 3])]),
    ([lo.list_remove_by_index("l", 0, aerospike.LIST_RETURN_NONE), op.read("l")], [("l", [1, 2])]),
    ([lo.list_set("l", 0, 9), mo.map_put("m", "b", 2)], [("l", None), ("m", 2)]),
    # a CDT read of a missing bin answers nothing; of an existing bin it answers, even without a value
    ([lo.list_append("l", 4), lo.list_size("missing"), lo.list_get_by_index("l", 0, aerospike.LIST_RETURN_NONE)],
     [("l", 4), ("l", None)]),
], ids=["list_set", "clear+append", "sort+read", "remove NONE+read", "with a map op", "write+reads"])
def test_ops_without_a_result_answer_only_when_every_answer_is_asked_for(aero, ops, ordered_answer):
    key = (NS, SET, "answers")
    aero.put(key, {"l": [3, 1, 2], "m": {"a": 1}})
    assert aero.operate_ordered(key, ops)[2] == ordered_answer


@pytest.mark.parametrize("ops, ordered_answer", [
    ([lo.list_size("missing"), op.read("l")], [("l", [3, 1, 2])]),
    ([lo.list_get_by_index("l", 0, aerospike.LIST_RETURN_NONE), op.read("l")], [("l", [3, 1, 2])]),
    ([lo.list_size("missing"), mo.map_size("missing")], [("missing", None), ("missing", None)]),
], ids=["missing bin", "no value", "with a map op"])
def test_a_read_request_answers_only_ops_that_found_a_value(aero, ops, ordered_answer):
    """read.c: an op answers when it has a value, or when the client asked for every answer."""
    key = (NS, SET, "read-answers")
    aero.put(key, {"l": [3, 1, 2], "m": {"a": 1}})
    assert aero.operate_ordered(key, ops)[2] == ordered_answer


@pytest.mark.parametrize("operator", [aerospike.OPERATOR_PREPEND, aerospike.OPERATOR_APPEND, aerospike.OPERATOR_INCR])
@pytest.mark.parametrize("bins", [{"no": 3}, {"other": 1}], ids=["int bin", "missing bin"])
def test_a_modify_op_with_a_null_value_is_a_parameter_error(aero, operator, bins):
    key = (NS, SET, "null-modify")
    aero.put(key, bins)
    with pytest.raises(ex.InvalidRequest) as caught:  # 4, before the server looks at the bin
        aero.operate(key, [{"op": operator, "bin": "no", "val": aerospike.null()}])
    assert caught.value.code == ResultCode.PARAMETER


def test_rank_range_of_an_unordered_list_in_the_servers_heap_order(aero):
    key = (NS, SET, "rank-order")
    aero.put(key, {"l": [7, 6, 5, 8, 9, 10]})
    value = aerospike.LIST_RETURN_VALUE
    assert aero.operate_ordered(key, [
        lo.list_get_by_rank_range("l", 0, value, 3),
        lo.list_get_by_rank_range("l", 3, value, 3),
        lo.list_get_by_value_rank_range_relative("l", 6, 1, value, 3),
        lo.list_remove_by_rank_range("l", 1, value, 4),
    ])[2] == [("l", [7, 6, 5]), ("l", [8, 9, 10]), ("l", [7, 8, 9]), ("l", [9, 8, 7, 6])]
    assert aero.get(key)[2] == {"l": [5, 10]}


def test_a_starting_node_publishes_no_partial_map(tmp_path):
    """Until its first balance a node answers partition-generation -1 (as the server does):
    a client then takes no map from it rather than an empty one it keeps until its next tend."""
    node = LocalNode(tmp_path / "early", free_port_block(3))
    node.start(wait=0)
    try:
        seen = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                reply = info_request(node.host, node.port, ["partition-generation", "replicas-master"], timeout=0.5)
            except OSError:
                time.sleep(0.01)
                continue
            _ns, _, masters = reply["replicas-master"].partition(":")
            whole = base64.b64decode(masters) == b"\xff" * 512 if masters else False
            seen.append((reply["partition-generation"], whole))
            if whole:
                break
            time.sleep(0.01)
        assert seen and seen[-1][1], seen
        assert all(gen == "-1" for gen, whole in seen if not whole), seen
    finally:
        node.kill()


def durable_remove(client, key) -> bool:
    try:
        client.remove(key, policy={"durable_delete": True})
    except (ex.ConnectionError, ex.TimeoutError, ex.ServerError):  # the map is catching up
        return False
    return True


def test_durable_and_plain_deletes_in_a_cluster(tmp_path):
    """A plain remove is the server's non-durable delete (re-create: generation 1, on every
    copy); a durable one still wins after a node that missed it comes back with its copy."""
    retry = {"total_timeout": 5000, "max_retries": 10, "sleep_between_retries": 200}
    with LocalCluster(nodes=3, rf=2, run_dir=tmp_path / "c", settings=FAST) as cluster:
        client = aerospike.client({"hosts": [cluster["n1"].address],
                                   "policies": {"write": retry, "read": retry}}).connect()
        try:
            plain = (NS, "del", "plain")
            for value in (1, 2):
                client.put(plain, {"v": value})
            client.remove(plain)
            client.put(plain, {"v": 3})
            assert client.exists(plain)[1]["gen"] == 1

            keys = [(NS, "del", i) for i in range(40)]
            for k in keys:
                client.put(k, {"v": 1})
            cluster.kill("n2")
            cluster.wait_converged()
            wait_until(lambda: len(client.get_nodes()) == 2, 15, "the client to drop n2")
            for k in keys:
                wait_until(lambda k=k: durable_remove(client, k), 10, f"removing {k}")
            cluster.restart("n2")
            cluster.wait_converged()
            wait_until(lambda: all(cluster[n].info("cluster-stable:size=3") != "ERROR::unstable-cluster"
                                   for n in ("n1", "n2", "n3")), 60, "migrations to finish", poll=0.5)
            assert [k for k in keys if client.exists(k)[1] is not None] == []
            assert client.exists(plain)[1]["gen"] == 1
        finally:
            client.close()


@pytest.mark.parametrize("geojson", [
    {"type": "Nope", "coordinates": [1, 2]},
    {"type": "Point", "coordinates": [1, 95]},
    {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]},  # not closed
], ids=["unknown type", "latitude 95", "open loop"])
def test_a_geojson_bin_the_server_cannot_read_is_refused(aero, geojson):
    key = (NS, SET, "bad-geo")
    with pytest.raises(ex.AerospikeError) as caught:
        aero.put(key, {"g": aerospike.GeoJSON(geojson)})
    assert caught.value.code == ResultCode.GEO_INVALID_GEOJSON
    aero.put(key, {"g": aerospike.GeoJSON({"type": "AeroCircle", "coordinates": [[1, 2], 10]})})
