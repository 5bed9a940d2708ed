"""The HyperLogLog sketch as the server keeps it (particle_hll.c): layout, hash, estimators.

A particle is an 11-byte header — u8 flags (always 0), u8 index bits (4..16), u8 minhash
bits (0 or 4..51, index + minhash <= 64), u64 cached count in the host's (little-endian)
order, 0 when unknown — then 2**index_bits registers of 6 + minhash bits each, packed from
the most significant bit of the first byte down, the last byte padded with zeros.

A register holds (hll value << minhash bits) | minhash value: HyperMinHash (Yu & Weber,
arXiv 1710.08436) keeps a few bits of the hash beside HyperLogLog's rank, which is what
makes intersections and similarity estimable. The count is Ertl's improved estimator
(arXiv 1702.01284, algorithm 6). Every formula is the server's, step for step in floating
point, so counts and similarities come out equal to its answers.
"""

import math
import struct
from collections import defaultdict

import numpy as np

HLL_BITS = 6  # bits of a register's rank part
HLL_MAX_VALUE = 1 << HLL_BITS
MIN_INDEX_BITS, MAX_INDEX_BITS = 4, 16
MIN_MINHASH_BITS, MAX_MINHASH_BITS = 4, 64 - HLL_BITS - 7
MAX_COMBINED_BITS = 64
HEADER = struct.Struct("<BBBQ")
F64 = struct.Struct(">d")
_M64 = (1 << 64) - 1


def valid_index_bits(n: int) -> bool:
    return MIN_INDEX_BITS <= n <= MAX_INDEX_BITS


def valid_minhash_bits(n: int) -> bool:
    return n == 0 or MIN_MINHASH_BITS <= n <= MAX_MINHASH_BITS


def valid_bits(index_bits: int, minhash_bits: int) -> bool:
    return (valid_index_bits(index_bits) and valid_minhash_bits(minhash_bits)
            and index_bits + minhash_bits <= MAX_COMBINED_BITS)


def registers_size(index_bits: int, minhash_bits: int) -> int:
    return ((HLL_BITS + minhash_bits) * (1 << index_bits) + 7) // 8


def particle_size(index_bits: int, minhash_bits: int) -> int:
    return HEADER.size + registers_size(index_bits, minhash_bits)


def is_valid_particle(data: bytes) -> bool:
    """What the server checks of a stored or sent HLL: flags 0, bits in range, exact size."""
    if len(data) < HEADER.size:
        return False
    flags, index_bits, minhash_bits, _ = HEADER.unpack_from(data)
    return (flags == 0 and valid_bits(index_bits, minhash_bits)
            and len(data) == particle_size(index_bits, minhash_bits))


# -- the hash ---------------------------------------------------------------------------------

def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M64


