"""A Jepsen-style safety workload: did the cluster keep what it acknowledged?

    with SafetyWorkload(cluster.seeds(), keys=200, rate=100) as safety:
        ...  # inject faults; the workload writes and reads in the background
    wait_settled(cluster.seeds())
    verdict = safety.check()   # the dict written as safety.json

**The history.** ``writers`` threads write, ``readers`` threads read, together at about
``rate`` operations/s, over ``keys`` integer keys in set ``safety``. Writer *i* owns the
keys ``k % writers == i``, so the writes to one key are sequential (one thread, in issue
order) and "older" has a plain meaning: issued earlier. Every write puts a new value,
unique over the run, into bin ``v``. Each operation is recorded with its key, value (written
or read; a read of a missing record reads None), start and end (unix seconds: the clock of
faults.csv) and outcome:

* ``ok`` — the server answered success (a read: success or not-found);
* ``failed`` — definitely not applied: the request was never sent (no node for the
  partition, no connection, connect refused or timed out), or the server answered a code
  it only gives before touching the record: 11 (partition unavailable: not routed) or 4
  (bad request);
* ``indeterminate`` — in doubt: sent, then no answer (socket timeout, connection lost
  mid-request), or any other failure code. The master may have applied the write before
  the code was decided: 9 (a replica did not ack in time, or a proxy timed out), a
  replica's own failure relayed instead of OK (e.g. 8 from a full replica), 1 (a proxied
  execution failed part-way). A stop-writes refusal (8 from the master) is therefore
  counted in doubt too: the code alone cannot tell the two apart.

Writes go out in one attempt with our own client's pieces (``cluster.client``), not the
official client, because knowing whether the bytes left is what separates ``failed``
from ``indeterminate``: the official client reports a connect failure and a lost reply
alike. Reads use the client's normal retry loop (replica ``sequence``).

**The checks**, per key, after the workload stopped and the cluster settled (the caller
waits: ``wait_settled``), by reading every written key once more from its master:

* **lost** — the key has an acknowledged write and its final value is neither the last
  acknowledged write nor a later write (failed or in doubt); a missing record counts as
  the oldest value. Earlier acknowledged writes were legitimately overwritten.
* **failed but visible** — the value of a ``failed`` write was read (by any read, or
  finally). A definite failure must have had no effect.
* **stale read** — an ``ok`` read returned a value older than the last write acknowledged
  before the read started (or nothing although one was). Aerospike's AP mode permits
  these (reads from a replica, a node that missed writes); they are reported, and they
  do not make the run invalid.
* **unreadable** — the final read of a key failed; it cannot be judged.

``valid`` is ``lost == failed_visible == 0``. Times are wall-clock and taken in this
process, so ordering between writes and reads is as good as its clock.
"""

import itertools
import random
import threading
import time
from dataclasses import asdict, dataclass

from cluster.client import operations
from cluster.client.batch import read_message
from cluster.client.cluster import Cluster
from cluster.client.command import bins_of, execute, frame_request, key_fields, parse_reply
from cluster.client.keys import Key
from cluster.client.policies import Policy
from cluster.deploy.local import info_request
from cluster.deploy.local_cluster import parse_info_kv
from cluster.wire.message import Info2, Message
from cluster.wire.result_codes import AerospikeError

OK, FAILED, INDETERMINATE = "ok", "failed", "indeterminate"
REFUSED_CODES = frozenset({4, 11})  # answered before the record is touched: nothing applied
BIN = "v"
EXCERPT = 6  # writes shown before the one that matters


@dataclass(frozen=True)
class Op:
    kind: str  # "write" or "read"
    key: int
    value: int | None
    start: float
    end: float
    outcome: str
    code: int | None = None  # the result code of a failure


