"""A Jepsen-style safety workload: did the cluster keep what it acknowledged?

    with SafetyWorkload(cluster.seeds(), keys=200, rate=100) as safety:
        ...  # inject faults; the workload writes and reads in the background
    wait_settled(cluster.seeds())
    verdict = safety.check()   # the dict written as safety.json
    safety.close()             # its clients: the `with` only ends the history, check reads on

**The history.** ``writers`` threads write, ``readers`` threads read, together at about
``rate`` operations/s, over ``keys`` integer keys in set ``safety``, in one of two modes:

* ``smart`` (the default), a register per key: one smart client routes each request to
  the partition's master as it sees the cluster; a write puts its value into bin ``v``.
  Writer *i* owns the keys ``k % writers == i``, so the writes to one key are sequential
  (one thread, in issue order) and "older" has a plain meaning: issued earlier.
* ``pinned`` (Jepsen's client per node), a set per key (Jepsen's ``set`` workload): writer
  and reader *i* send every request to node ``hosts[i % len(hosts)]`` alone, in one
  attempt; that node executes it or proxies it to the master as *it* sees the cluster, as
  the server does for a request sent to the "wrong" node. Every writer writes every key,
  so in a split each side takes writes to the same keys, concurrently. A write appends
  " <value>" to the string in bin ``v``, so every write's effect stays visible: with
  concurrent writers, a register's final value could not tell a discarded write from one
  legitimately overwritten by a concurrent write (under last-update-time the merge keeps
  the latest write, which every other write then precedes). A read reads the tuple of the
  values appended. Defaults: one writer and one reader per host.

Every write's value is unique over the run. Each operation is recorded with its key,
value (written or read; a read of a missing record reads None, pinned: ()), start and end
(unix seconds: the clock of faults.csv), outcome, and the host it went to when pinned:

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

* **lost** — the key's final value lacks an acknowledged write; those writes are the
  key's **discarded** writes. Smart: the final value is neither the last acknowledged write
  nor a later write (failed or in doubt), and the discarded writes are the acknowledged
  writes issued after it; a missing record counts as the oldest value; earlier
  acknowledged writes were legitimately overwritten. Pinned: the final set lacks the
  value of an acknowledged write (Jepsen's set checker: "lost"), whenever it was issued.
* **failed but visible** — the value of a ``failed`` write was read (by any read, or
  finally; pinned: in any set read). A definite failure must have had no effect. A write
  in doubt may or may not show up (Jepsen's "recovered").
* **stale read** — an ``ok`` read lacks a write acknowledged before the read started:
  smart, it returned an older value (or nothing); pinned, a set without that write's
  value. Aerospike's AP mode permits
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
from cluster.client.node import Node
from cluster.client.policies import Policy
from cluster.deploy.local import info_request
from cluster.deploy.local_cluster import parse_info_kv
from cluster.wire.message import Info2, Message
from cluster.wire.result_codes import AerospikeError

OK, FAILED, INDETERMINATE = "ok", "failed", "indeterminate"
REFUSED_CODES = frozenset({4, 11})  # answered before the record is touched: nothing applied
BIN = "v"
EXCERPT = 6  # writes shown before the one that matters
SMART, PINNED = "smart", "pinned"
MODES = (SMART, PINNED)


@dataclass(frozen=True)
class Op:
    kind: str  # "write" or "read"
    key: int
    value: int | tuple | None  # pinned reads: the tuple of values appended
    start: float
    end: float
    outcome: str
    code: int | None = None  # the result code of a failure
    node: str | None = None  # pinned: the "host:port" the request went to


class SafetyWorkload:
    def __init__(self, hosts: list[tuple[str, int]], namespace: str = "test", set_name: str = "safety",
                 keys: int = 200, writers: int | None = None, readers: int | None = None, rate: float = 100.0,
                 timeout_ms: int = 1000, max_duration: float = 600.0, seed: int | None = None,
                 mode: str = SMART):
        if mode not in MODES:
            raise ValueError(f"mode: one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self.hosts = [tuple(h) for h in hosts]
        writers = writers or (len(self.hosts) if mode == PINNED else 4)
        readers = readers if readers is not None else (len(self.hosts) if mode == PINNED else 2)
        if not 1 <= writers <= keys:
            raise ValueError("need 1 <= writers <= keys")
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
        self._stop_writing = threading.Event()  # set alone: the readers go on (stop_writes)
        self._threads: list[threading.Thread] = []
        self._cluster: Cluster | None = None  # smart routing, and the final reads in both modes
        self._pinned: list[Node] = []  # pinned: one socket pool per host, shared by its threads

    # -- running --------------------------------------------------------------------------

    def start(self) -> "SafetyWorkload":
        self._cluster = Cluster(self.hosts, max_conns_per_node=self.writers + self.readers + 2)
        self._cluster.connect()
        if self.mode == PINNED:
            per_host = -(-(self.writers + self.readers) // len(self.hosts))
            self._pinned = [Node(f"{h}:{p}", h, p, None, max_conns=per_host + 1) for h, p in self.hosts]
        deadline = time.monotonic() + self.max_duration
        loops = ([(self._write_loop, i, self._stop_writing) for i in range(self.writers)]
                 + [(self._read_loop, i, self._stop) for i in range(self.readers)])
        for loop, i, stop in loops:
            thread = threading.Thread(target=self._paced, args=(loop, i, stop, deadline, random.Random(self._random.random())),
                                      name=f"safety-{loop.__name__}-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop_writes(self) -> int:
        """Stop writing, wait for the writes in flight; the readers go on. Jepsen's register
        tests stop writing before the nemesis heals, so that the final reads see what the heal
        kept rather than later writes that overwrite it. The acknowledged writes so far."""
        self._stop_writing.set()
        for thread in self._threads[:self.writers]:
            thread.join()
        return sum(op.kind == "write" and op.outcome == OK for op in self.history)

    def stop(self) -> None:
        """Stop issuing operations and wait for those in flight (each ends by its timeout)."""
        self._stop_writing.set()
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
        for node in self._pinned:
            node.close()
        self._pinned = []

    def _paced(self, loop, index: int, stop: threading.Event, deadline: float, rng: random.Random) -> None:
        due = time.monotonic()
        while not stop.is_set() and time.monotonic() < deadline:
            loop(index, rng)
            due = max(due + self.interval, time.monotonic() - self.interval)  # no catch-up bursts
            stop.wait(max(0.0, due - time.monotonic()))

    def _write_loop(self, writer: int, rng: random.Random) -> None:
        key = rng.randrange(self.keys) if self.mode == PINNED else rng.randrange(writer, self.keys, self.writers)
        value = next(self._values)
        start = time.time()
        outcome, code = self._write_once(writer, key, value)
        self.history.append(Op("write", key, value, start, time.time(), outcome, code, self._pinned_name(writer)))

    def _read_loop(self, reader: int, rng: random.Random) -> None:
        key = rng.randrange(self.keys)
        start = time.time()
        try:
            value, outcome, code = self._read_now(reader, key), OK, None
        except AerospikeError as exc:
            value, outcome, code = None, FAILED, exc.code
        self.history.append(Op("read", key, value, start, time.time(), outcome, code, self._pinned_name(reader)))

    def _key(self, key: int) -> Key:
        return Key.of((self.namespace, self.set_name, key))

    def _pinned_name(self, thread: int) -> str | None:
        return self._pinned[thread % len(self._pinned)].name if self._pinned else None

    def _route(self, thread: int, k: Key):
        """The connection a request of this thread goes out on: smart, to the partition's master
        as the client sees it; pinned, to the thread's own node, whatever the partition."""
        if self._pinned:
            return self._pinned[thread % len(self._pinned)].connection()
        return self._cluster.node_for(k.namespace, k.partition_id).connection()

    def _exchange(self, thread: int, k: Key, msg: Message, policy: Policy) -> tuple[Message | None, AerospikeError | None, bool]:
        """One attempt: (reply, None, True), or (None, error, whether the request may have left)."""
        may_have_left = False
        try:
            with self._route(thread, k) as conn:  # no route, pool full, connect refused/timed out: never sent
                may_have_left = True  # even a partial send: the node may have read it all
                conn.set_timeout(policy.total_timeout / 1000)
                conn.send(frame_request(msg, policy))
                _type, body = conn.read_frame()
            return parse_reply(body)[0], None, True
        except AerospikeError as exc:
            return None, exc, may_have_left

    def _write_once(self, writer: int, key: int, value: int) -> tuple[str, int | None]:
        """One attempt, classified by whether the request left this process."""
        k, policy = self._key(key), self.write_policy
        op = operations.append(BIN, f" {value}") if self._pinned else operations.write(BIN, value)
        msg = Message(info2=Info2.WRITE, fields=key_fields(k, policy), ops=[operations.to_wire(op)])
        reply, error, may_have_left = self._exchange(writer, k, msg, policy)
        if error is not None:
            return (INDETERMINATE if may_have_left else FAILED), error.code
        if reply.result_code == 0:
            return OK, None
        return (FAILED if reply.result_code in REFUSED_CODES else INDETERMINATE), reply.result_code

    def _read_now(self, reader: int, key: int):
        """A workload read: pinned, one attempt on the reader's node; smart, the client's retries."""
        if not self._pinned:
            return self._read(key, self.read_policy)
        k = self._key(key)
        reply, error, _sent = self._exchange(reader, k, read_message(k, None, self.read_policy), self.read_policy)
        if error is not None:
            raise error
        return self._decode(_value(reply))

    def _read(self, key: int, policy: Policy):
        """The key's value through the smart client, None if the record does not exist; raises
        on any other result."""
        k = self._key(key)
        reply, _node = execute(self._cluster, k, read_message(k, None, policy), policy, write=False)
        return self._decode(_value(reply))

    def _decode(self, raw):
        """Pinned: the appended values, in append order (a missing record: none)."""
        return tuple(int(v) for v in (raw or "").split()) if self.mode == PINNED else raw

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
        verdict = classify(self.history, final, sets=self.mode == PINNED)
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
            "namespace": self.namespace, "set": self.set_name, "keys": self.keys, "mode": self.mode,
            "writers": self.writers, "readers": self.readers,
            "write": {"total_timeout_ms": self.write_policy.total_timeout, "attempts": 1},
            "read": {"total_timeout_ms": self.read_policy.total_timeout,
                     "max_retries": 0 if self._pinned else self.read_policy.max_retries,
                     "replica": "pinned" if self._pinned else self.read_policy.replica},
            "namespace_config": namespace,
        }


