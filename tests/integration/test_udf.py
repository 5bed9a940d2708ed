"""Record UDFs in Lua with the official client against node processes: registration
(udf-put / udf-list / udf-get / udf-remove, with the server's answers), client.apply
reading and writing records through the one write rule, errors in the FAILURE bin, the
sandbox and the budget, persistence across a restart, sharing with every member."""

import base64
import hashlib
import json
import threading
import time

import aerospike
import pytest
from aerospike import exception as ex

from cluster.deploy.local_cluster import LocalCluster
from tests.conftest import SMALL_DEVICE, wait_until

NS, SET = "test", "udf"
FAST = ["network.heartbeat.interval=100", "service.quantum-interval-ms=200"]

MODULE = """
function get(rec, name) return rec[name] end
function put(rec, name, value)
  rec[name] = value
  if aerospike:exists(rec) then aerospike:update(rec) else aerospike:create(rec) end
  return record.gen(rec)
end
function add(rec, name, n) rec[name] = (rec[name] or 0) + n; aerospike:update(rec); return rec[name] end
function set_no_commit(rec, name, value) rec[name] = value; return 1 end
function drop_bin(rec, name) rec[name] = nil; aerospike:update(rec); return 0 end
function remove(rec) return aerospike:remove(rec) end
function update_missing(rec) rec['x'] = 1; return aerospike:update(rec) end
function create_existing(rec) rec['x'] = 1; return aerospike:create(rec) end
function meta(rec) return list{record.gen(rec), record.setname(rec), aerospike:exists(rec), record.numbins(rec)} end
function digest(rec) return record.digest(rec) end
function values(rec) return map{l = list{1, "two", 3.5, true}, m = map{k = "v"}, b = bytes(0)} end
function append(rec, name, value)
  local l = rec[name]; list.append(l, value); rec[name] = l; aerospike:update(rec); return l
end
function with_ttl(rec, ttl) rec['t'] = 1; record.set_ttl(rec, ttl); aerospike:update(rec); return 0 end
function fail(rec) error("boom") end
function forever(rec) while true do end end
function swallow(rec) while true do pcall(function() while true do end end) end end
function escape(rec) return tostring(os) .. tostring(io) .. tostring(load) .. tostring(string.dump) end
function logs(rec) info("seen %s", "it"); warn("warned"); debug("dbg"); return 1 end
"""


def register(client, tmp_path, name="udfmod", text=MODULE):
    path = tmp_path / f"{name}.lua"
    path.write_text(text)
    client.udf_put(str(path))
    return path


@pytest.fixture
def udf_client(node, tmp_path):
    # the client copies registered modules into its Lua user path: keep that in tmp_path
    client = aerospike.client({"hosts": [node.address], "lua": {"user_path": str(tmp_path)},
                               "policies": {"total_timeout": 5000}}).connect()
    register(client, tmp_path)
    yield client
    client.close()


def smd_hash(filename: str, text: str) -> str:
    """The server's udf-list hash: SHA-1 of the module's SMD value (JSON with base64 text)."""
    value = json.dumps({"content64": base64.b64encode(text.encode()).decode(), "type": "LUA", "name": filename})
    return hashlib.sha1(value.encode()).hexdigest()


def test_register_list_get_remove_with_the_servers_answers(udf_client, node):
    assert node.info("udf-list") == f"filename=udfmod.lua,hash={smd_hash('udfmod.lua', MODULE)},type=LUA;"
    assert udf_client.udf_list() == [{"name": "udfmod.lua", "hash": bytearray(smd_hash("udfmod.lua", MODULE).encode()),
                                      "type": 0, "content": bytearray(b"")}]
    got = node.info("udf-get:filename=udfmod.lua")
    assert got == f"type=LUA;content={base64.b64encode(MODULE.encode()).decode()};"
    assert node.info("udf-get:filename=nope.lua") == "error=not_found"
    bad = base64.b64encode(b"foo(((").decode()
    assert node.info(f"udf-put:filename=bad.lua;content={bad};content-len={len(bad)};udf-type=LUA;") == (
        "error=compile_error;file=bad.lua;line=1;message=" + base64.b64encode(b"unexpected symbol near <eof>").decode())
    assert node.info(f"udf-put:filename=bad.lua;content={bad};content-len=3;") == "error=invalid_content_len"
    assert node.info(f"udf-put:filename=bad.lua;content={bad};content-len={len(bad)};udf-type=PY;") == (
        "error=invalid_udf_type")
    assert node.info("udf-put:content=Zm9v;content-len=4") == "error=invalid_filename"
    assert node.info("udf-remove:filename=nope.lua") == "ok"
    udf_client.udf_remove("udfmod.lua")
    assert node.info("udf-list") == ""
    with pytest.raises(ex.UDFError) as caught:
        udf_client.apply((NS, SET, 1), "udfmod", "get", ["a"])
    assert caught.value.code == 100 and "UDF: Execution Error 1" in caught.value.msg


