"""Arithmetic and bit ops, computed as the server's C computes them: int64 that wraps,
IEEE floats (division by zero gives an infinity, not an error), truncating integer
division, C's remainder, x86 shift counts; an integer division or remainder by zero is
UNKNOWN.
"""

import math
import operator
from collections.abc import Callable

from cluster.core.expressions.nodes import BOOL, FLOAT, I64_MIN, INT, U64, UNKNOWN, Node, bad, require, wrap

# -- arithmetic -------------------------------------------------------------------------------

def _fdiv(a: float, z: float) -> float:
    try:
        return a / z
    except ZeroDivisionError:  # IEEE division, as C does it
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, z)


def _idiv(a: int, z: int) -> object:
    if z == 0:
        return UNKNOWN
    quotient = abs(a) // abs(z)  # C truncates toward zero
    return wrap(quotient if (a < 0) == (z < 0) else -quotient)


def _fold(int_step, float_step, unary=None):
    """A variadic numeric op folding its arguments left to right (`unary` for one argument)."""
    def make(runs, is_float):
        step = float_step if is_float else int_step
        first, rest = runs[0], runs[1:]

        def run(rec):
            acc = first(rec)
            if acc is UNKNOWN:
                return UNKNOWN
            if not rest and unary is not None:
                return unary(acc, is_float)
            for arg in rest:
                value = arg(rec)
                if value is UNKNOWN:
                    return UNKNOWN
                acc = step(acc, value)
            return acc
        return run
    return make


def _div(runs, is_float):
    """div(a, b, c...) = a / (b * c ...); div(a) = 1 / a."""
    def run(rec):
        values = []
        for arg in runs:
            value = arg(rec)
            if value is UNKNOWN:
                return UNKNOWN
            values.append(value)
        if is_float:
            if len(values) == 1:
                return _fdiv(1.0, values[0])
            return _fdiv(values[0], math.prod(values[1:]))
        if len(values) == 1:
            return _idiv(1, values[0])
        divisor = 1
        for value in values[1:]:
            divisor = wrap(divisor * value)
        return _idiv(values[0], divisor)
    return run


_MATH = {
    20: _fold(lambda a, z: wrap(a + z), operator.add),
    21: _fold(lambda a, z: wrap(a - z), operator.sub, unary=lambda a, f: -a if f else wrap(-a)),
    22: _fold(lambda a, z: wrap(a * z), operator.mul),
    23: _div,
    50: _fold(min, min),
    51: _fold(max, max),
}


def build_math(b, code: int, n: int) -> Node:
    if n < 1:
        raise bad("arithmetic needs at least one argument")
    args = [b.next() for _ in range(n)]
    rtype = args[0].type
    for arg in args:
        require(arg, (INT, FLOAT), "arithmetic")
        if arg.type != rtype:
            raise bad("arithmetic on mixed int and float arguments")
    return Node(_MATH[code](tuple(a.run for a in args), rtype == FLOAT), rtype)


def _c_pow(base: float, exponent: float) -> float:
    try:
        return math.pow(base, exponent)
    except OverflowError:
        odd = exponent.is_integer() and exponent % 2 == 1
        return -math.inf if base < 0 and odd else math.inf
    except ValueError:  # a negative base to a fractional power, or 0 to a negative one
        return math.inf if base == 0 else math.nan


def _c_log(x: float) -> float:
    if x > 0:
        return math.log(x)
    return -math.inf if x == 0 else math.nan


def _c_floor_ceil(rounding):
    return lambda x: x if math.isinf(x) or math.isnan(x) else float(rounding(x))


def _to_int(x: float) -> int:
    if math.isnan(x) or not -(2.0 ** 63) <= x < 2.0 ** 63:
        return I64_MIN  # what the x86 conversion the server compiles to gives
    return int(x)


def _c_mod(a: int, z: int) -> object:
    if z == 0:
        return UNKNOWN
    rest = abs(a) % abs(z)  # C's remainder takes the dividend's sign
    return -rest if a < 0 else rest


def _lscan(x: int, bit: bool) -> int:
    u = (x if bit else ~x) & U64
    return -1 if u == 0 else 64 - u.bit_length()


def _rscan(x: int, bit: bool) -> int:
    u = (x if bit else ~x) & U64
    return -1 if u == 0 else 63 - ((u & -u).bit_length() - 1)


# fixed-arity ops: code -> (argument types, result type, function of the argument values)
_FIXED: dict[int, tuple[tuple[int, ...], int | None, Callable]] = {
    24: ((FLOAT, FLOAT), FLOAT, _c_pow),
    25: ((FLOAT, FLOAT), FLOAT, lambda x, base: _fdiv(_c_log(x), _c_log(base))),
    26: ((INT, INT), INT, _c_mod),
    28: ((FLOAT,), FLOAT, _c_floor_ceil(math.floor)),
    29: ((FLOAT,), FLOAT, _c_floor_ceil(math.ceil)),
    30: ((FLOAT,), INT, _to_int),
    31: ((INT,), FLOAT, float),
    35: ((INT,), INT, lambda x: ~x),
    36: ((INT, INT), INT, lambda x, s: wrap(x << (s & 63))),  # x86 takes the shift count mod 64
    37: ((INT, INT), INT, lambda x, s: wrap((x & U64) >> (s & 63))),
    38: ((INT, INT), INT, lambda x, s: x >> (s & 63)),
    39: ((INT,), INT, lambda x: (x & U64).bit_count()),
    40: ((INT, BOOL), INT, _lscan),
    41: ((INT, BOOL), INT, _rscan),
}


def build_fixed(b, code: int, n: int) -> Node:
    types, rtype, fn = _FIXED[code]
    args = b.args(n, len(types), f"op {code}")
    for arg, expected in zip(args, types, strict=True):
        require(arg, (expected,), f"op {code}")
    runs = tuple(a.run for a in args)
    if len(runs) == 1:
        (only,) = runs

        def run(rec):
            value = only(rec)
            return value if value is UNKNOWN else fn(value)
    else:
        first, second = runs

        def run(rec):
            a = first(rec)
            if a is UNKNOWN:
                return UNKNOWN
            z = second(rec)
            return z if z is UNKNOWN else fn(a, z)
    return Node(run, rtype)


def build_abs(b, code: int, n: int) -> Node:
    (arg,) = b.args(n, 1, "abs")
    require(arg, (INT, FLOAT), "abs")
    run = arg.run

    def absolute(rec):
        value = run(rec)
        return value if value is UNKNOWN else wrap(abs(value)) if arg.type == INT else abs(value)
    return Node(absolute, arg.type)


_INT_FOLDS = {32: operator.and_, 33: operator.or_, 34: operator.xor}


def build_int_fold(b, code: int, n: int) -> Node:
    if n < 1:
        raise bad("integer bit ops need at least one argument")
    args = [b.next() for _ in range(n)]
    for arg in args:
        require(arg, (INT,), "integer bit op")
    return Node(_fold(_INT_FOLDS[code], None)(tuple(a.run for a in args), False), INT)




ARITHMETIC_OPS = {
    **dict.fromkeys(_MATH, build_math),
    **dict.fromkeys(_FIXED, build_fixed),
    27: build_abs,
    **dict.fromkeys(_INT_FOLDS, build_int_fold),
}
