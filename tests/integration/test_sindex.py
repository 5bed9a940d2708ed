"""Secondary indexes with the official client against node processes: the info commands
(create, delete, list, stats, exists) with the server's answers, index queries (equality and
range; list, map-key and map-value indexes; a CDT context) combined with filter
expressions, bin selection, no-bins and partition pagination, refusals (no index: 201; geo:
16), and definitions that survive a restart and reach a node that joins later."""

import aerospike
import pytest
from aerospike import exception as ex
from aerospike import predicates as p
from aerospike_helpers import cdt_ctx
from aerospike_helpers import expressions as exp

from cluster.deploy.local_cluster import LocalCluster
from tests.conftest import SMALL_DEVICE, wait_until

NS, SET = "test", "people"
FAST = ["network.heartbeat.interval=100", "service.quantum-interval-ms=200"]


def load(client, n: int = 40, set_name: str = SET) -> None:
    for i in range(n):
        client.put((NS, set_name, i), {
            "age": i, "name": f"n{i % 4}", "tags": [i % 3, 100 + i], "attrs": {f"k{i % 5}": i * 10},
            "blob": bytearray([i % 2]), "nested": [i, 2 * i],
        })


def ages(records) -> list[int]:
    return sorted(bins["age"] for _key, _meta, bins in records)


def query(client, predicate, *extra, set_name=SET, policy=None, select=()):
    q = client.query(NS, set_name)
    if select:
        q.select(*select)
    q.where(predicate, *extra)
    return q.results(policy or {})


def listing(node) -> dict[str, dict[str, str]]:
    text = node.info("sindex-list")
    entries = [dict(kv.split("=", 1) for kv in item.split(":")) for item in text.split(";") if item]
    return {e["indexname"]: e for e in entries}


def test_index_queries_select_what_the_index_holds(aero, node):
    load(aero)
    aero.put((NS, "other", 1), {"age": 5})  # another set: not in a set's index
    aero.index_integer_create(NS, SET, "age", "age_idx")
    aero.index_string_create(NS, SET, "name", "name_idx")
    aero.index_list_create(NS, SET, "tags", aerospike.INDEX_NUMERIC, "tags_idx")
    aero.index_map_keys_create(NS, SET, "attrs", aerospike.INDEX_STRING, "keys_idx")
    aero.index_map_values_create(NS, SET, "attrs", aerospike.INDEX_NUMERIC, "values_idx")
    aero.index_blob_create(NS, SET, "blob", "blob_idx")
    aero.index_cdt_create(NS, SET, "nested", aerospike.INDEX_TYPE_DEFAULT, aerospike.INDEX_NUMERIC, "nested_idx",
                          [cdt_ctx.cdt_ctx_list_index(1)])

    assert ages(query(aero, p.equals("age", 7))) == [7]
    assert ages(query(aero, p.between("age", 10, 14))) == [10, 11, 12, 13, 14]
    assert ages(query(aero, p.equals("name", "n1"))) == list(range(1, 40, 4))
    assert ages(query(aero, p.contains("tags", aerospike.INDEX_TYPE_LIST, 2))) == list(range(2, 40, 3))
    # a range over a list index: a record with several matching elements comes once
    assert ages(query(aero, p.range("tags", aerospike.INDEX_TYPE_LIST, 0, 101))) == list(range(40))
    assert ages(query(aero, p.contains("attrs", aerospike.INDEX_TYPE_MAPKEYS, "k3"))) == list(range(3, 40, 5))
    assert ages(query(aero, p.range("attrs", aerospike.INDEX_TYPE_MAPVALUES, 50, 80))) == [5, 6, 7, 8]
    assert ages(query(aero, p.equals("blob", bytearray([1])))) == list(range(1, 40, 2))
    assert ages(query(aero, p.range("nested", aerospike.INDEX_TYPE_DEFAULT, 6, 10),
                      [cdt_ctx.cdt_ctx_list_index(1)])) == [3, 4, 5]  # the element at index 1: 2 * age

    # with a filter expression, a bin selection, no bins
    even = exp.Eq(exp.BlobBin("blob"), bytearray([0])).compile()
    assert ages(query(aero, p.between("age", 10, 19), policy={"expressions": even})) == [10, 12, 14, 16, 18]
    selected = query(aero, p.equals("age", 3), select=("name",))
    assert [bins for _k, _m, bins in selected] == [{"name": "n3"}]
    q = aero.query(NS, SET)
    q.where(p.between("age", 0, 4))
    assert [bins for _k, _m, bins in q.results(options={"nobins": True})] == [{}] * 5

    # the set-less index on the same bin serves a query on any set; a set's does not serve others
    with pytest.raises(ex.IndexNotFound):
        query(aero, p.equals("age", 5), set_name="other")
    aero.index_integer_create(NS, None, "age", "age_anywhere")
    assert ages(query(aero, p.equals("age", 5), set_name="other")) == [5]

    assert node.info(f"sindex-stat:namespace={NS};indexname=tags_idx").startswith("entries=80;load_pct=100")
    assert node.info(f"sindex/{NS}/age_idx").startswith("entries=40;")
    assert node.info(f"sindex-exists:namespace={NS};indexname=age_idx") == "true"
    entry = listing(node)["nested_idx"]
    assert (entry["set"], entry["bin"], entry["type"], entry["indextype"], entry["state"]) == (
        SET, "nested", "numeric", "default", "RW")
    assert listing(node)["age_anywhere"]["set"] == "null"