def test_apply_reads_and_writes_through_the_write_rule(udf_client):
    key = (NS, SET, "rw")
    # record.gen is the generation the UDF found (the server's answer): 0 for a new record
    assert udf_client.apply(key, "udfmod", "put", ["a", 1]) == 0
    assert udf_client.get(key)[1] == {"ttl": 4294967295, "gen": 1}
    assert udf_client.apply(key, "udfmod", "add", ["a", 5]) == 6
    assert udf_client.get(key)[1:] == ({"ttl": 4294967295, "gen": 2}, {"a": 6})
    assert udf_client.apply(key, "udfmod", "get", ["a"]) == 6
    assert udf_client.apply(key, "udfmod", "get", ["missing"]) is None
    assert udf_client.apply(key, "udfmod", "set_no_commit", ["b", 1]) == 1
    assert udf_client.get(key)[1:] == ({"ttl": 4294967295, "gen": 2}, {"a": 6})  # not committed: not written
    assert udf_client.apply(key, "udfmod", "meta", []) == [2, SET, True, 1]
    assert udf_client.apply(key, "udfmod", "digest", []) == aerospike.calc_digest(NS, SET, "rw")
    udf_client.put(key, {"l": [1, 2]})
    assert udf_client.apply(key, "udfmod", "append", ["l", 3]) == [1, 2, 3]
    assert udf_client.get(key)[2]["l"] == [1, 2, 3]
    assert udf_client.apply(key, "udfmod", "drop_bin", ["a"]) == 0
    assert "a" not in udf_client.get(key)[2]
    assert udf_client.apply(key, "udfmod", "with_ttl", [1000]) == 0
    assert 990 <= udf_client.get(key)[1]["ttl"] <= 1000
    assert udf_client.apply(key, "udfmod", "create_existing", []) == 1
    assert udf_client.apply(key, "udfmod", "remove", []) == 0
    assert udf_client.exists(key)[1] is None
    assert udf_client.apply(key, "udfmod", "remove", []) == 1  # nothing to remove
    assert udf_client.apply(key, "udfmod", "update_missing", []) == -2  # update does not create
    assert udf_client.exists(key)[1] is None
    assert udf_client.apply(key, "udfmod", "values", []) == {"l": [1, "two", 3.5, True], "m": {"k": "v"}, "b": b""}


def test_errors_come_back_in_the_failure_bin_and_the_node_stays_up(udf_client):
    key = (NS, SET, "err")
    udf_client.put(key, {"a": 1})
    with pytest.raises(ex.UDFError) as caught:
        udf_client.apply(key, "udfmod", "fail", [])
    assert caught.value.code == 100 and caught.value.msg.endswith("udfmod.lua:21: boom")
    with pytest.raises(ex.UDFError) as caught:
        udf_client.apply(key, "udfmod", "no_such_function", [])
    assert "function not found" in caught.value.msg
    for looping in ("forever", "swallow"):  # a UDF cannot hang the node, not even catching the budget error
        started = time.monotonic()
        with pytest.raises(ex.UDFError) as caught:
            udf_client.apply(key, "udfmod", looping, [])
        assert "execution budget" in caught.value.msg and time.monotonic() - started < 4.5
    assert udf_client.apply(key, "udfmod", "escape", []) == "nilnilnilnil"  # no os, io, load, string.dump
    assert udf_client.apply(key, "udfmod", "logs", []) == 1
    assert udf_client.get(key)[1:] == ({"ttl": 4294967295, "gen": 1}, {"a": 1})


