"""YCSB's number generators, reimplemented from the harness spec (section 1.5).

Every generator draws from an injected ``random.Random`` so a seeded run replays the same
key stream. The counters are shared by many users of one process and therefore take a
lock, as YCSB's atomic counters do; the random generators rely on ``random.Random`` being
safe to call from several threads/greenlets (its core draw is a single C call).

Integer generators expose ``next_value()`` and ``last_value()`` (the most recent draw), like
YCSB's ``NumberGenerator``.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Sequence
from typing import Generic, TypeVar

import numpy as np

ZIPFIAN_CONSTANT = 0.99

# ScrambledZipfian draws from a fixed huge item space so that popularity does not depend on
# the record count; zeta over it is precomputed (valid for θ = 0.99 only).
SCRAMBLED_ITEM_COUNT = 10_000_000_000
SCRAMBLED_ZETAN = 26.46902820178302

FNV_OFFSET_BASIS_64 = 0xCBF29CE484222325
FNV_PRIME_64 = 1099511628211
_MASK64 = (1 << 64) - 1


def fnvhash64(value: int) -> int:
    """FNV-1a over the 8 little-endian bytes of a Java long, returned as Java's Math.abs.

    YCSB hashes key numbers with this to scatter insert order and zipfian popularity.
    """
    hashval = FNV_OFFSET_BASIS_64
    for octet in (value & _MASK64).to_bytes(8, "little"):
        hashval = ((hashval ^ octet) * FNV_PRIME_64) & _MASK64
    signed = hashval - (1 << 64) if hashval >= 1 << 63 else hashval
    # Java's Math.abs(Long.MIN_VALUE) stays negative; keep that quirk so keys match YCSB's.
    return signed if signed == -(1 << 63) else abs(signed)


def zeta(count: int, theta: float, start: int = 0, initial_sum: float = 0.0) -> float:
    """Σ_{i=start+1..count} 1/i^θ added to ``initial_sum`` (the incremental form YCSB uses).

    Summed with numpy in chunks: a plain loop takes minutes for 10^8 items.
    """
    total = initial_sum
    chunk = 1 << 20
    for low in range(start + 1, count + 1, chunk):
        high = min(low + chunk, count + 1)
        total += float(np.sum(np.arange(low, high, dtype=np.float64) ** -theta))
    return total


class _LastValue:
    """Remembers the latest draw, for YCSB's ``lastValue()``."""

    _last: int | None = None

    def last_value(self) -> int | None:
        return self._last

    def _remember(self, value: int) -> int:
        self._last = value
        return value


class UniformGenerator(_LastValue):
    """Uniform integers in [lower, upper], both inclusive."""

    def __init__(self, lower: int, upper: int, rng: random.Random) -> None:
        if upper < lower:
            raise ValueError(f"uniform range is empty: [{lower}, {upper}]")
        self.lower, self.upper, self._rng = lower, upper, rng

    def next_value(self) -> int:
        return self._remember(self._rng.randint(self.lower, self.upper))


class ConstantGenerator(_LastValue):
    """Always the same number (YCSB's constant field length)."""

    def __init__(self, value: int) -> None:
        self._last = value

    def next_value(self) -> int:
        return self._last


class ZipfianGenerator(_LastValue):
    """Gray et al.'s fast zipfian over [lower, upper]: ``lower`` is the most popular item.

    ``next_long(item_count)`` may be called with a larger count than the constructor's (the
    SkewedLatest case); zeta is then extended incrementally instead of recomputed.
    """

    def __init__(
        self,
        lower: int,
        upper: int,
        rng: random.Random,
        theta: float = ZIPFIAN_CONSTANT,
        zetan: float | None = None,
    ) -> None:
        if upper < lower:
            raise ValueError(f"zipfian range is empty: [{lower}, {upper}]")
        self.base = lower
        self.items = upper - lower + 1
        self.theta = theta
        self._rng = rng
        self._alpha = 1.0 / (1.0 - theta)
        self._zeta2theta = zeta(2, theta)
        self._count_for_zeta = self.items
        self._zetan = zeta(self.items, theta) if zetan is None else zetan
        self._eta = self._compute_eta()
        self._lock = threading.Lock()

    def _compute_eta(self) -> float:
        # YCSB quirk kept on purpose: eta always uses the constructor's item count, even
        # after zeta has been extended for a larger count.
        return (1 - (2.0 / self.items) ** (1 - self.theta)) / (1 - self._zeta2theta / self._zetan)

    def _grow_to(self, item_count: int) -> None:
        with self._lock:
            if item_count > self._count_for_zeta:
                self._zetan = zeta(item_count, self.theta, self._count_for_zeta, self._zetan)
                self._count_for_zeta = item_count
                self._eta = self._compute_eta()

    def next_long(self, item_count: int) -> int:
        """A draw as if the generator covered ``item_count`` items starting at ``base``."""
        if item_count > self._count_for_zeta:
            self._grow_to(item_count)
        u = self._rng.random()
        uz = u * self._zetan
        if uz < 1.0:
            return self._remember(self.base)
        if uz < 1.0 + 0.5**self.theta:
            return self._remember(self.base + 1)
        offset = int(item_count * (self._eta * u - self._eta + 1) ** self._alpha)
        return self._remember(self.base + offset)

    def next_value(self) -> int:
        return self.next_long(self.items)