def test_queries_without_an_index_or_on_geo_are_refused(aero):
    load(aero, 5)
    with pytest.raises(ex.IndexNotFound):
        query(aero, p.equals("age", 3))  # no index on that bin
    aero.index_integer_create(NS, SET, "age", "age_idx")
    with pytest.raises(ex.IndexNotFound):
        query(aero, p.equals("name", "n1"))  # an index on another bin
    with pytest.raises(ex.IndexNotFound):
        query(aero, p.contains("age", aerospike.INDEX_TYPE_LIST, 3))  # another index type
    aero.index_geo2dsphere_create(NS, SET, "where", "geo_idx")
    with pytest.raises(ex.AerospikeError) as err:
        query(aero, p.geo_within_radius("where", -122.0, 37.5, 1000.0))
    assert err.value.code == 16


def test_create_delete_answers_as_the_server(aero, node):
    info = node.info
    create = f"sindex-create:ns={NS};set={SET};indexname=a;indexdata=age,numeric"
    assert info(create) == "ok"
    assert info(create) == "ok"  # the same definition again
    assert info(f"sindex-create:ns={NS};set={SET};indexname=a;indexdata=age,string") == (
        "ERROR:200:'indexname' already exists with different definition")
    with pytest.raises(ex.IndexFoundError):
        aero.index_string_create(NS, SET, "age", "a")
    # another name for the same definition renames the index, as SMD's key is the definition
    assert info(f"sindex-create:namespace={NS};set={SET};indexname=b;bin=age;type=NUMERIC") == "ok"
    assert list(listing(node)) == ["b"]
    assert info(f"sindex-stat:namespace={NS};indexname=a") == "ERROR:201:no index"
    assert info(f"sindex-create:ns={NS};indexname=x;indexdata=m") == "ERROR:4:'indexdata' missing bin type"
    assert info(f"sindex-create:ns={NS};indexname=x;bin=m;type=FOO").startswith("ERROR:4:bad 'type'")
    assert info(f"sindex-create:ns={NS};indexname=x;indextype=mapkeys;bin=m;type=geo2dsphere").startswith(
        "ERROR:4:bad 'indexdata' bin type for 'indextype' 'mapkeys'")
    assert info(f"sindex-create:ns={NS};set={'s' * 64};indexname=x;indexdata=m,string") == (
        "ERROR:4:'set' value too long")
    assert info(f"sindex-create:ns={'n' * 32};indexname=x;indexdata=m,string") == (
        "ERROR:20:'namespace' value too long")
    assert info(f"sindex-create:ns={NS};indexname=x;context=!!;indexdata=m,string") == (
        "ERROR:4:'context' invalid base64")
    assert info("sindex-create:set=s;indexname=x;indexdata=m,string") == "ERROR:20:missing 'namespace'"
    with pytest.raises(ex.NamespaceNotFound):  # the create is ok; waiting for it fails, as on the server
        aero.index_integer_create("nosuchns", SET, "age", "c")
    # ... and the name is taken there, as in the server's SMD
    assert info(f"sindex-create:ns=nosuchns;set={SET};indexname=c;indexdata=age,string") == (
        "ERROR:200:'indexname' already exists with different definition")
    assert info("sindex-delete:ns=nosuchns;indexname=c") == "ok"
    assert info(f"sindex-create:ns=nosuchns;set={SET};indexname=c;indexdata=age,string") == "ok"
    assert info("sindex-exists:ns=nosuchns;indexname=b") == "ERROR:20:namespace not found on node"
    assert info(f"sindex-list:ns={NS};b64=maybe") == "ERROR:4:bad b64"
    assert info(f"sindex-delete:ns={NS};indexname=b") == "ok"
    assert info(f"sindex-delete:ns={NS};indexname=b") == "ok"  # deleting what is gone is ok
    assert info("sindex") == "" and info(f"sindex-exists:ns={NS};indexname=b") == "false"
    aero.index_remove(NS, "b")  # the client's remove of a missing index succeeds