def test_modules_survive_a_restart(start_node, tmp_path):
    node = start_node(SMALL_DEVICE)
    client = aerospike.client({"hosts": [node.address], "lua": {"user_path": str(tmp_path)}}).connect()
    register(client, tmp_path)
    client.close()
    node.restart()
    client = aerospike.client({"hosts": [node.address], "lua": {"user_path": str(tmp_path)}}).connect()
    try:
        assert "filename=udfmod.lua" in node.info("udf-list")
        assert client.apply((NS, SET, "after"), "udfmod", "put", ["a", 2]) == 0
    finally:
        client.close()


def test_modules_reach_every_member_and_a_returning_one(tmp_path):
    with LocalCluster(nodes=3, rf=2, run_dir=tmp_path / "c", settings=FAST) as cluster:
        client = aerospike.client({"hosts": [cluster["n1"].address], "lua": {"user_path": str(tmp_path)}}).connect()
        try:
            cluster.kill("n3")
            cluster.wait_converged()
            register(client, tmp_path)
            listed = cluster["n1"].info("udf-list")
            wait_until(lambda: cluster["n2"].info("udf-list") == listed, 10, "n2 to take the module")
            cluster.restart("n3")
            cluster.wait_converged()
            wait_until(lambda: cluster["n3"].info("udf-list") == listed, 15, "n3 to take the module it missed")
            keys = [(NS, SET, i) for i in range(50)]  # masters on every node: each runs the UDF
            for k in keys:
                assert client.apply(k, "udfmod", "put", ["v", k[2]]) == 0
            assert [client.get(k)[2]["v"] for k in keys] == list(range(50))
            # the client sends the job to the nodes it knows, each runs it on its own masters
            wait_until(lambda: len(client.get_nodes()) == 3, 15, "the client to know n3")
            wait_until(lambda: all(cluster[n].info("cluster-stable:size=3") != "ERROR::unstable-cluster"
                                   for n in ("n1", "n2", "n3")), 60, "migrations to finish", poll=0.5)
            job_id = client.scan_apply(NS, SET, "udfmod", "add", ["v", 1000])
            wait_job(client, job_id)
            assert [client.get(k)[2]["v"] for k in keys] == list(range(1000, 1050))
            client.udf_remove("udfmod.lua")
            wait_until(lambda: all(cluster[n].info("udf-list") == "" for n in ("n1", "n2", "n3")), 10,
                       "every node to drop the module")
        finally:
            client.close()


def wait_job(client, job_id: int, module=aerospike.JOB_SCAN) -> dict:
    wait_until(lambda: client.job_info(job_id, module)["status"] == aerospike.JOB_STATUS_COMPLETED, 20,
               "the background job to finish")
    return client.job_info(job_id, module)


def test_background_scan_runs_the_udf_on_every_record_and_reports_its_job(udf_client, node):
    keys = [(NS, "bg", i) for i in range(300)]
    for k in keys:
        udf_client.put(k, {"n": k[2]})
    udf_client.put((NS, "other", 1), {"n": 1})
    job_id = udf_client.scan_apply(NS, "bg", "udfmod", "add", ["n", 1000])
    assert wait_job(udf_client, job_id)["progress_pct"] == 100
    assert [udf_client.get(k)[2]["n"] for k in keys] == [i + 1000 for i in range(300)]
    assert [udf_client.get(k)[1]["gen"] for k in keys] == [2] * 300  # each one a write of its own
    assert udf_client.get((NS, "other", 1))[2]["n"] == 1  # another set: untouched
    shown = dict(item.split("=", 1) for item in node.info(f"query-show:trid={job_id}").split(":"))
    assert (shown["status"], shown["recs-succeeded"], shown["recs-failed"]) == ("done(ok)", "300", "0")
    assert (shown["job-type"], shown["udf-filename"], shown["udf-function"]) == ("background-udf", "udfmod", "add")
    failing = udf_client.scan_apply(NS, "bg", "udfmod", "fail", [])
    wait_job(udf_client, failing)
    shown = dict(item.split("=", 1) for item in node.info(f"query-show:trid={failing}").split(":"))
    assert (shown["recs-succeeded"], shown["recs-failed"]) == ("0", "300")
    assert node.info("query-show:trid=12345") == "ERROR:2:job not found"


