"""CoreWorkload against an in-memory DB: op mixes, keys, values, load slicing, worker-disjoint inserts."""

import math
import random
import threading
from collections import Counter
from pathlib import Path

import pytest

from workloads.core_workload import (
    DB,
    INSERT,
    OK,
    READ_MODIFY_WRITE,
    SCAN,
    CoreWorkload,
    deterministic_value,
    load_slice,
)
from workloads.generators import fnvhash64
from workloads.properties import WorkloadProperties, load_properties

WORKLOADS = Path(__file__).resolve().parents[2] / "workloads"
NOT_FOUND = 2


class MemoryDB(DB):
    """A dict-backed DB that logs every call; reads of missing keys return NOT_FOUND."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, bytes]] = {}
        self.calls: list[tuple] = []
        self._lock = threading.Lock()

    def read(self, table, key, fields):
        self.calls.append(("read", key, fields))
        return OK if key in self.records else NOT_FOUND

    def update(self, table, key, values):
        self.calls.append(("update", key, values))
        if key not in self.records:
            return NOT_FOUND
        self.records[key].update(values)
        return OK

    def insert(self, table, key, values):
        self.calls.append(("insert", key, values))
        with self._lock:
            if key in self.records:
                return 5  # Aerospike's "record already exists"
            self.records[key] = dict(values)
        return OK

    def scan(self, table, startkey, count, fields, keys):
        self.calls.append(("scan", startkey, count, keys))
        return OK if all(key in self.records for key in keys) else NOT_FOUND

    def delete(self, table, key):
        return OK if self.records.pop(key, None) is not None else NOT_FOUND


def loaded(props: WorkloadProperties, seed: int = 1, db: MemoryDB | None = None, **worker) -> tuple:
    workload = CoreWorkload(props, random.Random(seed), **worker)
    db = db or MemoryDB()
    while workload.do_insert(db) is not None:
        pass
    return workload, db


def props(**overrides) -> WorkloadProperties:
    raw = {"recordcount": "1000", "operationcount": "1000"} | {k: str(v) for k, v in overrides.items()}
    return WorkloadProperties.from_mapping(raw)


# -- operation mix -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list("abcdef"))
def test_operation_mix_matches_the_workload_file(name):
    p = load_properties(WORKLOADS / f"workload{name}")
    workload, db = loaded(p)
    draws = 10_000
    results = [workload.do_transaction(db) for _ in range(draws)]
    counts = Counter(t.op for t in results)
    expected = {op: share for op, share in p.proportions().items() if share}
    assert set(counts) == set(expected)
    for op, share in expected.items():
        # 4.5 binomial standard errors: see test_ycsb_generators.
        assert abs(counts[op] / draws - share) <= 4.5 * math.sqrt(share * (1 - share) / draws) + 1e-12, op
    # Every chosen key exists: keys beyond the last acknowledged insert are never drawn.
    assert all(t.ok for t in results)


@pytest.mark.parametrize(
    "distribution", ["uniform", "zipfian", "latest", "hotspot", "exponential", "sequential"]
)
def test_every_request_distribution_only_reads_inserted_keys(distribution):
    workload, db = loaded(
        props(requestdistribution=distribution, readproportion=0.5, updateproportion=0, insertproportion=0.5)
    )
    assert all(workload.do_transaction(db).ok for _ in range(3000))


# -- keys and values -------------------------------------------------------------------------------


def test_key_names_are_hashed_or_ordered_with_zero_padding():
    hashed = CoreWorkload(props(), random.Random(0))
    assert hashed.key_name(0) == f"user{fnvhash64(0)}" == "user6284781860667377211"
    ordered = CoreWorkload(props(insertorder="ordered", zeropadding=6, keyprefix="k"), random.Random(0))
    assert ordered.key_name(42) == "k000042"
    assert ordered.key_name(1234567) == "k1234567"  # padding never truncates


def test_values_have_the_configured_fields_and_lengths():
    workload = CoreWorkload(props(fieldcount=3, fieldlength=20), random.Random(0))
    values = workload.build_values("user1")
    assert list(values) == ["field0", "field1", "field2"]
    assert all(len(v) == 20 and v.decode().isprintable() for v in values.values())


def test_dataintegrity_values_are_derived_from_key_and_field():
    workload = CoreWorkload(props(dataintegrity="true", fieldlength=40), random.Random(0))
    value = workload.build_values("user7")["field3"]
    assert value == deterministic_value("user7", "field3", 40)
    assert value.startswith(b"user7:field3:") and len(value) == 40
    # Java's String.hashCode("user7:field3") continues the value.
    java_hash = 0
    for char in "user7:field3":
        java_hash = (31 * java_hash + ord(char)) % 2**32
    java_hash -= 2**32 if java_hash >= 2**31 else 0
    assert value.decode().startswith(f"user7:field3:{java_hash}"[:40])


def test_updates_write_one_field_unless_writeallfields():
    one, db = loaded(props(readproportion=0, updateproportion=1))
    one.do_transaction(db)
    assert len(db.calls[-1][2]) == 1
    every, db = loaded(props(readproportion=0, updateproportion=1, writeallfields="true"))
    every.do_transaction(db)
    assert len(db.calls[-1][2]) == 10


def test_reads_ask_for_all_fields_or_one_random_field():
    everything, db = loaded(props(readproportion=1, updateproportion=0))
    everything.do_transaction(db)
    assert db.calls[-1][2] is None
    one, db = loaded(props(readproportion=1, updateproportion=0, readallfields="false"))
    one.do_transaction(db)
    assert len(db.calls[-1][2]) == 1 and db.calls[-1][2][0].startswith("field")


def test_read_modify_write_reads_then_updates_the_same_key():
    workload, db = loaded(props(readproportion=0, updateproportion=0, readmodifywriteproportion=1))
    transaction = workload.do_transaction(db)
    assert transaction.op == READ_MODIFY_WRITE and transaction.ok
    (read, read_key, _), (update, update_key, _) = db.calls[-2:]
    assert (read, update) == ("read", "update") and read_key == update_key == transaction.key


def test_scan_batches_consecutive_key_numbers_clipped_to_the_latest_insert():
    workload, db = loaded(
        props(
            readproportion=0,
            updateproportion=0,
            scanproportion=1,
            requestdistribution="uniform",
            maxscanlength=50,
        )
    )
    lengths = []
    for _ in range(500):
        transaction = workload.do_transaction(db)
        _, startkey, count, keys = db.calls[-1]
        start = next(n for n in range(1000) if workload.key_name(n) == startkey)
        assert transaction.op == SCAN and transaction.ok and keys[0] == startkey == transaction.key
        assert keys == [workload.key_name(n) for n in range(start, min(start + count, 1000))]
        lengths.append(count)
    assert 1 <= min(lengths) and max(lengths) <= 50


def test_same_seed_replays_the_same_key_stream():
    first, db1 = loaded(load_properties(WORKLOADS / "workloada"), seed=9)
    second, db2 = loaded(load_properties(WORKLOADS / "workloada"), seed=9)
    assert [first.do_transaction(db1).key for _ in range(50)] == [
        second.do_transaction(db2).key for _ in range(50)
    ]


# -- inserts ------------------------------------------------------------------------------------


def test_load_insert_retries_with_jittered_sleeps():
    class Flaky(MemoryDB):
        failures = 2

        def insert(self, table, key, values):
            if self.failures:
                self.failures -= 1
                return 9  # timeout
            return super().insert(table, key, values)

    sleeps = []
    p = props(core_workload_insertion_retry_limit=3, core_workload_insertion_retry_interval=2)
    workload = CoreWorkload(p, random.Random(0), sleep=sleeps.append)
    transaction = workload.do_insert(Flaky())
    assert transaction.op == INSERT and transaction.ok
    assert len(sleeps) == 2 and all(1.6 <= s <= 2.4 for s in sleeps)


def test_run_insert_is_acknowledged_even_when_the_db_raises():
    class Broken(MemoryDB):
        def insert(self, table, key, values):
            raise ConnectionError("node down")

    workload, _ = loaded(props(readproportion=0, updateproportion=0, insertproportion=1))
    with pytest.raises(ConnectionError):
        workload.do_transaction(Broken())
    assert workload.insert_keys.last_value() == 1000  # 1000 was handed out and acknowledged


@pytest.mark.parametrize("count, workers", [(1000, 1), (1000, 3), (7, 4), (10, 10), (2, 5)])
def test_load_slices_are_disjoint_and_cover_the_range(count, workers):
    slices = [load_slice(100, count, i, workers) for i in range(workers)]
    assert [n for s in slices for n in s] == list(range(100, 100 + count))
    assert max(len(s) for s in slices) - min(len(s) for s in slices) <= 1


def test_workers_load_disjoint_slices_concurrently():
    p = props(recordcount=900)
    db = MemoryDB()
    workloads = [CoreWorkload(p, random.Random(i), worker=i, workers=3) for i in range(3)]

    def load(workload):  # several users per worker share one workload
        while (transaction := workload.do_insert(db)) is not None:
            assert transaction.ok

    threads = [threading.Thread(target=load, args=(w,)) for w in workloads for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(db.records) == {workloads[0].key_name(n) for n in range(900)}


def test_run_phase_inserts_are_unique_across_workers():
    workers = 3
    p = load_properties(WORKLOADS / "workloadd")
    db = MemoryDB()
    workloads = [loaded(p, seed=i, db=db, worker=i, workers=workers)[0] for i in range(workers)]
    inserted = []
    for _ in range(3000):
        for workload in workloads:
            transaction = workload.do_transaction(db)
            assert transaction.ok  # no duplicate insert, no read of a key another worker owns
            if transaction.op == INSERT:
                inserted.append(transaction.key)
    assert len(inserted) == len(set(inserted)) > 300
    # Physical key numbers interleave: worker i owns recordcount + k·workers + i.
    own = {workloads[1].key_name(workloads[1].physical_keynum(1000 + k)) for k in range(200)}
    assert own == {workloads[1].key_name(1000 + 3 * k + 1) for k in range(200)}


def test_latest_follows_this_workers_own_inserts():
    workload, db = loaded(
        props(requestdistribution="latest", readproportion=0.5, updateproportion=0, insertproportion=0.5),
        worker=1,
        workers=2,
    )
    for _ in range(400):
        workload.do_transaction(db)
    latest = workload.insert_keys.last_value()
    assert latest > 1100
    drawn = Counter(workload.next_keynum() for _ in range(2000))
    assert drawn.most_common(1)[0][0] == latest
    assert workload.physical_keynum(latest) == 1000 + (latest - 1000) * 2 + 1


def test_worker_index_is_checked():
    with pytest.raises(ValueError, match="worker index"):
        CoreWorkload(props(), random.Random(0), worker=3, workers=3)
