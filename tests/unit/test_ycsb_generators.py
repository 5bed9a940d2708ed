"""Statistical tests of the YCSB generators against the formulas in harness spec section 1.5.

Tolerances: a frequency estimated from N draws has binomial standard error
sqrt(p(1 − p)/N); asserting within 4.5 of those keeps a correct generator's chance of a
spurious failure per check below 1e-5, while the seeds make every run identical anyway.
"""

import math
import random
import threading
from collections import Counter

import pytest

from workloads.generators import (
    SCRAMBLED_ITEM_COUNT,
    SCRAMBLED_ZETAN,
    ZIPFIAN_CONSTANT,
    AcknowledgedCounterGenerator,
    CounterGenerator,
    DiscreteGenerator,
    ExponentialGenerator,
    HotspotGenerator,
    ScrambledZipfianGenerator,
    SequentialGenerator,
    SkewedLatestGenerator,
    UniformGenerator,
    ZipfianGenerator,
    fnvhash64,
    zeta,
)

THETA = ZIPFIAN_CONSTANT


def within_binomial_error(observed: int, draws: int, p: float, sigmas: float = 4.5) -> bool:
    return abs(observed / draws - p) <= sigmas * math.sqrt(p * (1 - p) / draws)


def draw(generator, n: int) -> Counter:
    return Counter(generator.next_value() for _ in range(n))


# -- fnvhash64 and zeta ------------------------------------------------------------------


def test_fnvhash64_matches_ycsb_first_keys():
    # YCSB's hashed load phase names its first records user6284781860667377211 and
    # user8517097267634966620 (key numbers 0 and 1).
    assert fnvhash64(0) == 6284781860667377211
    assert fnvhash64(1) == 8517097267634966620


def test_fnvhash64_is_fnv1a_over_little_endian_bytes_then_java_abs():
    value = 0x0102030405060708
    h = 0xCBF29CE484222325
    for byte in [8, 7, 6, 5, 4, 3, 2, 1]:
        h = ((h ^ byte) * 1099511628211) % 2**64
    signed = h - 2**64 if h >= 2**63 else h
    assert fnvhash64(value) == abs(signed)
    assert all(fnvhash64(v) >= 0 for v in range(10_000))


def test_zeta_direct_and_incremental_agree():
    direct = sum(1 / i**THETA for i in range(1, 5001))
    assert zeta(5000, THETA) == pytest.approx(direct, rel=1e-12)
    assert zeta(5000, THETA, start=1200, initial_sum=zeta(1200, THETA)) == pytest.approx(direct, rel=1e-12)


def test_scrambled_zetan_constant_matches_the_item_space():
    # zeta(10^10) is too slow to sum here; extend zeta(10^6) by the Euler–Maclaurin tail
    # ∫x^−θ dx + (f(b) − f(a))/2, whose next term (~θ·a^(−θ−1)/12 ≈ 1e−7) is far below 1e−6.
    a, b = 10**6, SCRAMBLED_ITEM_COUNT + 1
    tail = (b ** (1 - THETA) - a ** (1 - THETA)) / (1 - THETA) + (b**-THETA - a**-THETA) / 2
    assert zeta(a, THETA) + tail == pytest.approx(SCRAMBLED_ZETAN, rel=1e-6)


# -- Zipfian -------------------------------------------------------------------------------


def gray_probability(k: int, n: int, zetan: float) -> float:
    """P(draw == k) of Gray's algorithm as YCSB implements it, for k ≥ 2."""
    eta = (1 - (2 / n) ** (1 - THETA)) / (1 - zeta(2, THETA) / zetan)
    second = (1 + 0.5**THETA) / zetan

    def u_below(j):  # the u under which the formula branch returns a value < j
        return min(1.0, max(second, ((j / n) ** (1 - THETA) - 1 + eta) / eta))

    return u_below(k + 1) - u_below(k)


def test_zipfian_most_popular_items_follow_one_over_i_to_theta():
    n, draws = 1000, 200_000
    counts = draw(ZipfianGenerator(0, n - 1, random.Random(7)), draws)
    zetan = zeta(n, THETA)
    # Items 0 and 1 come from exact branches, so they match p(i) = (i + 1)^−θ / zeta(n).
    for item in (0, 1):
        assert within_binomial_error(counts[item], draws, (item + 1) ** -THETA / zetan)
    # Gray's closed form only approximates the law from item 2 on (item 2 is ~18 % too
    # popular), so those are checked against the algorithm's own probabilities instead.
    for item in range(2, 20):
        assert within_binomial_error(counts[item], draws, gray_probability(item, n, zetan))
    assert set(counts) <= set(range(n))


def test_zipfian_growing_item_count_extends_zeta_incrementally():
    small = ZipfianGenerator(0, 99, random.Random(1))
    small.next_long(500)
    assert small._zetan == pytest.approx(zeta(500, THETA), rel=1e-12)
    assert all(0 <= small.next_long(500) < 500 for _ in range(2000))


def test_zipfian_offsets_by_lower_bound():
    values = draw(ZipfianGenerator(100, 199, random.Random(2)), 5000)
    assert min(values) == 100 and max(values) <= 199
    assert values.most_common(1)[0][0] == 100


# -- ScrambledZipfian ----------------------------------------------------------------------