def test_a_throttled_job_runs_in_the_background_and_can_be_aborted(udf_client, node):
    keys = [(NS, "slow", i) for i in range(100)]
    for k in keys:
        udf_client.put(k, {"n": 0})
    # the client's scan_apply returns once the job is done: run it aside, watch it with query-show
    applying = threading.Thread(target=udf_client.scan_apply,
                                args=(NS, "slow", "udfmod", "add", ["n", 1], {"records_per_second": 20}))
    applying.start()

    def active() -> dict | None:
        for job in filter(None, node.info("query-show").split(";")):
            shown = dict(item.split("=", 1) for item in job.split(":"))
            if shown["status"] == "active(ok)" and int(shown["recs-succeeded"]) > 0:
                return shown
        return None

    shown = wait_until(active, 10, "the job to be running")
    assert udf_client.get(keys[0])[2] is not None  # the node serves requests while the job runs
    assert node.info(f"query-abort:id={shown['trid']}") == "ok"
    applying.join(20)
    shown = dict(item.split("=", 1) for item in node.info(f"query-show:id={shown['trid']}").split(":"))
    assert shown["status"] == "done(user-aborted)" and int(shown["recs-succeeded"]) < 100
    assert node.info(f"query-abort:id={shown['trid']}") == "ERROR:2:id not active"
    assert node.info("query-abort:id=x") == "ERROR:4:bad id"
    assert node.info("query-abort-all") == "number-of-queries-killed:0"


def test_background_ops_and_a_filter_expression(udf_client):
    from aerospike_helpers import expressions as exp
    from aerospike_helpers.operations import operations as op

    keys = [(NS, "ops", i) for i in range(50)]
    for k in keys:
        udf_client.put(k, {"n": k[2]})
    scan = udf_client.scan(NS, "ops")
    scan.add_ops([op.increment("n", 100), op.write("tag", "x")])
    policy = {"expressions": exp.LT(exp.IntBin("n"), 10).compile()}
    job_id = scan.execute_background(policy)
    wait_job(udf_client, job_id)
    got = {k[2]: udf_client.get(k)[2] for k in keys}
    assert all(got[i] == ({"n": i + 100, "tag": "x"} if i < 10 else {"n": i}) for i in range(50))


def test_batch_apply_answers_each_row(udf_client):
    from aerospike_helpers.batch import records as br

    keys = [(NS, "batch", i) for i in range(10)]
    for k in keys[:5]:
        udf_client.put(k, {"n": k[2]})
    result = udf_client.batch_apply(keys, "udfmod", "add", ["n", 10])
    rows = [(r.result, r.record[2] if r.record else None) for r in result.batch_records]
    assert rows[:5] == [(0, {"SUCCESS": i + 10}) for i in range(5)]
    assert rows[5:] == [(0, {"SUCCESS": 10})] * 5  # aerospike:update on a missing record: nothing written
    assert [udf_client.get(k)[2]["n"] for k in keys[:5]] == [i + 10 for i in range(5)]
    assert [udf_client.exists(k)[1] for k in keys[5:]] == [None] * 5
    failed = udf_client.batch_apply(keys[:2], "udfmod", "fail", [])
    # as with the real server, the client shows a failed row without bins
    assert [(r.result, r.record) for r in failed.batch_records] == [(100, None)] * 2
    mixed = udf_client.batch_write(br.BatchRecords([
        br.Apply(keys[0], "udfmod", "get", ["n"]),
        br.Apply(keys[6], "udfmod", "put", ["n", 6]),
        br.Apply(keys[1], "udfmod", "remove", []),
    ]))
    assert [(r.result, r.record[2]) for r in mixed.batch_records] == [(0, {"SUCCESS": 10}), (0, {"SUCCESS": 0}),
                                                                      (0, {"SUCCESS": 0})]
    assert udf_client.get(keys[6])[2] == {"n": 6} and udf_client.exists(keys[1])[1] is None
