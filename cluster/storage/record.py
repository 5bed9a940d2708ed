"""A record's metadata as the storage layer keeps it, and the record clock.

Times follow Aerospike's "citrusleaf epoch" (2010-01-01T00:00:00Z): void-time in seconds,
last-update-time (LUT) in milliseconds. The storage engines never read the clock
themselves; callers pass the current time in, so tests and the simulator can drive it.
`now_cl_seconds()` / `now_cl_ms()` are for the node runtime that does own a clock.
"""

import time
from dataclasses import dataclass

CITRUSLEAF_EPOCH = 1262304000  # 2010-01-01T00:00:00Z in Unix seconds

MAX_GENERATION = 0xFFFF
MAX_VOID_TIME = 0xFFFF_FFFF
MAX_LUT = (1 << 40) - 1  # the server keeps LUT in 40 bits
MAX_SET_NAME = 63  # bytes, as in Aerospike


@dataclass(frozen=True, slots=True)
class RecordMeta:
    """Frozen so that the engines can hand out the object they index without a copy."""

    generation: int  # 1..65535, wraps 65535 -> 1
    void_time: int  # citrusleaf seconds; 0 = never expires
    lut: int  # citrusleaf milliseconds
    set_name: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.generation <= MAX_GENERATION:
            raise ValueError(f"generation {self.generation} is outside 1..{MAX_GENERATION}")
        if not 0 <= self.void_time <= MAX_VOID_TIME:
            raise ValueError(f"void_time {self.void_time} is outside 0..{MAX_VOID_TIME}")
        if not 0 <= self.lut <= MAX_LUT:
            raise ValueError(f"lut {self.lut} is outside 0..{MAX_LUT}")
        if len(self.set_name.encode()) > MAX_SET_NAME:
            raise ValueError(f"set name {self.set_name!r} is longer than {MAX_SET_NAME} bytes")

    def expired(self, now_s: int) -> bool:
        return self.void_time != 0 and self.void_time < now_s  # alive through its void-time second, as the server


_new = object.__new__
# the slots' own descriptors: they set a field without the frozen class's __setattr__
_set_generation, _set_void_time, _set_lut, _set_set_name = (
    RecordMeta.__dict__[f].__set__ for f in ("generation", "void_time", "lut", "set_name"))


def unchecked_meta(generation: int, void_time: int, lut: int, set_name: str) -> RecordMeta:
    """RecordMeta(generation, void_time, lut, set_name) without __post_init__'s range checks:
    for a caller on the write path that has already kept every value in range."""
    meta = _new(RecordMeta)
    _set_generation(meta, generation)
    _set_void_time(meta, void_time)
    _set_lut(meta, lut)
    _set_set_name(meta, set_name)
    return meta


def now_cl_seconds() -> int:
    return int(time.time()) - CITRUSLEAF_EPOCH


def now_cl_ms() -> int:
    return time.time_ns() // 1_000_000 - CITRUSLEAF_EPOCH * 1000
