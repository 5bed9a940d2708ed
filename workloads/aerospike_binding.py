"""YCSB's ``DB`` over our client (``cluster.client``), mapped the way YCSB's Aerospike binding maps it.

* YCSB ``table`` → Aerospike **set** (unless a fixed set is given), the YCSB key → the user
  key (only its digest is sent, as the Java client does by default), fields → **bins** of
  bytes, in namespace ``namespace``.
* read → ``get`` (all bins) or ``select`` (named bins); a missing record is an error (2).
* insert → ``put`` with ``exists=create_only``, as the binding does.
* update → ``put`` with ``exists=update_only``. The binding uses REPLACE_ONLY, which with the
  default ``writeallfields=false`` replaces a 10-bin record by a one-bin record, so later
  reads silently return less; UPDATE_ONLY keeps the other bins, which is what ``DB.update``
  promises (harness spec section 1.8).
* scan → ``batch_read`` of the keys the workload names (the binding cannot scan; see
  ``core_workload`` for why a scan is the next N keys in insert order). Missing keys are
  simply not returned, as a range scan would not return them.
* delete → ``remove``.

Every call returns a ``Status``: 0, or the Aerospike result code of the error the client
raised (negative for client-side failures). Anything that is not an ``AerospikeError`` is a
bug and propagates.
"""

import re
from collections.abc import Callable, Collection, Mapping, Sequence

from cluster.client import Client, errors
from cluster.wire.result_codes import AerospikeError, ResultCode
from workloads.core_workload import DB, OK, Status

CREATE_ONLY = {"exists": "create_only"}
UPDATE_ONLY = {"exists": "update_only"}


class AerospikeDB(DB):
    def __init__(self, client: Client, namespace: str, set_name: str | None = None):
        self.client = client
        self.namespace = namespace
        self.set_name = set_name

    def _key(self, table: str, key: str) -> tuple[str, str, str]:
        return self.namespace, self.set_name or table, key

    @staticmethod
    def _status(call: Callable, *args, **kwargs) -> Status:
        try:
            call(*args, **kwargs)
        except AerospikeError as error:
            return error.code
        return OK

    def read(self, table: str, key: str, fields: Collection[str] | None) -> Status:
        if fields is None:
            return self._status(self.client.get, self._key(table, key))
        return self._status(self.client.select, self._key(table, key), list(fields))

    def update(self, table: str, key: str, values: Mapping[str, bytes]) -> Status:
        return self._status(self.client.put, self._key(table, key), dict(values), policy=UPDATE_ONLY)

    def insert(self, table: str, key: str, values: Mapping[str, bytes]) -> Status:
        return self._status(self.client.put, self._key(table, key), dict(values), policy=CREATE_ONLY)

    def scan(
        self, table: str, startkey: str, count: int, fields: Collection[str] | None, keys: Sequence[str]
    ) -> Status:
        bins = None if fields is None else list(fields)
        return self._status(self.client.batch_read, [self._key(table, key) for key in keys], bins)

    def delete(self, table: str, key: str) -> Status:
        return self._status(self.client.remove, self._key(table, key))


def code_name(code: int) -> str:
    """``TIMEOUT`` for 9; client-side codes by their exception class (``-10`` → ``CONNECTION_FAILED``)."""
    try:
        return ResultCode(code).name
    except ValueError:
        pass
    error_class = type(errors.error_for(code))
    if error_class is AerospikeError:
        return f"CODE_{code}"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", error_class.__name__).upper()


def failure_name(status: Status) -> str:
    """How a failed status is named in Locust's failures: ``AerospikeError 9 TIMEOUT``.

    A string status is the type name of an unexpected exception (``MeasuredDB`` records it).
    """
    if isinstance(status, int):
        return f"AerospikeError {status} {code_name(status)}"
    return str(status)
