"""Aerospike expressions: filter expressions (field 43) and expression read/write ops.

Not implemented yet: every use is refused with UNSUPPORTED_FEATURE (16), never ignored.
"""

from cluster.core.bins import Bins
from cluster.core.records import RecordImage
from cluster.wire.message import Op
from cluster.wire.result_codes import AerospikeError, ResultCode


def _refuse() -> AerospikeError:
    return AerospikeError(ResultCode.UNSUPPORTED_FEATURE, "expressions are not implemented")


def read(record_bins: Bins, op: Op, record: RecordImage | None, now_ms: int) -> list[Op]:
    """An EXP_READ op: the bin named `op.name` holding the expression's value."""
    raise _refuse()


def modify(record_bins: Bins, op: Op, record: RecordImage | None, now_ms: int) -> None:
    """An EXP_MODIFY op: writes the expression's value to the bin `op.name`."""
    raise _refuse()