def _value(reply: Message) -> int | None:
    """A read reply's value, None if the record does not exist; raises on any other result."""
    if reply.result_code == 2:
        return None
    if reply.result_code:
        raise AerospikeError(reply.result_code, "read")
    return bins_of(reply).get(BIN)


def classify(history: list[Op], final: dict, sets: bool = False) -> dict:
    """The verdict (see the module docstring) from a history and the final value per written key
    (a key absent from ``final`` could not be read). ``sets``: pinned mode, each value is the
    tuple of the values appended to the key; else one value, ordered by issue."""
    writes: dict[int, list[Op]] = {}
    for op in sorted((op for op in history if op.kind == "write"), key=lambda op: op.start):
        writes.setdefault(op.key, []).append(op)
    reads = [op for op in history if op.kind == "read" and op.outcome == OK]
    issued = {op.value: op.start for ops in writes.values() for op in ops}

    def elements(value) -> tuple:
        """The write values a read saw."""
        return tuple(value or ()) if sets else (value,)

    def has(value, write: Op) -> bool:
        """Does a read of ``value`` include ``write``'s effect? A set: if it holds the write's
        value. One value: if it was written no earlier than ``write`` (a missing record, or a
        value no write put, is older than every write)."""
        if sets:
            return write.value in elements(value)
        return value in issued and issued[value] >= write.start

    lost, unreadable = [], []
    for key, ops in sorted(writes.items()):
        if key not in final:
            unreadable.append(key)
            continue
        discarded = [i for i, op in enumerate(ops) if op.outcome == OK and not has(final[key], op)]
        if discarded:
            lost.append({"key": key, "final_value": final[key], "last_acked": asdict(ops[discarded[-1]]),
                         "discarded": len(discarded), "history": _excerpt(ops, discarded[-1])})

    failed = {op.value: op for ops in writes.values() for op in ops if op.outcome == FAILED}
    sightings = ([(value, asdict(op)) for op in reads for value in elements(op.value)]
                 + [(value, "final read") for seen in final.values() for value in elements(seen)])
    failed_visible: dict[int, dict] = {}
    for value, seen_by in sightings:
        if value in failed and value not in failed_visible:
            failed_visible[value] = {"key": failed[value].key, "write": asdict(failed[value]), "seen_by": seen_by}

    stale = []
    for read in reads:
        ops = writes.get(read.key, [])
        missed = [i for i, op in enumerate(ops) if op.outcome == OK and op.end < read.start and not has(read.value, op)]
        if missed:
            stale.append({"key": read.key, "read": asdict(read), "expected_at_least": asdict(ops[missed[-1]]),
                          "history": _excerpt(ops, missed[-1])})

    outcomes = {kind: {outcome: sum(op.kind == kind and op.outcome == outcome for op in history)
                       for outcome in (OK, FAILED, INDETERMINATE)} for kind in ("write", "read")}
    counts = {
        "writes": outcomes["write"], "reads": outcomes["read"], "keys_written": len(writes),
        "lost": len(lost), "discarded": sum(entry["discarded"] for entry in lost),
        "failed_visible": len(failed_visible), "stale_reads": len(stale), "unreadable": len(unreadable),
    }
    return {"valid": not lost and not failed_visible, "counts": counts, "lost": lost,
            "failed_visible": list(failed_visible.values()), "stale_reads": stale, "unreadable_keys": unreadable}


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
