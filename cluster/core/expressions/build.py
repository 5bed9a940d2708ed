"""Compile an expression from its wire form (msgpack) into a tree of Python closures.

The wire form is the server's (as/src/base/exp.c): an op is a msgpack list
``[code, args...]``, a constant is a msgpack scalar (strings carry their particle-type
prefix byte: 0x03 string, 0x04 blob, 0x12 HyperLogLog, 0x17 GeoJSON), a list constant is quoted
``[126, [...]]``, a map constant is a msgpack map. Every node has a type fixed when it is
compiled, checked as the server checks it: an ill-typed or malformed expression is a
PARAMETER error (4) before anything runs.

At run time a node is a function of a RecordView. Besides its typed value it may yield
UNKNOWN — a bin that is missing or of another type, a division by zero — which spreads
up through comparisons and arithmetic (and/or absorb it when another operand decides), as
the server's three-valued logic does; a filter that ends unknown does not match.
Arithmetic is in arithmetic.py, lists and maps in lists_maps.py.
"""

import operator
import re
from collections.abc import Callable
from functools import lru_cache

import msgpack

from cluster.core.expressions import geo, lists_maps
from cluster.core.expressions.arithmetic import ARITHMETIC_OPS
from cluster.core.expressions.nodes import (
    BLOB,
    BOOL,
    FLOAT,
    GEO,
    GEO_PARTICLE_HEAD,
    HLL,
    I64_MIN,
    INT,
    LIST,
    MAP,
    NIL,
    PARTICLE_OF,
    STR,
    TYPE_NAMES,
    UNKNOWN,
    Node,
    bad,
    constant,
    decode_particle,
    require,
    to_msgpack,
    unsupported,
    wrap,
)
from cluster.core.expressions.posix_regex import compile_posix
from cluster.core.expressions.record import RecordView
from cluster.wire import particles
from cluster.wire.particles import ParticleType

_MAX_BIN_NAME = 15
_VAR_NAME = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*\Z")
MAX_DEPTH = 200  # ops nested deeper are refused: evaluation recurses once per level


class Builder:
    """Reads one expression off the wire, compiling as it goes (one pass, like the server)."""

    def __init__(self, data: bytes):
        self.data = data
        self.reader = msgpack.Unpacker(raw=True, strict_map_key=False)
        self.reader.feed(data)
        self.scopes: list[dict[bytes, tuple[int, int]]] = []  # let-variables: name -> (slot, type)
        self.n_slots = 0
        self.depth = 0

    def compile(self) -> Node:
        node = self.next()
        if self.reader.tell() != len(self.data):
            raise bad("bytes after the expression")
        return node

    # -- reading the wire ---------------------------------------------------------------

    def _first_byte(self) -> int:
        pos = self.reader.tell()
        if pos >= len(self.data):
            raise bad("expression ends early")
        return self.data[pos]

    def at_list(self) -> bool:
        """Whether the next element is a msgpack list (an op, where an expression is expected)."""
        first = self._first_byte()
        return 0x90 <= first <= 0x9F or first in (0xDC, 0xDD)

    def raw(self) -> bytes:
        start = self.reader.tell()
        self.reader.skip()
        return self.data[start:self.reader.tell()]

    def integer(self, what: str) -> int:
        value = self.reader.unpack()
        if type(value) is not int:
            raise bad(f"{what} must be an integer")
        return value

    def name(self, what: str) -> bytes:
        value = self.reader.unpack()
        if not isinstance(value, bytes):
            raise bad(f"{what} must be a string")
        return value

    # -- one node -------------------------------------------------------------------------

    def next(self) -> Node:
        if self.at_list():
            n = self.reader.read_array_header()
            if n == 0:
                raise bad("empty op list")
            code = self.reader.unpack()
            if type(code) is not int:
                raise bad(f"op code {code!r} is not an integer")
            builder = OPS.get(code)
            if builder is None:
                raise (unsupported(UNSUPPORTED_OPS[code]) if code in UNSUPPORTED_OPS
                       else bad(f"unknown expression op {code}"))
            if self.depth == MAX_DEPTH:
                raise bad(f"ops nested more than {MAX_DEPTH} deep")
            self.depth += 1
            node = builder(self, code, n - 1)
            self.depth -= 1
            return node
        first = self._first_byte()
        if 0x80 <= first <= 0x8F or first in (0xDE, 0xDF):
            return constant(self.raw(), MAP)
        return self._scalar()

    def _scalar(self) -> Node:
        value = self.reader.unpack()
        if value is None:
            return constant(None, NIL)
        if type(value) is bool:
            return constant(value, BOOL)
        if type(value) is int:
            if not I64_MIN <= value <= -I64_MIN - 1:
                raise bad(f"integer {value} out of 64-bit range")
            return constant(value, INT)
        if type(value) is float:
            return constant(value, FLOAT)
        if isinstance(value, bytes) and value:
            prefix, body = value[0], value[1:]
            if prefix == ParticleType.STRING:
                return constant(body, STR)
            if prefix == ParticleType.BLOB:
                return constant(body, BLOB)
            if prefix == ParticleType.GEOJSON:
                try:  # the server reads a GeoJSON constant when it compiles the expression
                    geo.parse(body)
                except geo.GeoError as exc:
                    raise bad(f"GeoJSON constant: {exc}") from None
                return constant(GEO_PARTICLE_HEAD + body, GEO)
            if prefix == ParticleType.HLL:
                return constant(body, HLL)
            raise bad(f"constant of particle type {prefix}")
        raise bad(f"constant {value!r} of no expression type")

    def args(self, n: int, expected: int, what: str) -> list[Node]:
        if n != expected:
            raise bad(f"{what} takes {expected} arguments, not {n}")
        return [self.next() for _ in range(n)]


