"""Exceptions raised by our client, one class per Aerospike result code.

Server codes are positive; codes the client produces itself are negative, as in the
official clients. `error_for(code)` picks the class so callers can catch by meaning
(`except RecordNotFound`) or inspect `.code`.
"""

from cluster.wire.result_codes import AerospikeError


class _CodedError(AerospikeError):
    """Base of the classes below: each fixes its result code, so callers pass only a message."""

    code_value: int

    def __init__(self, message: str = ""):
        super().__init__(self.code_value, message)
        # The base class names codes from the server's table, which has no client-side codes.
        self.args = (f"{type(self).__name__} ({self.code}){': ' + message if message else ''}",)


class ServerError(_CodedError):
    code_value = 1


class RecordNotFound(_CodedError):
    code_value = 2


class GenerationError(_CodedError):
    code_value = 3


class InvalidRequest(_CodedError):
    code_value = 4


class RecordExists(_CodedError):
    code_value = 5


class ServerFull(_CodedError):
    code_value = 8


class Timeout(_CodedError):
    """Code 9 from the server, or the client's own total_timeout expiring."""

    code_value = 9


class ClusterError(_CodedError):
    """Code 11: the partition is unavailable on the node asked (after retries)."""

    code_value = 11


class BinIncompatibleType(_CodedError):
    code_value = 12


class RecordTooBig(_CodedError):
    code_value = 13


class RecordBusy(_CodedError):
    code_value = 14


class UnsupportedFeature(_CodedError):
    code_value = 16


class BinNotFound(_CodedError):
    code_value = 17


class DeviceOverload(_CodedError):
    code_value = 18


class NamespaceNotFound(_CodedError):
    code_value = 20


class BinNameError(_CodedError):
    code_value = 21


class Forbidden(_CodedError):
    code_value = 22


class FilteredOut(_CodedError):
    code_value = 27


class ClientError(_CodedError):
    """Code -1: a client-side failure such as an unreachable peer or a bad reply."""

    code_value = -1


class ParamError(_CodedError):
    code_value = -2


class NoMoreConnections(_CodedError):
    code_value = -7


class InvalidNode(_CodedError):
    """Code -8: the partition map names no node for the key's partition."""

    code_value = -8


class ConnectionFailed(_CodedError):
    """Code -10: a socket could not be opened, or broke mid-command."""

    code_value = -10


_BY_CODE = {cls.code_value: cls for cls in _CodedError.__subclasses__()}

# Worth another attempt: the node was busy, unreachable or not (yet) the owner.
RETRYABLE = frozenset({Timeout.code_value, ClusterError.code_value, DeviceOverload.code_value,
                       NoMoreConnections.code_value, InvalidNode.code_value, ConnectionFailed.code_value})


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, AerospikeError) and exc.code in RETRYABLE


def error_for(code: int, message: str = "") -> AerospikeError:
    """The exception for a result code; codes without a class give the base AerospikeError."""
    cls = _BY_CODE.get(code)
    return cls(message) if cls else AerospikeError(code, message)