class ScrambledZipfianGenerator(_LastValue):
    """Zipfian popularity with the popular items scattered over [lower, upper] by FNV hashing."""

    def __init__(self, lower: int, upper: int, rng: random.Random, theta: float = ZIPFIAN_CONSTANT) -> None:
        if upper < lower:
            raise ValueError(f"scrambled zipfian range is empty: [{lower}, {upper}]")
        self.lower = lower
        self.item_count = upper - lower + 1
        precomputed = SCRAMBLED_ZETAN if theta == ZIPFIAN_CONSTANT else None
        # YCSB sizes the inner generator as [0, ITEM_COUNT], i.e. ITEM_COUNT + 1 items.
        self._zipf = ZipfianGenerator(0, SCRAMBLED_ITEM_COUNT, rng, theta, zetan=precomputed)

    def next_value(self) -> int:
        return self._remember(self.lower + fnvhash64(self._zipf.next_value()) % self.item_count)


class CounterGenerator:
    """A shared counter: each call hands out the next integer, starting at ``start``."""

    def __init__(self, start: int) -> None:
        self._next = start
        self._lock = threading.Lock()

    def next_value(self) -> int:
        with self._lock:
            value = self._next
            self._next += 1
            return value

    def last_value(self) -> int:
        """The most recently handed-out value (start − 1 before the first call)."""
        return self._next - 1


class AcknowledgedCounterGenerator(CounterGenerator):
    """A counter whose ``last_value`` only advances over values that have been acknowledged.

    Run-phase inserts take keys from it; readers must not choose a key until it and every
    key below it has been written, so ``last_value`` is the highest *contiguous*
    acknowledged value. Acknowledgements are tracked in a ring of ``window`` slots; more
    outstanding keys than that is an error, as in YCSB.
    """

    WINDOW = 1 << 20

    def __init__(self, start: int, window: int = WINDOW) -> None:
        super().__init__(start)
        self._window = window
        self._acked = bytearray(window)
        self._limit = start - 1
        self._ack_lock = threading.Lock()

    def acknowledge(self, value: int) -> None:
        with self._ack_lock:
            slot = value % self._window
            if value <= self._limit or value - self._limit > self._window or self._acked[slot]:
                raise RuntimeError("Too many unacknowledged insertion keys.")
            self._acked[slot] = 1
            while self._acked[(self._limit + 1) % self._window]:
                self._limit += 1
                self._acked[self._limit % self._window] = 0

    def last_value(self) -> int:
        return self._limit


class SequentialGenerator(_LastValue):
    """Cycles through [lower, upper] in order, shared by all callers."""

    def __init__(self, lower: int, upper: int) -> None:
        if upper < lower:
            raise ValueError(f"sequential range is empty: [{lower}, {upper}]")
        self.lower = lower
        self._interval = upper - lower + 1
        self._counter = CounterGenerator(0)

    def next_value(self) -> int:
        return self._remember(self.lower + self._counter.next_value() % self._interval)


class SkewedLatestGenerator(_LastValue):
    """Favours the newest acknowledged insert: returns ``latest − zipfian(latest)``."""

    def __init__(self, basis: CounterGenerator, rng: random.Random, theta: float = ZIPFIAN_CONSTANT) -> None:
        self._basis = basis
        latest = basis.last_value()
        if latest < 1:
            raise ValueError("latest distribution needs at least two records")
        self._zipf = ZipfianGenerator(0, latest - 1, rng, theta)

    def next_value(self) -> int:
        latest = self._basis.last_value()
        return self._remember(latest - self._zipf.next_long(latest))


class HotspotGenerator(_LastValue):
    """The lowest ``hot_data_fraction`` of [lower, upper] gets ``hot_op_fraction`` of the draws."""

    def __init__(
        self, lower: int, upper: int, hot_data_fraction: float, hot_op_fraction: float, rng: random.Random
    ) -> None:
        if upper < lower:
            raise ValueError(f"hotspot range is empty: [{lower}, {upper}]")
        for name, fraction in (("hot data", hot_data_fraction), ("hot op", hot_op_fraction)):
            if not 0.0 <= fraction <= 1.0:
                raise ValueError(f"{name} fraction must be in [0, 1], got {fraction}")
        self.lower = lower
        interval = upper - lower + 1
        self.hot_interval = int(interval * hot_data_fraction)
        self.cold_interval = interval - self.hot_interval
        self.hot_op_fraction = hot_op_fraction
        self._rng = rng

    def next_value(self) -> int:
        hot = self._rng.random() < self.hot_op_fraction
        if (hot and self.hot_interval > 0) or self.cold_interval == 0:
            value = self.lower + self._rng.randrange(self.hot_interval)
        else:
            value = self.lower + self.hot_interval + self._rng.randrange(self.cold_interval)
        return self._remember(value)


class ExponentialGenerator(_LastValue):
    """Exponentially distributed integers with ``percentile`` % of draws below ``range_``."""

    def __init__(self, percentile: float, range_: float, rng: random.Random) -> None:
        if not 0.0 < percentile < 100.0 or range_ <= 0:
            raise ValueError(
                f"exponential needs 0 < percentile < 100 and range > 0, got {percentile}, {range_}"
            )
        self.gamma = -math.log(1.0 - percentile / 100.0) / range_
        self._rng = rng

    def next_value(self) -> int:
        # 1 − random() lies in (0, 1], so the logarithm is always finite.
        return self._remember(int(-math.log(1.0 - self._rng.random()) / self.gamma))


T = TypeVar("T")


class DiscreteGenerator(Generic[T]):
    """Picks one of several values with probability proportional to its weight."""

    def __init__(self, weighted: Sequence[tuple[float, T]], rng: random.Random) -> None:
        choices = [(weight, value) for weight, value in weighted if weight > 0]
        if not choices:
            raise ValueError("discrete generator needs at least one positive weight")
        total = sum(weight for weight, _ in choices)
        self._choices = [(weight / total, value) for weight, value in choices]
        self._rng = rng

    def next_value(self) -> T:
        remaining = self._rng.random()
        for share, value in self._choices:
            if remaining < share:
                return value
            remaining -= share
        return self._choices[-1][1]  # only reached through floating-point rounding