# -- comparisons ------------------------------------------------------------------------------

_COMPARE_OPS = {1: operator.eq, 2: operator.ne, 3: operator.gt, 4: operator.ge, 5: operator.lt, 6: operator.le}


def build_compare(b: Builder, code: int, n: int) -> Node:
    left, right = b.args(n, 2, "comparison")
    if left.type != right.type:
        raise bad(f"comparison of {TYPE_NAMES[left.type]} with {TYPE_NAMES[right.type]}")
    if left.type in (GEO, HLL):
        raise bad(f"comparison of {TYPE_NAMES[left.type]} values")
    test, lrun, rrun = _COMPARE_OPS[code], left.run, right.run
    if left.type == NIL:
        def compare(rec):
            if lrun(rec) is UNKNOWN or rrun(rec) is UNKNOWN:
                return UNKNOWN
            return test(0, 0)
    else:
        if left.type in (LIST, MAP):
            def decide(a, z):
                order = lists_maps.compare(a, z)
                return UNKNOWN if order is None else test(order, 0)
        else:  # bools, numbers and bytes compare as Python compares them
            decide = test

        def compare(rec):
            a = lrun(rec)
            if a is UNKNOWN:
                return UNKNOWN
            z = rrun(rec)
            if z is UNKNOWN:
                return UNKNOWN
            return decide(a, z)
    return Node(compare, BOOL)


@lru_cache(maxsize=1024)
def _geo_shape(particle: bytes):
    """The point or region of a GeoJSON value (cached: a scan compares the same constant
    with every record); UNKNOWN when a bin holds text the server could not read."""
    try:
        return geo.parse(geo.json_of_particle(particle))
    except geo.GeoError:
        return UNKNOWN


def build_cmp_geo(b: Builder, code: int, n: int) -> Node:
    """The client's CmpGeo(candidate, query): a point within a region or a region
    containing a point (geo.matches)."""
    candidate, query = b.args(n, 2, "geo comparison")
    require(candidate, (GEO,), "geo comparison")
    require(query, (GEO,), "geo comparison")
    crun, qrun = candidate.run, query.run

    def cmp_geo(rec):
        shapes = []
        for run in (crun, qrun):
            value = run(rec)
            shape = UNKNOWN if value is UNKNOWN else _geo_shape(bytes(value))
            if shape is UNKNOWN:
                return UNKNOWN
            shapes.append(shape)
        return geo.matches(*shapes)
    return Node(cmp_geo, BOOL)


def build_regex(b: Builder, code: int, n: int) -> Node:
    if n != 3:
        raise bad(f"regex takes 3 arguments, not {n}")
    flags = b.integer("regex flags")
    source = b.name("regex")
    subject = b.next()
    require(subject, (STR,), "regex")
    try:
        pattern = compile_posix(source.decode("utf-8"), flags)
    except (re.error, UnicodeDecodeError) as exc:
        raise bad(f"regex {source!r}: {exc}") from None
    search, run = pattern.search, subject.run

    def matches(rec):
        text = run(rec)
        if text is UNKNOWN:
            return UNKNOWN
        return search(text.decode("utf-8", errors="surrogateescape")) is not None
    return Node(matches, BOOL)


def build_in_list(b: Builder, code: int, n: int) -> Node:
    needle, haystack = b.args(n, 2, "in_list")
    require(haystack, (LIST,), "in_list")
    nrun, hrun, ntype = needle.run, haystack.run, needle.type

    def contains(rec):
        value = nrun(rec)
        if value is UNKNOWN:
            return UNKNOWN
        items = hrun(rec)
        if items is UNKNOWN:
            return UNKNOWN
        found = lists_maps.contains(items, to_msgpack(ntype, value))
        return UNKNOWN if found is None else found
    return Node(contains, BOOL)


