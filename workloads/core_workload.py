"""YCSB's CoreWorkload against an abstract key-value ``DB``, split across distributed workers.

What it reproduces (harness spec sections 1.3 and 1.4): key names ``user`` + zero padding +
``fnvhash64(keynum)`` (or the plain key number with ``insertorder=ordered``); values of
``fieldcount`` fields ``field0…`` of random printable bytes (or, with ``dataintegrity``,
bytes derived from key and field name); the operation chosen by proportion; the key chosen
by ``requestdistribution`` and redrawn while it lies beyond the last acknowledged insert
(``exponential`` instead counts back from that insert); read-modify-write as a read and an
update of one key, reported as its own operation; run-phase inserts taken from an
acknowledged counter that starts at ``recordcount``.

Distributed workers. Worker ``i`` of ``n`` (e.g. one per Locust worker process):

* Load phase: it inserts only its contiguous slice of ``[insertstart, insertstart +
  insertcount)`` (``load_slice``); the slices are disjoint and together cover the range.
* Run phase: each worker keeps YCSB's *logical* key numbers — ``[0, recordcount)`` are the
  loaded records, and its own inserts continue at ``recordcount, recordcount + 1, …`` — so
  its choosers, acknowledged counter and ``latest`` distribution behave exactly like one
  YCSB client. Logical numbers at or above ``recordcount`` map to *physical* key numbers
  strided by worker: ``recordcount + (logical − recordcount) × n + i``. Physical inserts
  are therefore disjoint across workers, and a worker only ever reads keys that exist: the
  loaded ones and its own acknowledged inserts (it never reads another worker's inserts).

As in YCSB, an insert is acknowledged once the DB call returns, whether or not it
succeeded: acknowledging only successes would freeze ``last_value`` at the first failed
insert for the rest of a chaos run. The cost is that a failed insert's key can later be
read and count as a not-found error.

Scans (workload E). YCSB's Aerospike binding cannot scan, and Aerospike has no ordered
primary-key scan. Here a scan of ``count`` records from ``startkey`` is mapped to a batch
read of the next ``count`` *key numbers* in YCSB's key order, i.e. logical key numbers
``start … start + count − 1`` clipped to the last acknowledged insert; ``DB.scan`` receives
those key names in ``keys`` (``keys[0] == startkey``) and should read the ones that exist.
This is an approximation: a range scan on an ordered store returns the keys that sort
after ``startkey``, which with hashed insert order are other records than these. It keeps
what matters for load — a start key drawn from the request distribution, a length drawn
from ``scanlengthdistribution``, the same number of records read and bytes moved — but it
is ``count`` point lookups, not one ordered range read.
"""

import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from workloads import generators as gen
from workloads.properties import WorkloadProperties

Status = int | str
OK: Status = 0  # Aerospike's AEROSPIKE_OK; any other status is an error code

READ, UPDATE, INSERT, SCAN, DELETE = "READ", "UPDATE", "INSERT", "SCAN", "DELETE"
READ_MODIFY_WRITE = "READ-MODIFY-WRITE"


class DB(ABC):
    """The key-value operations a workload needs; ``table`` is the YCSB table (an Aerospike set)."""

    @abstractmethod
    def read(self, table: str, key: str, fields: Collection[str] | None) -> Status:
        """Read ``fields`` of one record (``None`` = all fields)."""

    @abstractmethod
    def update(self, table: str, key: str, values: Mapping[str, bytes]) -> Status:
        """Overwrite the given fields of an existing record, leaving its other fields alone."""

    @abstractmethod
    def insert(self, table: str, key: str, values: Mapping[str, bytes]) -> Status:
        """Create a record."""

    @abstractmethod
    def scan(
        self, table: str, startkey: str, count: int, fields: Collection[str] | None, keys: Sequence[str]
    ) -> Status:
        """Read up to ``count`` records from ``startkey`` on; ``keys`` are their names (see module doc)."""

    @abstractmethod
    def delete(self, table: str, key: str) -> Status:
        """Remove a record."""


@dataclass(frozen=True)
class Transaction:
    """What one workload step did: the YCSB operation name, the key it used, its status."""

    op: str
    key: str
    status: Status

    @property
    def ok(self) -> bool:
        return self.status == OK