def _fmix(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _M64
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _M64
    return k ^ (k >> 33)


_C1, _C2 = 0x87C37B91114253D5, 0x4CF5AD432745937F


def murmur3_128(data: bytes) -> tuple[int, int]:
    """MurmurHash3 x64 128 with seed 0 (the server's cf_hash_math.h): (h1, h2)."""
    h1 = h2 = 0
    n_blocks = len(data) // 16
    for i in range(n_blocks):
        k1, k2 = struct.unpack_from("<QQ", data, i * 16)
        h1 ^= (_rotl((k1 * _C1) & _M64, 31) * _C2) & _M64
        h1 = (_rotl(h1, 27) + h2) & _M64
        h1 = (h1 * 5 + 0x52DCE729) & _M64
        h2 ^= (_rotl((k2 * _C2) & _M64, 33) * _C1) & _M64
        h2 = (_rotl(h2, 31) + h1) & _M64
        h2 = (h2 * 5 + 0x38495AB5) & _M64
    tail = data[n_blocks * 16:]
    if len(tail) > 8:
        k2 = int.from_bytes(tail[8:], "little")
        h2 ^= (_rotl((k2 * _C2) & _M64, 33) * _C1) & _M64
    if tail:
        k1 = int.from_bytes(tail[:8], "little")
        h1 ^= (_rotl((k1 * _C1) & _M64, 31) * _C2) & _M64
    h1 ^= len(data)
    h2 ^= len(data)
    h1 = (h1 + h2) & _M64
    h2 = (h2 + h1) & _M64
    h1, h2 = _fmix(h1), _fmix(h2)
    h1 = (h1 + h2) & _M64
    h2 = (h2 + h1) & _M64
    return h1, h2


def _np_rotl(x, r: int):
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


def _np_fmix(k):
    k ^= k >> np.uint64(33)
    k *= np.uint64(0xFF51AFD7ED558CCD)
    k ^= k >> np.uint64(33)
    k *= np.uint64(0xC4CEB9FE1A85EC53)
    return k ^ (k >> np.uint64(33))


def murmur3_128_many(items: list[bytes]) -> list[tuple[int, int]]:
    """murmur3_128 of many items at once, the same steps on numpy arrays (uint64 arithmetic
    wraps as C's does): items of one length are hashed together. An add of thousands of
    elements (the client's tests add 10000 at a time) would otherwise spend its time here."""
    out: list[tuple[int, int]] = [(0, 0)] * len(items)
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        by_length[len(item)].append(i)
    c1, c2 = np.uint64(_C1), np.uint64(_C2)
    with np.errstate(over="ignore"):
        for length, where in by_length.items():
            padded = -(-length // 16) * 16 or 16
            buf = np.zeros((len(where), padded), dtype=np.uint8)
            buf[:, :length] = np.frombuffer(b"".join(items[i] for i in where), dtype=np.uint8).reshape(-1, length)
            words = buf.view("<u8").astype(np.uint64)  # little-endian 64-bit words, two per block
            h1 = np.zeros(len(where), dtype=np.uint64)
            h2 = np.zeros(len(where), dtype=np.uint64)
            n_blocks = length // 16
            for b in range(n_blocks):
                h1 ^= _np_rotl(words[:, 2 * b] * c1, 31) * c2
                h1 = (_np_rotl(h1, 27) + h2) * np.uint64(5) + np.uint64(0x52DCE729)
                h2 ^= _np_rotl(words[:, 2 * b + 1] * c2, 33) * c1
                h2 = (_np_rotl(h2, 31) + h1) * np.uint64(5) + np.uint64(0x38495AB5)
            tail = length - n_blocks * 16
            if tail > 8:
                h2 ^= _np_rotl(words[:, 2 * n_blocks + 1] * c2, 33) * c1
            if tail:
                h1 ^= _np_rotl(words[:, 2 * n_blocks] * c1, 31) * c2
            h1 ^= np.uint64(length)
            h2 ^= np.uint64(length)
            h1 += h2
            h2 += h1
            h1, h2 = _np_fmix(h1), _np_fmix(h2)
            h1 += h2
            h2 += h1
            for i, a, b in zip(where, h1.tolist(), h2.tolist(), strict=True):
                out[i] = (a, b)
    return out


def _trailing_zeros(x: int) -> int:
    return 64 if x == 0 else (x & -x).bit_length() - 1


def _shifts(width: int):
    """Bit positions of a register's bits, most significant first (registers are packed
    from the high bit of each byte down)."""
    return np.arange(width - 1, -1, -1, dtype=np.uint64)


class Sketch:
    """One HLL decoded: its bits, cached count and registers as a list of ints."""

    __slots__ = ("index_bits", "minhash_bits", "cache", "registers")

    def __init__(self, index_bits: int, minhash_bits: int, cache: int = 0, registers: list[int] | None = None):
        self.index_bits = index_bits
        self.minhash_bits = minhash_bits
        self.cache = cache
        self.registers = registers if registers is not None else [0] * (1 << index_bits)

    @classmethod
    def decode(cls, data: bytes) -> "Sketch":
        """A particle already checked by is_valid_particle."""
        _, index_bits, minhash_bits, cache = HEADER.unpack_from(data)
        width, n = HLL_BITS + minhash_bits, 1 << index_bits
        body = np.frombuffer(data, dtype=np.uint8, offset=HEADER.size)
        bits = np.unpackbits(body)[:width * n].reshape(n, width).astype(np.uint64)
        registers = (bits << _shifts(width)).sum(axis=1, dtype=np.uint64)
        return cls(index_bits, minhash_bits, cache, registers.tolist())

    def encode(self) -> bytes:
        width = HLL_BITS + self.minhash_bits
        values = np.array(self.registers, dtype=np.uint64).reshape(-1, 1)
        bits = ((values >> _shifts(width)) & np.uint64(1)).astype(np.uint8)
        # packbits pads the last byte with zeros, as the server's registers end
        return HEADER.pack(0, self.index_bits, self.minhash_bits, self.cache) + np.packbits(bits.ravel()).tobytes()

    def copy(self) -> "Sketch":
        return Sketch(self.index_bits, self.minhash_bits, self.cache, list(self.registers))

    # -- adding and testing elements ----------------------------------------------------------

    def _place(self, h1: int, h2: int) -> tuple[int, int]:
        """(register index, register value) of an element's hash (of its compact msgpack)."""
        index = h1 & ((1 << self.index_bits) - 1)
        minhash = (h1 >> self.index_bits) & ((1 << self.minhash_bits) - 1)
        rank = _trailing_zeros(h2) + 1
        return index, (rank << self.minhash_bits) | minhash

    def _hash(self, element: bytes) -> tuple[int, int]:
        return self._place(*murmur3_128(element))

    def add_all(self, elements: list[bytes]) -> int:
        """Add elements in order; how many changed a register (the server's n_added)."""
        hashes = murmur3_128_many(elements) if len(elements) > 32 else [murmur3_128(e) for e in elements]
        added, regs = 0, self.registers
        fits = (1 << (HLL_BITS + self.minhash_bits)) - 1
        for h1, h2 in hashes:
            index, value = self._place(h1, h2)
            if regs[index] < value:
                regs[index] = value & fits  # a rank of 65 (h2 == 0) does not fit: C keeps the low bits
                added += 1
        if added:
            self.cache = 0
        return added

    def may_contain(self, element: bytes) -> bool:
        index, value = self._hash(element)
        return value <= self.registers[index]

    # -- estimates ----------------------------------------------------------------------------

    def count(self) -> int:
        """The cached count if there is one (the server trusts it), else Ertl's estimate."""
        if self.cache:
            return self.cache
        n = len(self.registers)
        ranks = np.array(self.registers, dtype=np.uint64) >> np.uint64(self.minhash_bits)
        histogram = np.bincount(ranks.astype(np.int64), minlength=HLL_MAX_VALUE + 1).tolist()
        z = n * _tau(histogram[HLL_MAX_VALUE] / n)
        for k in range(HLL_MAX_VALUE, 0, -1):
            z = 0.5 * (z + histogram[k])
        z += n * _sigma(histogram[0] / n)
        estimate = _alpha(self.index_bits) * n * n / z if z else math.inf
        return _round(estimate)

    def used_registers(self) -> int:
        return sum(1 for v in self.registers if v)

    def has_data(self) -> bool:
        """The server looks only at the first 2**index_bits bytes of the registers (enough
        for it: only sketches with minhash bits, whose registers are longer, ask)."""
        width = HLL_BITS + self.minhash_bits
        whole, partial = divmod(8 << self.index_bits, width)  # registers inside those bytes, bits of the next
        regs = self.registers
        return any(regs[:whole]) or bool(partial and whole < len(regs) and regs[whole] >> (width - partial))


def _round(x: float) -> int:
    """llround: half away from zero, on a non-negative estimate (inf saturates as C's does)."""
    if math.isinf(x) or math.isnan(x):
        return 0 if math.isnan(x) or x < 0 else (1 << 63)
    whole = math.floor(x)
    return whole + 1 if x - whole >= 0.5 else whole


def _tau(x: float) -> float:
    if x in (0.0, 1.0):
        return 0.0
    y, z = 1.0, 1 - x
    while True:
        x = math.sqrt(x)
        previous = z
        y *= 0.5
        z -= math.pow(1 - x, 2) * y
        if z == previous:
            return z / 3


def _sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y, z = 1.0, x
    while True:
        x *= x
        previous = z
        z += x * y
        y += y
        if z == previous:
            return z


def _alpha(index_bits: int) -> float:
    return {4: 0.673, 5: 0.697, 6: 0.709}.get(index_bits, 0.7213 / (1.0 + 1.079 / (1 << index_bits)))


# -- several sketches -------------------------------------------------------------------------

def template(sketches: list[Sketch]) -> tuple[int, int]:
    """(index bits, minhash bits) a union of these can have: the fewest index bits, and
    minhash bits only if all of them have the same."""
    index_bits, minhash_bits = sketches[0].index_bits, sketches[0].minhash_bits
    for s in sketches[1:]:
        index_bits = min(index_bits, s.index_bits)
        if minhash_bits != s.minhash_bits:
            minhash_bits = 0
    return index_bits, minhash_bits


def union_into(target: Sketch, other: Sketch) -> None:
    """Fold `other` (with at least target's index bits) into target, register by register:
    whole values when target keeps minhash bits, else the ranks only."""
    whole = target.minhash_bits != 0
    values = np.array(other.registers, dtype=np.uint64)
    if not whole:
        values >>= np.uint64(other.minhash_bits)
    # register r of the larger sketch lands on r mod the smaller one's count: the rows of
    # this reshape are the sets of registers that land on one
    folded = values.reshape(-1, len(target.registers)).max(axis=0)
    target.registers = np.maximum(np.array(target.registers, dtype=np.uint64), folded).tolist()
    if whole:
        target.cache = 0


def union(sketches: list[Sketch]) -> Sketch:
    result = Sketch(*template(sketches))
    for s in sketches:
        union_into(result, s)
    return result


def union_count(sketches: list[Sketch]) -> int:
    return union(sketches).count()


def intersect_count(sketches: list[Sketch]) -> int:
    if template(sketches)[1] == 0:
        return _inclusion_exclusion(sketches)
    j = similarity(sketches)
    if math.isnan(j):
        return 0
    return _round(union_count(sketches) * j)


def _inclusion_exclusion(sketches: list[Sketch]) -> int:
    """Plain HLL intersection of 2 or 3 sketches from their counts and their unions'."""
    union_est = union_count(sketches)
    total = 0
    for s in sketches:
        total = min(total + s.count(), _M64)  # the server saturates rather than wrap
    if len(sketches) == 2:
        return total - union_est if total > union_est else 0
    a, b, c = sketches
    pairs = intersect_count([a, b]) + intersect_count([b, c]) + intersect_count([a, c])
    return max(0, union_est - (total - pairs))


def similarity(sketches: list[Sketch]) -> float:
    index_bits, minhash_bits = template(sketches)
    if minhash_bits == 0:
        return _inclusion_exclusion(sketches) / union_count(sketches) if union_count(sketches) else math.nan
    with_data = [s.has_data() for s in sketches]
    if not all(with_data):
        return 0.0 if any(with_data) else math.nan
    n_union = union(sketches).used_registers()
    common = Sketch(index_bits, minhash_bits)
    union_into(common, sketches[0])
    for s in sketches[1:]:
        # a register survives only if every register landing on it holds the same value
        regs = np.array(common.registers, dtype=np.uint64)
        same = (np.array(s.registers, dtype=np.uint64).reshape(-1, len(regs)) == regs).all(axis=0)
        common.registers = np.where(same, regs, np.uint64(0)).tolist()
    collisions = 0.0
    if len(sketches) == 2:
        collisions = _expected_collisions(index_bits, minhash_bits, sketches[0].count(), sketches[1].count())
    return max(0.0, (common.used_registers() - collisions) / n_union)


def _expected_collisions(index_bits: int, minhash_bits: int, card0: int, card1: int) -> float:
    """How many registers two unrelated sets of these sizes would share by chance (the
    HyperMinHash paper's correction for a two-set Jaccard estimate)."""
    n = 1 << index_bits
    total = 0.0
    for i in range(1, HLL_MAX_VALUE + 1):
        b1 = (math.pow(2, -i) if i != HLL_MAX_VALUE else 0.0) / n
        b2 = math.pow(2, -i + 1) / n
        pr_x = math.pow(1 - b1, float(card0)) - math.pow(1 - b2, float(card0))
        pr_y = math.pow(1 - b1, float(card1)) - math.pow(1 - b2, float(card1))
        total += pr_x * pr_y
    return total * n / math.pow(2, minhash_bits)