# -- logic ------------------------------------------------------------------------------------

def build_logical(b: Builder, code: int, n: int) -> Node:
    if n < 2:
        raise bad(f"and/or/exclusive take at least 2 arguments, not {n}")
    runs = []
    for _ in range(n):
        arg = b.next()
        require(arg, (BOOL,), "and/or/exclusive")
        runs.append(arg.run)
    return Node(_LOGICAL[code](tuple(runs)), BOOL)


def _kleene(decisive: bool):
    """and (decisive False) / or (decisive True) over three-valued logic: the first decisive
    value settles it; else unknown if any argument was unknown."""
    def combine(runs):
        def run(rec):
            result = not decisive
            for arg in runs:
                value = arg(rec)
                if value is decisive:
                    return decisive
                if value is UNKNOWN:
                    result = UNKNOWN
            return result
        return run
    return combine


def _exactly_one(runs):
    def run(rec):
        seen = False
        for arg in runs:
            value = arg(rec)
            if value is UNKNOWN:
                return UNKNOWN
            if value:
                if seen:
                    return False
                seen = True
        return seen
    return run


_LOGICAL = {16: _kleene(False), 17: _kleene(True), 19: _exactly_one}


def build_not(b: Builder, code: int, n: int) -> Node:
    (arg,) = b.args(n, 1, "not")
    require(arg, (BOOL,), "not")
    run = arg.run

    def negate(rec):
        value = run(rec)
        return value if value is UNKNOWN else not value
    return Node(negate, BOOL)


# -- record metadata --------------------------------------------------------------------------

_META: dict[int, tuple[int, Callable[[RecordView], object]]] = {
    65: (INT, lambda rec: 0 if rec.in_memory else rec.size),  # device_size
    66: (INT, RecordView.last_update_ns),
    67: (INT, RecordView.since_update_ms),
    68: (INT, RecordView.void_time_ns),
    69: (INT, RecordView.ttl),
    70: (STR, lambda rec: rec.set_name.encode()),
    71: (BOOL, lambda rec: rec.key is not None),
    72: (BOOL, lambda rec: rec.tombstone),
    73: (INT, lambda rec: rec.size if rec.in_memory else 0),  # memory_size
    74: (INT, lambda rec: rec.size),  # record_size
}


def build_meta(b: Builder, code: int, n: int) -> Node:
    b.args(n, 0, f"metadata op {code}")
    rtype, run = _META[code]
    return Node(run, rtype)


def build_digest_modulo(b: Builder, code: int, n: int) -> Node:
    if n != 1:
        raise bad(f"digest_modulo takes 1 argument, not {n}")
    mod = wrap(b.integer("digest_modulo")) & 0xFFFFFFFF
    mod = abs(mod - (1 << 32) if mod >= 1 << 31 else mod)  # the server keeps it as an int32
    if mod == 0:
        raise bad("digest_modulo by zero")
    return Node(lambda rec: int.from_bytes(rec.digest[16:20], "little") % mod, INT)


def _bin_name(b: Builder, what: str) -> str:
    raw = b.name(what)
    if len(raw) > _MAX_BIN_NAME or b"\x00" in raw:
        raise bad(f"{what}: bin name {raw!r}")
    return raw.decode("utf-8", errors="replace")


def build_bin(b: Builder, code: int, n: int) -> Node:
    if n != 2:
        raise bad(f"bin takes 2 arguments, not {n}")
    rtype = b.integer("bin type")
    if not 0 <= rtype <= HLL:
        raise bad(f"bin type {rtype}")
    name = _bin_name(b, "bin")
    ptype = PARTICLE_OF[rtype]

    def read_bin(rec):
        found = rec.bins.get(name)
        if found is None or found[0] != ptype:
            return UNKNOWN
        return decode_particle(rtype, found[1])
    return Node(read_bin, rtype)


def build_bin_type(b: Builder, code: int, n: int) -> Node:
    if n != 1:
        raise bad(f"bin_type takes 1 argument, not {n}")
    name = _bin_name(b, "bin_type")

    def bin_type(rec):
        found = rec.bins.get(name)
        return ParticleType.NULL if found is None else found[0]
    return Node(bin_type, INT)


_KEY_PARTICLES = {INT: ParticleType.INTEGER, STR: ParticleType.STRING, BLOB: ParticleType.BLOB}


def build_key(b: Builder, code: int, n: int) -> Node:
    if n != 1:
        raise bad(f"key takes 1 argument, not {n}")
    rtype = b.integer("key type")
    if rtype not in _KEY_PARTICLES:
        raise bad(f"key of type {rtype}")
    ptype = _KEY_PARTICLES[rtype]

    def key(rec):
        stored = rec.key
        if stored is None or stored[0] != ptype or (rtype == INT and len(stored[1]) != 8):
            return UNKNOWN
        return particles.decode_int(stored[1]) if rtype == INT else stored[1]
    return Node(key, rtype)