def load_slice(insertstart: int, insertcount: int, worker: int, workers: int) -> range:
    """Worker ``worker``'s contiguous share of ``[insertstart, insertstart + insertcount)``."""
    if not 0 <= worker < workers:
        raise ValueError(f"worker index {worker} is not in [0, {workers})")
    return range(
        insertstart + insertcount * worker // workers,
        insertstart + insertcount * (worker + 1) // workers,
    )


# RandomByteIterator-style printable values: each random byte becomes one of 64 ASCII
# characters from ' ' to '_', so values are readable in dumps and CSVs.
_PRINTABLE = bytes(32 + (b & 63) for b in range(256))


def _java_string_hash(text: str) -> int:
    h = 0
    for char in text:
        h = (31 * h + ord(char)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def deterministic_value(key: str, field: str, size: int) -> bytes:
    """YCSB's dataintegrity value: ``key:field`` extended by ``:hash`` of itself to ``size``."""
    text = f"{key}:{field}"
    while len(text) < size:
        text += f":{_java_string_hash(text)}"
    return text[:size].encode()


class CoreWorkload:
    """One worker's YCSB CoreWorkload; share it between the users (greenlets) of a process."""

    def __init__(
        self,
        props: WorkloadProperties,
        rng: random.Random,
        worker: int = 0,
        workers: int = 1,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.props = props
        self.worker, self.workers = worker, workers
        self._rng = rng
        self._sleep = sleep
        self.field_names = [f"{props.fieldnameprefix}{i}" for i in range(props.fieldcount)]
        self.load_range = load_slice(props.insertstart, props.insertcount, worker, workers)
        self._load_keys = gen.CounterGenerator(self.load_range.start)
        self.insert_keys = gen.AcknowledgedCounterGenerator(props.recordcount)
        self._operations = gen.DiscreteGenerator(
            [(share, op) for op, share in props.proportions().items()], rng
        )
        self._field_chooser = gen.UniformGenerator(0, props.fieldcount - 1, rng)
        self._field_length = self._field_length_generator()
        self._scan_length = self._scan_length_generator()
        self._key_chooser = self._key_chooser_generator()

    # -- generators chosen by the properties ------------------------------------------------

    def _field_length_generator(self):
        p = self.props
        if p.fieldlengthdistribution == "uniform":
            return gen.UniformGenerator(p.minfieldlength, p.fieldlength, self._rng)
        if p.fieldlengthdistribution == "zipfian":
            return gen.ZipfianGenerator(p.minfieldlength, p.fieldlength, self._rng)
        return gen.ConstantGenerator(p.fieldlength)

    def _scan_length_generator(self):
        p = self.props
        if p.scanlengthdistribution == "zipfian":
            return gen.ZipfianGenerator(p.minscanlength, p.maxscanlength, self._rng)
        return gen.UniformGenerator(p.minscanlength, p.maxscanlength, self._rng)

    def _key_chooser_generator(self):
        p, rng = self.props, self._rng
        first, last = p.insertstart, p.insertstart + p.insertcount - 1
        match p.requestdistribution:
            case "uniform":
                return gen.UniformGenerator(first, last, rng)
            case "sequential":
                return gen.SequentialGenerator(first, last)
            case "hotspot":
                return gen.HotspotGenerator(first, last, p.hotspotdatafraction, p.hotspotopnfraction, rng)
            case "exponential":
                return gen.ExponentialGenerator(
                    p.exponential_percentile, p.recordcount * p.exponential_frac, rng
                )
            case "latest":
                return gen.SkewedLatestGenerator(self.insert_keys, rng)
            case "zipfian":
                # Sized for the inserts expected during the run (×2 fudge factor, as YCSB), so
                # item popularity does not shift while new keys arrive.
                expected_new_keys = int(p.operationcount * p.insertproportion * 2.0)
                return gen.ScrambledZipfianGenerator(first, last + 1 + expected_new_keys, rng)
        raise AssertionError(p.requestdistribution)  # properties already checked the choice

    # -- keys and values -----------------------------------------------------------------

    def physical_keynum(self, logical: int) -> int:
        """Map this worker's logical key number to the cluster-wide one (see module doc)."""
        recordcount = self.props.recordcount
        if logical < recordcount:
            return logical
        return recordcount + (logical - recordcount) * self.workers + self.worker

    def key_name(self, keynum: int) -> str:
        """The record key for a physical key number."""
        p = self.props
        number = str(gen.fnvhash64(keynum) if p.insertorder == "hashed" else keynum)
        return p.keyprefix + "0" * (p.zeropadding - len(number)) + number

    def _logical_key_name(self, logical: int) -> str:
        return self.key_name(self.physical_keynum(logical))

    def _value(self, key: str, field: str) -> bytes:
        size = self._field_length.next_value()
        if self.props.dataintegrity:
            return deterministic_value(key, field, size)
        return self._rng.randbytes(size).translate(_PRINTABLE)

    def build_values(self, key: str) -> dict[str, bytes]:
        """All fields of a record."""
        return {field: self._value(key, field) for field in self.field_names}

    def _update_values(self, key: str) -> dict[str, bytes]:
        if self.props.writeallfields:
            return self.build_values(key)
        field = self.field_names[self._field_chooser.next_value()]
        return {field: self._value(key, field)}

    def _read_fields(self) -> list[str] | None:
        p = self.props
        if not p.readallfields:
            return [self.field_names[self._field_chooser.next_value()]]
        return list(self.field_names) if p.readallfieldsbyname or p.dataintegrity else None

    def next_keynum(self) -> int:
        """A logical key number from the request distribution that is known to be inserted."""
        latest = self.insert_keys.last_value()
        if isinstance(self._key_chooser, gen.ExponentialGenerator):
            while (keynum := latest - self._key_chooser.next_value()) < 0:
                pass
            return keynum
        while (keynum := self._key_chooser.next_value()) > latest:
            pass
        return keynum

    # -- load phase -----------------------------------------------------------------------

    def do_insert(self, db: DB) -> Transaction | None:
        """Insert this worker's next load-phase record; ``None`` once its slice is done.

        Failed inserts are retried ``core_workload_insertion_retry_limit`` times, sleeping
        the retry interval jittered by ±20 % so that retrying workers do not move in step.
        """
        keynum = self._load_keys.next_value()
        if keynum >= self.load_range.stop:
            return None
        key = self.key_name(keynum)
        values = self.build_values(key)
        retries = self.props.core_workload_insertion_retry_limit
        for attempt in range(retries + 1):
            status = db.insert(self.props.table, key, values)
            if status == OK or attempt == retries:
                break
            self._sleep(self.props.core_workload_insertion_retry_interval * self._rng.uniform(0.8, 1.2))
        return Transaction(INSERT, key, status)

    # -- run phase ------------------------------------------------------------------------

    def do_transaction(self, db: DB) -> Transaction:
        """Run one operation chosen by the proportions."""
        op = self._operations.next_value()
        return self._transactions[op](self, db)

    def _read(self, db: DB) -> Transaction:
        key = self._logical_key_name(self.next_keynum())
        return Transaction(READ, key, db.read(self.props.table, key, self._read_fields()))

    def _update(self, db: DB) -> Transaction:
        key = self._logical_key_name(self.next_keynum())
        return Transaction(UPDATE, key, db.update(self.props.table, key, self._update_values(key)))

    def _insert(self, db: DB) -> Transaction:
        logical = self.insert_keys.next_value()
        try:
            key = self._logical_key_name(logical)
            status = db.insert(self.props.table, key, self.build_values(key))
        finally:
            self.insert_keys.acknowledge(logical)
        return Transaction(INSERT, key, status)

    def _scan(self, db: DB) -> Transaction:
        start = self.next_keynum()
        count = self._scan_length.next_value()
        stop = min(start + count, self.insert_keys.last_value() + 1)
        keys = [self._logical_key_name(logical) for logical in range(start, stop)]
        return Transaction(
            SCAN, keys[0], db.scan(self.props.table, keys[0], count, self._read_fields(), keys)
        )

    def _read_modify_write(self, db: DB) -> Transaction:
        key = self._logical_key_name(self.next_keynum())
        fields = self._read_fields()
        values = self._update_values(key)
        read_status = db.read(self.props.table, key, fields)
        update_status = db.update(self.props.table, key, values)
        return Transaction(READ_MODIFY_WRITE, key, read_status if read_status != OK else update_status)

    _transactions = {
        READ: _read,
        UPDATE: _update,
        INSERT: _insert,
        SCAN: _scan,
        READ_MODIFY_WRITE: _read_modify_write,
    }