def test_query_pages_resume_where_they_stopped(aero):
    load(aero, 300)
    aero.index_integer_create(NS, SET, "age", "age_idx")
    q = aero.query(NS, SET)
    q.where(p.between("age", 0, 199))
    q.paginate()
    q.max_records = 37
    seen = []
    for _ in range(20):
        if q.is_done():
            break
        page = q.results()
        assert len(page) <= 37
        seen += ages(page)
    assert sorted(seen) == list(range(200))  # every match once, none twice


def test_indexes_survive_a_restart_and_reach_a_node_that_joins_later(tmp_path, start_node):
    node = start_node(SMALL_DEVICE)
    client = aerospike.client({"hosts": [node.address]}).connect()
    load(client, 10)
    client.index_integer_create(NS, SET, "age", "age_idx")
    client.index_integer_create(NS, SET, "tags", "gone_idx")
    client.index_remove(NS, "gone_idx")
    client.close()
    node.restart()
    client = aerospike.client({"hosts": [node.address]}).connect()
    try:
        assert list(listing(node)) == ["age_idx"]
        assert ages(query(client, p.between("age", 2, 4))) == [2, 3, 4]
    finally:
        client.close()

    with LocalCluster(nodes=1, rf=2, run_dir=tmp_path / "c", settings=FAST) as cluster:
        client = aerospike.client({"hosts": [cluster["n1"].address]}).connect()
        try:
            load(client, 30)
            client.index_string_create(NS, SET, "name", "name_idx")
            client.index_integer_create(NS, SET, "age", "old_idx")
            client.index_remove(NS, "old_idx")
            joined = cluster.add()
            cluster.wait_converged()
            wait_until(lambda: list(listing(joined)) == ["name_idx"], 15, "the new node to take the index")
            wait_until(lambda: len(client.get_nodes()) == 2, 15, "the client to see both nodes")
            wait_until(lambda: all(cluster[n].info("cluster-stable:size=2") != "ERROR::unstable-cluster"
                                   for n in ("n1", "n2")), 60, "migrations to finish", poll=0.5)
            assert ages(query(client, p.equals("name", "n2"))) == list(range(2, 30, 4))
        finally:
            client.close()