# -- control flow and variables ---------------------------------------------------------------

def build_cond(b: Builder, code: int, n: int) -> Node:
    if n < 3 or n % 2 == 0:
        raise bad(f"cond takes condition/value pairs and a default, not {n} arguments")
    cases, rtype = [], None
    for i in range(n // 2):
        test, value = b.next(), b.next()
        require(test, (BOOL,), f"cond condition {i + 1}")
        rtype = _branch_type(value, rtype)
        cases.append((test.run, value.run))
    default = b.next()
    rtype = _branch_type(default, rtype)
    default_run = default.run

    def choose(rec):
        for test, value in cases:
            chosen = test(rec)
            if chosen is UNKNOWN:
                return UNKNOWN
            if chosen:
                return value(rec)
        return default_run(rec)
    return Node(choose, BOOL if rtype is None else rtype)


def _branch_type(branch: Node, rtype: int | None) -> int | None:
    """Every cond branch has one type; `unknown()` fits any."""
    if branch.unknown_literal:
        return rtype
    if rtype is not None and branch.type != rtype:
        raise bad(f"cond branches of types {TYPE_NAMES[rtype]} and {TYPE_NAMES[branch.type]}")
    return branch.type


def build_let(b: Builder, code: int, n: int) -> Node:
    if n < 3 or n % 2 == 0:
        raise bad(f"let takes name/value pairs and an expression, not {n} arguments")
    scope: dict[bytes, tuple[int, int]] = {}
    b.scopes.append(scope)
    defs = []
    for _ in range(n // 2):
        name = b.name("let variable")
        if not _VAR_NAME.match(name):
            raise bad(f"variable name {name!r}")
        if any(name in s for s in b.scopes):
            raise bad(f"variable {name!r} defined twice")
        value = b.next()  # compiled before the name is in scope: a definition cannot use itself
        slot, b.n_slots = b.n_slots, b.n_slots + 1
        scope[name] = (slot, value.type)
        defs.append((slot, value.run))
    body = b.next()
    b.scopes.pop()
    body_run = body.run

    def let(rec):
        slots = rec.vars
        for slot, run in defs:
            slots[slot] = run(rec)
        return body_run(rec)
    return Node(let, body.type)


def build_var(b: Builder, code: int, n: int) -> Node:
    if n != 1:
        raise bad(f"var takes 1 argument, not {n}")
    name = b.name("var")
    found = next((scope[name] for scope in reversed(b.scopes) if name in scope), None)
    if found is None:
        raise bad(f"undefined variable {name!r}")
    slot, rtype = found
    return Node(lambda rec: rec.vars[slot], rtype)


def build_quote(b: Builder, code: int, n: int) -> Node:
    if n != 1:
        raise bad(f"quote takes 1 argument, not {n}")
    if not b.at_list():
        raise bad("quote of something other than a list")
    return constant(b.raw(), LIST)


def build_unknown(b: Builder, code: int, n: int) -> Node:
    b.args(n, 0, "unknown")
    return Node(lambda _rec: UNKNOWN, BOOL, unknown_literal=True)


def build_map_parts(b: Builder, code: int, n: int) -> Node:
    (arg,) = b.args(n, 1, "map_keys/map_values")
    if arg.type != MAP:  # the server compiles it, but it never yields anything
        return Node(lambda _rec: UNKNOWN, LIST)
    run, values = arg.run, code == 102

    def parts(rec):
        value = run(rec)
        if value is UNKNOWN:
            return UNKNOWN
        listed = lists_maps.map_parts(value, values)
        return UNKNOWN if listed is None else listed
    return Node(parts, LIST)


OPS: dict[int, Callable[[Builder, int, int], Node]] = {
    0: build_unknown,
    **dict.fromkeys(_COMPARE_OPS, build_compare),
    7: build_regex, 8: build_cmp_geo,
    9: build_in_list,
    16: build_logical, 17: build_logical, 18: build_not, 19: build_logical,
    **ARITHMETIC_OPS,
    64: build_digest_modulo,
    **dict.fromkeys(_META, build_meta),
    80: build_key, 81: build_bin, 82: build_bin_type,
    101: build_map_parts, 102: build_map_parts,
    123: build_cond, 124: build_var, 125: build_let, 126: build_quote, 127: lists_maps.build_call,
}
# ops the server has that we refuse as not implemented rather than as malformed
UNSUPPORTED_OPS = {100: "result_remove", 122: "loop variables"}
