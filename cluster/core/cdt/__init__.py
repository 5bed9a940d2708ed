"""Collection data type (CDT) operations: lists and maps inside a bin.

Not implemented yet: every CDT op is refused with UNSUPPORTED_FEATURE (16), never ignored.
"""

from cluster.core.bins import Bins
from cluster.wire.message import Op
from cluster.wire.result_codes import AerospikeError, ResultCode


def read(record_bins: Bins, op: Op) -> list[Op]:
    """A CDT_READ op: the bins it returns."""
    raise AerospikeError(ResultCode.UNSUPPORTED_FEATURE, "list and map operations are not implemented")


def modify(record_bins: Bins, op: Op) -> list[Op]:
    """A CDT_MODIFY op: changes `record_bins` in place, returns the bins it answers with."""
    raise AerospikeError(ResultCode.UNSUPPORTED_FEATURE, "list and map operations are not implemented")
