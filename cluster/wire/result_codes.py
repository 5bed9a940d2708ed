"""Aerospike result codes (the subset this project produces or reacts to)."""

from enum import IntEnum


class ResultCode(IntEnum):
    OK = 0
    SERVER_ERROR = 1
    KEY_NOT_FOUND = 2
    GENERATION = 3
    PARAMETER = 4
    RECORD_EXISTS = 5
    BIN_EXISTS = 6
    CLUSTER_KEY_MISMATCH = 7
    OUT_OF_SPACE = 8  # stop-writes or a full device
    TIMEOUT = 9
    PARTITION_UNAVAILABLE = 11
    INCOMPATIBLE_TYPE = 12
    RECORD_TOO_BIG = 13
    KEY_BUSY = 14
    UNSUPPORTED_FEATURE = 16
    BIN_NOT_FOUND = 17
    DEVICE_OVERLOAD = 18
    KEY_MISMATCH = 19
    NAMESPACE_NOT_FOUND = 20
    BIN_NAME = 21
    FORBIDDEN = 22
    ELEMENT_NOT_FOUND = 23  # a map key an update-only write needs
    ELEMENT_EXISTS = 24  # a map key a create-only write, or a list value add-unique, finds
    OP_NOT_APPLICABLE = 26  # a CDT index/rank out of range, a context leading nowhere
    FILTERED_OUT = 27
    SECURITY_NOT_ENABLED = 52
    GEO_INVALID_GEOJSON = 160  # a GeoJSON bin value the server cannot parse


class AerospikeError(Exception):
    """An error that carries an Aerospike result code (server or client side)."""

    def __init__(self, code: int, message: str = ""):
        self.code = int(code)
        try:
            name = ResultCode(self.code).name
        except ValueError:
            name = f"CODE_{self.code}"
        super().__init__(f"{name} ({self.code}){': ' + message if message else ''}")
        self.message = message