class SafetyWorkload:
    def __init__(self, hosts: list[tuple[str, int]], namespace: str = "test", set_name: str = "safety",
                 keys: int = 200, writers: int = 4, readers: int = 2, rate: float = 100.0,
                 timeout_ms: int = 1000, max_duration: float = 600.0, seed: int | None = None):
        if not 1 <= writers <= keys:
            raise ValueError("need 1 <= writers <= keys")
        self.hosts = [tuple(h) for h in hosts]
        self.namespace, self.set_name, self.keys = namespace, set_name, keys
        self.writers, self.readers = writers, readers
        self.interval = (writers + readers) / rate  # seconds between two operations of one thread
        self.max_duration = max_duration
        self.write_policy = Policy(total_timeout=timeout_ms, max_retries=0)
        self.read_policy = Policy(total_timeout=timeout_ms, max_retries=2)
        self.final_policy = Policy(total_timeout=5000, max_retries=10, sleep_between_retries=100, replica="master")
        self.history: list[Op] = []
        self._values = itertools.count(1)
        self._random = random.Random(seed)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._cluster: Cluster | None = None

    # -- running --------------------------------------------------------------------------

    def start(self) -> "SafetyWorkload":
        self._cluster = Cluster(self.hosts, max_conns_per_node=self.writers + self.readers + 2)
        self._cluster.connect()
        deadline = time.monotonic() + self.max_duration
        loops = [(self._write_loop, i) for i in range(self.writers)] + [(self._read_loop, i) for i in range(self.readers)]
        for loop, i in loops:
            thread = threading.Thread(target=self._paced, args=(loop, i, deadline, random.Random(self._random.random())),
                                      name=f"safety-{loop.__name__}-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop issuing operations and wait for those in flight (each ends by its timeout)."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._threads = []

    def __enter__(self) -> "SafetyWorkload":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def close(self) -> None:
        self.stop()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def _paced(self, loop, index: int, deadline: float, rng: random.Random) -> None:
        due = time.monotonic()
        while not self._stop.is_set() and time.monotonic() < deadline:
            loop(index, rng)
            due = max(due + self.interval, time.monotonic() - self.interval)  # no catch-up bursts
            self._stop.wait(max(0.0, due - time.monotonic()))

    def _write_loop(self, writer: int, rng: random.Random) -> None:
        key = rng.randrange(writer, self.keys, self.writers)
        value = next(self._values)
        start = time.time()
        outcome, code = self._write_once(key, value)
        self.history.append(Op("write", key, value, start, time.time(), outcome, code))

    def _read_loop(self, _reader: int, rng: random.Random) -> None:
        key = rng.randrange(self.keys)
        start = time.time()
        try:
            value, outcome, code = self._read(key, self.read_policy), OK, None
        except AerospikeError as exc:
            value, outcome, code = None, FAILED, exc.code
        self.history.append(Op("read", key, value, start, time.time(), outcome, code))

    def _key(self, key: int) -> Key:
        return Key.of((self.namespace, self.set_name, key))

    def _write_once(self, key: int, value: int) -> tuple[str, int | None]:
        """One attempt, classified by whether the request left this process."""
        k, policy = self._key(key), self.write_policy
        msg = Message(info2=Info2.WRITE, fields=key_fields(k, policy),
                      ops=[operations.to_wire(operations.write(BIN, value))])
        request = frame_request(msg, policy)
        may_have_left = False
        try:
            node = self._cluster.node_for(k.namespace, k.partition_id)
            with node.connection() as conn:  # no route, pool full, connect refused/timed out: never sent
                may_have_left = True  # even a partial send: the node may have read it all
                conn.set_timeout(policy.total_timeout / 1000)
                conn.send(request)
                _type, body = conn.read_frame()
            code = parse_reply(body)[0].result_code
        except AerospikeError as exc:
            return (INDETERMINATE if may_have_left else FAILED), exc.code
        if code == 0:
            return OK, None
        return (FAILED if code in REFUSED_CODES else INDETERMINATE), code

    def _read(self, key: int, policy: Policy) -> int | None:
        """The key's value, None if the record does not exist; raises on any other result."""
        k = self._key(key)
        reply, _node = execute(self._cluster, k, read_message(k, None, policy), policy, write=False)
        if reply.result_code == 2:
            return None
        if reply.result_code:
            raise AerospikeError(reply.result_code, "read")
        return bins_of(reply).get(BIN)

    # -- checking -------------------------------------------------------------------------

    def check(self) -> dict:
        """Stop, read back every written key, and classify (call once the cluster settled)."""
        self.stop()
        final: dict[int, int | None] = {}
        for key in sorted({op.key for op in self.history if op.kind == "write"}):
            try:
                final[key] = self._read(key, self.final_policy)
            except AerospikeError:
                pass  # unreadable: classify() reports it
        verdict = classify(self.history, final)
        verdict["policy"] = self.policy()
        return verdict

    def policy(self) -> dict:
        """What the verdict depends on: the client's policies and the namespace's config."""
        namespace = {}
        for host in self.hosts:
            try:
                command = f"get-config:context=namespace;id={self.namespace}"
                config = parse_info_kv(info_request(*host, [command])[command])
            except OSError:
                continue
            namespace = {name: config.get(name) for name in
                         ("replication-factor", "conflict-resolution-policy", "storage-engine.commit-to-device",
                          "storage-engine.type")}
            break
        return {
            "namespace": self.namespace, "set": self.set_name, "keys": self.keys,
            "writers": self.writers, "readers": self.readers,
            "write": {"total_timeout_ms": self.write_policy.total_timeout, "attempts": 1},
            "read": {"total_timeout_ms": self.read_policy.total_timeout, "max_retries": self.read_policy.max_retries,
                     "replica": self.read_policy.replica},
            "namespace_config": namespace,
        }


def classify(history: list[Op], final: dict[int, int | None]) -> dict:
    """The verdict (see the module docstring) from a history and the final value per written key
    (a key absent from ``final`` could not be read)."""
    writes: dict[int, list[Op]] = {}
    for op in sorted((op for op in history if op.kind == "write"), key=lambda op: op.start):
        writes.setdefault(op.key, []).append(op)
    reads = [op for op in history if op.kind == "read" and op.outcome == OK]
    position = {op.value: i for ops in writes.values() for i, op in enumerate(ops)}

    lost, unreadable = [], []
    for key, ops in sorted(writes.items()):
        acked = [i for i, op in enumerate(ops) if op.outcome == OK]
        if key not in final:
            unreadable.append(key)
        elif acked and _age(final[key], position) < acked[-1]:
            lost.append({"key": key, "final_value": final[key], "last_acked": asdict(ops[acked[-1]]),
                         "history": _excerpt(ops, acked[-1])})

    failed = {op.value: op for ops in writes.values() for op in ops if op.outcome == FAILED}
    sightings = [(op.value, asdict(op)) for op in reads] + [(value, "final read") for value in final.values()]
    failed_visible: dict[int, dict] = {}
    for value, seen_by in sightings:
        if value in failed and value not in failed_visible:
            failed_visible[value] = {"key": failed[value].key, "write": asdict(failed[value]), "seen_by": seen_by}

    stale = []
    for read in reads:
        ops = writes.get(read.key, [])
        done = [i for i, op in enumerate(ops) if op.outcome == OK and op.end < read.start]
        if done and _age(read.value, position) < done[-1]:
            stale.append({"key": read.key, "read": asdict(read), "expected_at_least": asdict(ops[done[-1]]),
                          "history": _excerpt(ops, done[-1])})

    outcomes = {kind: {outcome: sum(op.kind == kind and op.outcome == outcome for op in history)
                       for outcome in (OK, FAILED, INDETERMINATE)} for kind in ("write", "read")}
    counts = {
        "writes": outcomes["write"], "reads": outcomes["read"], "keys_written": len(writes),
        "lost": len(lost), "failed_visible": len(failed_visible), "stale_reads": len(stale),
        "unreadable": len(unreadable),
    }
    return {"valid": not lost and not failed_visible, "counts": counts, "lost": lost,
            "failed_visible": list(failed_visible.values()), "stale_reads": stale, "unreadable_keys": unreadable}


def _age(value: int | None, position: dict[int, int]) -> int:
    """Where a value stands in its key's write order; a missing record is older than any write."""
    return -1 if value is None else position.get(value, -1)


def _excerpt(ops: list[Op], index: int) -> list[dict]:
    return [asdict(op) for op in ops[max(0, index - EXCERPT):index + EXCERPT + 1]]


def wait_settled(hosts: list[tuple[str, int]], timeout: float = 30.0, poll: float = 0.2) -> str:
    """Wait until every host that answers is in one cluster of all of them with nothing left to
    migrate (``cluster-stable``), and return its key. Hosts that do not answer are skipped."""
    deadline = time.monotonic() + timeout
    while True:
        replies = []
        for host in hosts:
            try:
                replies.append(info_request(*host, ["cluster-stable", "statistics"], timeout=1.0))
            except OSError:
                continue
        keys = {reply["cluster-stable"] for reply in replies}
        sizes = {parse_info_kv(reply["statistics"]).get("cluster_size") for reply in replies}
        if len(keys) == 1 and sizes == {str(len(replies))} and not (key := keys.pop()).startswith("ERROR"):
            return key
        if time.monotonic() >= deadline:
            raise TimeoutError(f"cluster did not settle within {timeout}s")
        time.sleep(poll)