def test_scrambled_zipfian_scatters_popular_items_over_the_range():
    n, draws = 1000, 100_000
    counts = draw(ScrambledZipfianGenerator(0, n - 1, random.Random(3)), draws)
    assert set(counts) <= set(range(n))
    # The most popular key is zipf item 0 hashed into the range, at about 1/ZETAN
    # (+ the ~1/n share of the 10^10-item tail folded onto every key by the modulo).
    top_key = fnvhash64(0) % n
    assert counts.most_common(1)[0][0] == top_key
    assert within_binomial_error(counts[top_key], draws, 1 / SCRAMBLED_ZETAN + 1 / n, sigmas=6)
    # No locality: the ten most popular keys are spread across the range, not clustered
    # at its low end as plain Zipfian would put them.
    top10 = sorted(key for key, _ in counts.most_common(10))
    assert top10[-1] - top10[0] > n / 2
    assert sum(key < n // 10 for key in top10) <= 4
    # Every decile still sees traffic (plain Zipfian would give the top decile ~70 %).
    deciles = Counter(key * 10 // n for key in counts.elements())
    assert all(0.03 < deciles[d] / draws < 0.25 for d in range(10))


def test_scrambled_zipfian_is_reproducible_with_a_seed():
    first = [ScrambledZipfianGenerator(0, 999, random.Random(5)).next_value() for _ in range(3)]
    again = [ScrambledZipfianGenerator(0, 999, random.Random(5)).next_value() for _ in range(3)]
    assert first == again


# -- SkewedLatest ------------------------------------------------------------------------


def test_skewed_latest_favours_the_newest_acknowledged_insert():
    counter = AcknowledgedCounterGenerator(1000)  # keys 0..999 loaded → last value 999
    generator = SkewedLatestGenerator(counter, random.Random(11))
    draws = 50_000
    counts = draw(generator, draws)
    zetan = zeta(999, THETA)
    # latest − zipf(latest): the newest key is zipf item 0, at 1/zeta(999).
    assert within_binomial_error(counts[999], draws, 1 / zetan)
    assert within_binomial_error(counts[998], draws, 0.5**THETA / zetan)
    assert max(counts) == 999 and min(counts) >= 1
    newest_tenth = sum(n for key, n in counts.items() if key >= 900)
    assert newest_tenth / draws > 0.6  # theory: zeta(100)/zeta(999) ≈ 0.71

    for _ in range(100):
        counter.acknowledge(counter.next_value())
    moved = draw(generator, 5000)
    assert moved.most_common(1)[0][0] == 1099
    assert max(moved) == 1099


# -- Hotspot, Exponential, Uniform, Sequential, Discrete ----------------------------------------


def test_hotspot_sends_the_hot_op_fraction_to_the_hot_data_fraction():
    draws = 100_000
    generator = HotspotGenerator(0, 9999, 0.2, 0.8, random.Random(13))
    counts = draw(generator, draws)
    hot = sum(n for key, n in counts.items() if key < 2000)
    # Cold draws never land in the hot set, so exactly the hot-op fraction is expected.
    assert within_binomial_error(hot, draws, 0.8)
    assert min(counts) == 0 and max(counts) == 9999


def test_exponential_percentile_of_draws_fall_below_the_range():
    draws = 100_000
    generator = ExponentialGenerator(95, 1000, random.Random(17))
    values = [generator.next_value() for _ in range(draws)]
    below = sum(v < 1000 for v in values)
    # int() truncation only moves values down, so P(value < 1000) = P(x < 1000) = 0.95.
    assert within_binomial_error(below, draws, 0.95)
    # Mean of the truncated exponential is 1/γ − ~0.5; its standard error is (1/γ)/sqrt(N).
    mean = 1 / generator.gamma
    assert abs(sum(values) / draws - (mean - 0.5)) < 4.5 * mean / math.sqrt(draws)


def test_uniform_covers_inclusive_bounds_evenly():
    draws = 60_000
    counts = draw(UniformGenerator(10, 15, random.Random(19)), draws)
    assert set(counts) == set(range(10, 16))
    assert all(within_binomial_error(counts[v], draws, 1 / 6) for v in range(10, 16))


def test_sequential_cycles_through_the_range():
    generator = SequentialGenerator(5, 7)
    assert [generator.next_value() for _ in range(7)] == [5, 6, 7, 5, 6, 7, 5]


def test_discrete_picks_by_weight_and_skips_zero_weights():
    draws = 50_000
    generator = DiscreteGenerator([(0.5, "READ"), (0.0, "SCAN"), (1.5, "UPDATE")], random.Random(23))
    counts = draw(generator, draws)
    assert set(counts) == {"READ", "UPDATE"}
    assert within_binomial_error(counts["READ"], draws, 0.25)


# -- Counters --------------------------------------------------------------------------------


def test_counter_hands_out_unique_values_across_threads():
    counter = CounterGenerator(100)
    seen: list[int] = []

    def take():
        seen.extend(counter.next_value() for _ in range(2000))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == list(range(100, 8100))
    assert counter.last_value() == 8099


def test_acknowledged_counter_advances_only_over_contiguous_acks():
    counter = AcknowledgedCounterGenerator(10)
    assert counter.last_value() == 9
    a, b, c = (counter.next_value() for _ in range(3))
    counter.acknowledge(c)
    counter.acknowledge(b)
    assert counter.last_value() == 9  # 10 still outstanding
    counter.acknowledge(a)
    assert counter.last_value() == 12


def test_acknowledged_counter_rejects_overflowing_the_window():
    counter = AcknowledgedCounterGenerator(0, window=4)
    keys = [counter.next_value() for _ in range(5)]
    for key in keys[1:4]:
        counter.acknowledge(key)
    with pytest.raises(RuntimeError, match="Too many unacknowledged"):
        counter.acknowledge(keys[4])  # would reuse key 0's slot while 0 is outstanding
    counter.acknowledge(keys[0])
    assert counter.last_value() == 3
