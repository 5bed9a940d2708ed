"""The CDT op codes and the arguments each one takes (as_cdt_optype, cdt.c cdt_op_table).

Argument kinds: `i` a signed index or rank, `u` an unsigned count or flags word,
`p` any msgpack value (may hold WILDCARD / INF), `s` a value to store (may not).
Trailing optional arguments get their defaults; too few or too many is PARAMETER (4).
"""

from cluster.wire.result_codes import AerospikeError, ResultCode

from .values import is_storable

ALL = 0xFFFFFFFF  # "to the end": the default count of ranges

# name: (code, argument kinds, how many trailing ones are optional)
LIST_OPS = {
    "set_type": (0, "u", 0),
    "append": (1, "suu", 2),
    "append_items": (2, "suu", 2),
    "insert": (3, "isu", 1),
    "insert_items": (4, "isu", 1),
    "pop": (5, "i", 0),
    "pop_range": (6, "iu", 1),
    "remove": (7, "i", 0),
    "remove_range": (8, "iu", 1),
    "set": (9, "isu", 1),
    "trim": (10, "iu", 0),
    "clear": (11, "", 0),
    "increment": (12, "ipuu", 3),
    "sort": (13, "u", 1),
    "size": (16, "", 0),
    "get": (17, "i", 0),
    "get_range": (18, "iu", 1),
    "get_by_index": (19, "ui", 0),
    "get_by_value": (20, "up", 0),
    "get_by_rank": (21, "ui", 0),
    "get_all_by_value": (22, "up", 0),
    "get_all_by_value_list": (23, "up", 0),
    "get_by_index_range": (24, "uiu", 1),
    "get_by_value_interval": (25, "upp", 1),
    "get_by_rank_range": (26, "uiu", 1),
    "get_by_value_rel_rank_range": (27, "upiu", 1),
    "remove_by_index": (32, "ui", 0),
    "remove_by_value": (33, "up", 0),
    "remove_by_rank": (34, "ui", 0),
    "remove_all_by_value": (35, "up", 0),
    "remove_all_by_value_list": (36, "up", 0),
    "remove_by_index_range": (37, "uiu", 1),
    "remove_by_value_interval": (38, "upp", 1),
    "remove_by_rank_range": (39, "uiu", 1),
    "remove_by_value_rel_rank_range": (40, "upiu", 1),
}

MAP_OPS = {
    "set_type": (64, "u", 0),
    "add": (65, "ssu", 1),
    "add_items": (66, "su", 1),
    "put": (67, "ssuu", 2),
    "put_items": (68, "suu", 2),
    "replace": (69, "ss", 0),
    "replace_items": (70, "s", 0),
    "increment": (73, "ppu", 2),
    "decrement": (74, "ppu", 2),
    "clear": (75, "", 0),
    "remove_by_key": (76, "up", 0),
    "remove_by_index": (77, "ui", 0),
    "remove_by_value": (78, "up", 0),
    "remove_by_rank": (79, "ui", 0),
    "remove_by_key_list": (81, "up", 0),
    "remove_all_by_value": (82, "up", 0),
    "remove_by_value_list": (83, "up", 0),
    "remove_by_key_interval": (84, "upp", 1),
    "remove_by_index_range": (85, "uiu", 1),
    "remove_by_value_interval": (86, "upp", 1),
    "remove_by_rank_range": (87, "uiu", 1),
    "remove_by_key_rel_index_range": (88, "upiu", 1),
    "remove_by_value_rel_rank_range": (89, "upiu", 1),
    "size": (96, "", 0),
    "get_by_key": (97, "up", 0),
    "get_by_index": (98, "ui", 0),
    "get_by_value": (99, "up", 0),
    "get_by_rank": (100, "ui", 0),
    "get_all_by_value": (102, "up", 0),
    "get_by_key_interval": (103, "upp", 1),
    "get_by_index_range": (104, "uiu", 1),
    "get_by_value_interval": (105, "upp", 1),
    "get_by_rank_range": (106, "uiu", 1),
    "get_by_key_list": (107, "up", 0),
    "get_by_value_list": (108, "up", 0),
    "get_by_key_rel_index_range": (109, "upiu", 1),
    "get_by_value_rel_rank_range": (110, "upiu", 1),
}

NAMES = {code: name for name, (code, _, _) in LIST_OPS.items()}
MAP_NAMES = {code: name for name, (code, _, _) in MAP_OPS.items()}
_SPECS = {c: (k, o) for c, k, o in [*LIST_OPS.values(), *MAP_OPS.values()]}

LIST_READS = frozenset({16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27})
MAP_READS = frozenset(range(96, 111)) - {101}
CONTEXT_EVAL = 0xFF


def is_list_op(code: int) -> bool:
    return code < 64


def op_name(code: int) -> str:
    return NAMES.get(code) or MAP_NAMES.get(code) or f"op {code}"


def parse_args(code: int, args: list) -> "Args":
    """Check an op's arguments against its kinds; the optional ones absent become None."""
    spec = _SPECS.get(code)
    if spec is None:
        raise AerospikeError(ResultCode.PARAMETER, f"unknown CDT op {code}")
    kinds, optional = spec
    if not len(kinds) - optional <= len(args) <= len(kinds):
        raise AerospikeError(ResultCode.PARAMETER,
                             f"{op_name(code)} takes {len(kinds) - optional}..{len(kinds)} arguments, not {len(args)}")
    for kind, arg in zip(kinds, args, strict=False):
        if kind in "iu" and (not isinstance(arg, int) or isinstance(arg, bool) or (kind == "u" and arg < 0)):
            raise AerospikeError(ResultCode.PARAMETER, f"{op_name(code)}: expected an integer, got {arg!r}")
        if kind == "s" and not is_storable(arg):
            raise AerospikeError(ResultCode.PARAMETER, f"{op_name(code)}: wildcard/infinity cannot be stored")
    return Args(list(args) + [None] * (len(kinds) - len(args)), len(args))


class Args(list):
    """Parsed arguments; remembers how many the client sent, because an absent range end
    means "to the end" while an explicit nil is a real (lowest) bound."""

    def __init__(self, values, sent: int):
        super().__init__(values)
        self.sent = sent

    def given(self, i: int) -> bool:
        return i < self.sent
