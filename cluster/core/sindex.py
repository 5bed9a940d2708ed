"""Secondary indexes: their definitions, as the server keeps them in its system metadata
(SMD), and which records an index query selects.

Definitions (as/src/sindex/sindex_manager.c). An index is an SMD item whose key is its
definition, `ns|set|bin|[c<context base64>|]itype|ktype` (itype `.` default, `L` list, `K`
map keys, `V` map values; ktype `I` numeric, `S` string, `B` blob, `G` geo2dsphere), and
whose value is its name. So creating a second name for a definition renames the index,
creating a name that exists with another definition fails (200), and a delete leaves a
tombstone (name None). Every entry carries the wall-clock ms stamp of the command that set
it; when nodes share entries the newest stamp wins, as SMD's merge does.

Queries (as/src/query/query.c). We keep no index structure: an index query evaluates the
index's predicate against every record of each partition it reads — the same test the
server applies to each record its index lookup returns (record_matches_query), so the
results are identical, at the cost of a full partition walk per query. Within a partition
records come in (bval, digest) order, the order of the server's per-partition tree: the
bval is the integer itself for a numeric index and a 64-bit hash of the value for strings
and blobs. Every record the query returns carries its bval, and a client resumes a
partition after the (bval, digest) it saw last. A record that matches with several values
(a list index over [1, 2, 3] queried for 1..3) is returned once, under its lowest bval.
Geo (geo2dsphere) queries and expression indexes are refused with UNSUPPORTED_FEATURE.
"""

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from cluster.lazy import lazy_import
from cluster.wire.particles import ParticleType
from cluster.wire.result_codes import AerospikeError, ResultCode

cdt = lazy_import("cluster.core.cdt")  # for indexes on CDT elements only

INDEX_FOUND, INDEX_NOT_FOUND, INDEX_MAX_COUNT = 200, 201, 204
MAX_INDEXES = 256  # per namespace (datamodel.h MAX_N_SINDEXES)

# index types: the info name, the SMD character; the value is what query field 26 carries
DEFAULT, LIST, MAPKEYS, MAPVALUES = 0, 1, 2, 3
ITYPE_NAMES = {"default": DEFAULT, "list": LIST, "mapkeys": MAPKEYS, "mapvalues": MAPVALUES}
ITYPE_SMD = {DEFAULT: ".", LIST: "L", MAPKEYS: "K", MAPVALUES: "V"}
# key types: the info name, the SMD character; the value is the particle type queries carry
NUMERIC, STRING, BLOB, GEO = (int(ParticleType.INTEGER), int(ParticleType.STRING), int(ParticleType.BLOB),
                              int(ParticleType.GEOJSON))
KTYPE_NAMES = {"numeric": NUMERIC, "string": STRING, "blob": BLOB, "geo2dsphere": GEO}
KTYPE_SMD = {NUMERIC: "I", STRING: "S", BLOB: "B", GEO: "G"}

# query fields (as/include/base/proto.h)
FIELD_BVAL_ARRAY, FIELD_INDEX_NAME, FIELD_INDEX_RANGE, FIELD_INDEX_CONTEXT = 15, 21, 22, 23
FIELD_INDEX_EXPRESSION, FIELD_INDEX_TYPE = 24, 26

# longest values the server's buffers take (a value this long or longer is refused)
_MAX_LEN = {"namespace": 32, "set": 64, "indexname": 64, "bin": 16, "indextype": 32, "type": 32,
            "indexdata": 64, "context": 2048, "exp": 2048}


class SindexError(Exception):
    """An info command's error: answered `ERROR:<code>:<message>`."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def _param(kv: dict[str, str], name: str, required: bool = False, aliases: tuple[str, ...] = ()) -> str | None:
    """A parameter as the server's as_info_parameter_get reads it: absent, empty or too long
    are each their own error (a namespace's is 20, any other 4)."""
    code = int(ResultCode.NAMESPACE_NOT_FOUND) if name == "namespace" else int(ResultCode.PARAMETER)
    value = next((kv[k] for k in (name, *aliases) if k in kv), None)
    if value is None:
        if required:
            raise SindexError(code, f"missing '{name}'")
        return None
    if not value:
        raise SindexError(code, f"missing '{name}' value")
    if len(value.encode()) >= _MAX_LEN[name]:
        raise SindexError(code, f"'{name}' value too long")
    return value


def namespace_param(kv: dict[str, str]) -> str:
    return _param(kv, "namespace", required=True, aliases=("ns",))


def indexname_param(kv: dict[str, str]) -> str:
    return _param(kv, "indexname", required=True)


@dataclass(frozen=True, slots=True)
class IndexDef:
    """What an index covers: records of `set_name` ("" = every set), the value of `bin_name`
    (or, with a context, the element the context leads to), of key type `ktype`, taken as
    the value itself (default) or each element of a list / key / value of a map."""

    set_name: str
    bin_name: str
    itype: int
    ktype: int
    context: str = ""  # the client's base64 of the msgpack context, "" for none

    def smd_key(self, ns: str) -> str:
        ctx = f"|c{self.context}" if self.context else ""
        return f"{ns}|{self.set_name}|{self.bin_name}{ctx}|{ITYPE_SMD[self.itype]}|{KTYPE_SMD[self.ktype]}"

    @classmethod
    def from_smd_key(cls, key: str) -> "IndexDef":
        _ns, set_name, bin_name, *rest = key.split("|")
        context = ""
        if len(rest) == 3:
            context = rest.pop(0)[1:]
        itype = next(t for t, c in ITYPE_SMD.items() if c == rest[0])
        ktype = next(t for t, c in KTYPE_SMD.items() if c == rest[1])
        return cls(set_name, bin_name, itype, ktype, context)

    def steps(self) -> list | None:
        """The context as cdt/context.py steps (None without one)."""
        return cdt.context.parse(cdt.values.unpack(base64.b64decode(self.context))) if self.context else None

    def values(self, record_bins: dict[str, tuple[int, bytes]], steps: list | None) -> list:
        """What a record puts in this index (sindex.c sbins_from_bin): the bin's value, or the
        element its context leads to, if of the key type; for a list index each element of a
        list, for a map index each key / value of a map, that is of the key type. Strings and
        blobs come with their particle-type prefix."""
        found = record_bins.get(self.bin_name)
        if found is None:
            return []
        cdt_values = cdt.values  # once per record: a lazy module's attribute costs ~0.5 µs
        value = cdt_values.from_particle(*found)
        if steps is not None:
            if not isinstance(value, (cdt_values.CdtList, cdt_values.CdtMap)):
                return []
            try:
                value = cdt.context.find(value, steps, modify=False).value
            except AerospikeError:
                return []
        if isinstance(value, cdt_values.CdtList):
            elements = value if self.itype == LIST else ()
        elif isinstance(value, cdt_values.CdtMap):
            elements = (value.items.keys() if self.itype == MAPKEYS
                        else value.items.values() if self.itype == MAPVALUES else ())
        else:
            elements = (value,) if self.itype == DEFAULT else ()
        if self.ktype == NUMERIC:
            return [e for e in elements if isinstance(e, int) and not isinstance(e, bool)]
        return [e for e in elements if isinstance(e, bytes) and e[:1] == bytes((self.ktype,))]

    def listing(self, ns: str, name: str) -> str:
        """One `sindex-list` entry (ours are always readable: nothing to build)."""
        ktype = next(n for n, t in KTYPE_NAMES.items() if t == self.ktype)
        itype = next(n for n, t in ITYPE_NAMES.items() if t == self.itype)
        return (f"ns={ns}:indexname={name}:set={self.set_name or 'null'}:bin={self.bin_name}:type={ktype}"
                f":indextype={itype}:context={self.context or 'null'}:exp=null:state=RW")


def _check_context(b64: str) -> None:
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise SindexError(int(ResultCode.PARAMETER), "'context' invalid base64") from None
    try:
        cdt.context.parse(cdt.values.unpack(raw))
    except AerospikeError:
        raise SindexError(int(ResultCode.PARAMETER), "'context' invalid cdt context") from None


def parse_create(kv: dict[str, str]) -> tuple[str, str, IndexDef]:
    """(namespace, index name, definition) of `sindex-create`, in both forms the clients send:
    `indexdata=<bin>,<type>` (before server 8.1) and `bin=<bin>;type=<type>` (8.1), with the
    server's checks in its order and its messages."""
    name = indexname_param(kv)
    ns = namespace_param(kv)
    set_name = _param(kv, "set") or ""
    ctx = _param(kv, "context") or ""
    if ctx:
        _check_context(ctx)
    itype_text = _param(kv, "indextype")
    if itype_text is not None and itype_text.lower() == "set":
        raise SindexError(int(ResultCode.UNSUPPORTED_FEATURE), "set indexes are not implemented")
    itype = ITYPE_NAMES.get((itype_text or "default").lower())
    if itype is None:
        raise SindexError(int(ResultCode.PARAMETER),
                          "bad 'indextype' - must be one of 'default', 'list', 'mapkeys', 'mapvalues'")
    indexdata, type_text = _param(kv, "indexdata"), _param(kv, "type")
    if indexdata is None and type_text is None:
        raise SindexError(int(ResultCode.PARAMETER), "both 'indexdata' and 'type' are missing")
    if indexdata is not None and type_text is not None:
        raise SindexError(int(ResultCode.PARAMETER), "both 'indexdata' and 'type' are specified")
    if type_text is not None:
        ktype = KTYPE_NAMES.get(type_text.lower())
        if ktype is None:
            raise SindexError(int(ResultCode.PARAMETER),
                              "bad 'type' - must be one of 'numeric', 'string', 'blob', 'geo2dsphere'")
        if _param(kv, "exp") is not None:
            raise SindexError(int(ResultCode.UNSUPPORTED_FEATURE), "expression indexes are not implemented")
        bin_name = _param(kv, "bin")
        if bin_name is None:
            raise SindexError(int(ResultCode.PARAMETER), "both 'bin' and 'exp' are missing")
    else:
        bin_name, comma, type_text = indexdata.partition(",")
        if not comma:
            raise SindexError(int(ResultCode.PARAMETER), "'indexdata' missing bin type")
        if not bin_name:
            raise SindexError(int(ResultCode.PARAMETER), "'indexdata' missing bin name")
        if len(bin_name.encode()) >= _MAX_LEN["bin"]:
            raise SindexError(int(ResultCode.PARAMETER), "'indexdata' bin name too long")
        ktype = KTYPE_NAMES.get(type_text.lower())
        if ktype is None:
            raise SindexError(int(ResultCode.PARAMETER), "bad 'indexdata' bin type - must be one of 'numeric', "
                                                         "'string', 'blob', 'geo2dsphere'")
    if itype == MAPKEYS and ktype == GEO:
        raise SindexError(int(ResultCode.PARAMETER), "bad 'indexdata' bin type for 'indextype' 'mapkeys' - "
                                                     "must be one of 'numeric', 'string', 'blob'")
    return ns, name, IndexDef(set_name, bin_name, itype, ktype, ctx)


Entry = tuple[str | None, int]  # (index name, None once deleted; stamp)


class Catalog:
    """One namespace's SMD entries for its indexes: smd key -> (name | None, stamp)."""

    def __init__(self, ns: str, entries: dict[str, Entry] | None = None):
        self.ns = ns
        self.entries: dict[str, Entry] = dict(entries or {})

    def _named(self, name: str) -> list[str]:
        return [key for key, (n, _stamp) in self.entries.items() if n == name]

    def create(self, name: str, index: IndexDef) -> str | None:
        """The smd key to set to `name`, or None when it already is (the server's ok)."""
        key = index.smd_key(self.ns)
        named = self._named(name)
        if len(named) > 1:
            raise SindexError(INDEX_FOUND, "'indexname' already exists with multiple definitions")
        if named:
            if named[0] != key:
                raise SindexError(INDEX_FOUND, "'indexname' already exists with different definition")
            return None
        if self.entries.get(key, (None, 0))[0] is None and len(self.live()) >= MAX_INDEXES:
            raise SindexError(INDEX_MAX_COUNT, "already at sindex definition limit")
        return key

    def delete(self, name: str) -> str | None:
        """The smd key to tombstone, or None when no index has that name (the server's ok)."""
        named = self._named(name)
        if len(named) > 1:
            raise SindexError(INDEX_FOUND, "'indexname' is not unique")
        return named[0] if named else None

    def merge(self, key: str, name: str | None, stamp: int) -> bool:
        """Take an entry if it is newer than ours; True if it changed anything."""
        ours = self.entries.get(key)
        if ours is not None and (stamp, name or "") <= (ours[1], ours[0] or ""):
            return False
        IndexDef.from_smd_key(key)  # a malformed key raises here, before it is kept
        self.entries[key] = (name, stamp)
        return True

    def next_stamp(self, key: str, now_ms: int) -> int:
        return max(now_ms, self.entries.get(key, (None, 0))[1] + 1)

    def live(self) -> dict[str, IndexDef]:
        """name -> definition of the indexes in force. Should two definitions carry one name
        (creates racing on two nodes) the older keeps it, as the server ignores a create whose
        name is in use; every node decides alike."""
        out: dict[str, IndexDef] = {}
        for key, (name, _stamp) in sorted(self.entries.items(), key=lambda kv: (kv[1][1], kv[0])):
            if name is not None and name not in out:
                out[name] = IndexDef.from_smd_key(key)
        return out

    def find(self, set_name: str, bin_name: str, itype: int, ktype: int, context: bytes | None) -> IndexDef | None:
        """The index a query names by definition: on the query's set, else a set-less one."""
        ctx = base64.b64encode(context).decode() if context else ""
        live = set(self.live().values())
        for candidate_set in dict.fromkeys((set_name, "")):
            index = IndexDef(candidate_set, bin_name, itype, ktype, ctx)
            if index in live:
                return index
        return None


# -- queries ----------------------------------------------------------------------------

_U32, _I64 = struct.Struct(">I"), struct.Struct(">q")


def _bad(message: str) -> AerospikeError:
    return AerospikeError(ResultCode.PARAMETER, message)


def bval_of_bytes(value: bytes) -> int:
    """A string's or blob's place in the index: a stable signed 64-bit hash (the server
    uses wyhash; the value is opaque to clients, which only hand it back to resume)."""
    return int.from_bytes(hashlib.blake2b(value, digest_size=8).digest(), "little", signed=True)


@dataclass(frozen=True, slots=True)
class IndexQuery:
    """What an index query selects: the index, and the values (an integer range, or one
    string or blob with its particle prefix) an indexed element must have."""

    index: IndexDef
    low: int = 0
    high: int = 0
    value: bytes = b""
    steps: list | None = None  # the index's context, decoded once per query

    def bval(self, record_bins: dict[str, tuple[int, bytes]]) -> int | None:
        """The record's (lowest) matching bval, None if it does not match."""
        values = self.index.values(record_bins, self.steps)
        if self.index.ktype == NUMERIC:
            return min((v for v in values if self.low <= v <= self.high), default=None)
        return bval_of_bytes(self.value[1:]) if self.value in values else None


def has_index_filter(fields: dict[int, bytes]) -> bool:
    return FIELD_INDEX_RANGE in fields or FIELD_INDEX_NAME in fields


def parse_query(fields: dict[int, bytes], set_name: str, catalog: Catalog) -> IndexQuery:
    """The index query a scan request's fields 21-26 describe (query.c get_query_range_and_def
    and find_sindex). PARAMETER (4) for a malformed filter, INDEX_NOT_FOUND (201) for one no
    index serves, UNSUPPORTED_FEATURE (16) for geo filters and expression indexes."""
    if FIELD_INDEX_EXPRESSION in fields:
        raise AerospikeError(ResultCode.UNSUPPORTED_FEATURE, "expression indexes are not implemented")
    data = fields.get(FIELD_INDEX_RANGE, b"")
    if len(data) < 2 or data[0] != 1:
        raise _bad("an index filter is exactly one range")
    name_len = data[1]
    bin_name = data[2:2 + name_len].decode("utf-8", errors="replace")
    pos = 2 + name_len
    if len(data) <= pos:
        raise _bad("index range without a particle type")
    ktype, body = data[pos], data[pos + 1:]
    itype_raw = fields.get(FIELD_INDEX_TYPE)
    if itype_raw is not None and len(itype_raw) != 1:
        raise _bad("bad index type field")
    itype = itype_raw[0] if itype_raw else DEFAULT
    context = fields.get(FIELD_INDEX_CONTEXT)
    if context is not None:
        try:
            cdt.context.parse(cdt.values.unpack(context))
        except AerospikeError:
            raise _bad("invalid index context") from None
    low = high = 0
    value = b""
    if ktype == NUMERIC:
        if len(body) < 24 or _U32.unpack_from(body, 0)[0] != 8 or _U32.unpack_from(body, 12)[0] != 8:
            raise _bad("an integer range is two 8-byte integers")
        low, high = _I64.unpack_from(body, 4)[0], _I64.unpack_from(body, 16)[0]
        if low > high:
            raise _bad(f"invalid range {low}..{high}")
    elif ktype in (STRING, BLOB):
        if len(body) < 4 or len(body) < 4 + _U32.unpack_from(body, 0)[0]:
            raise _bad("cannot parse the index value")
        value = bytes((ktype,)) + body[4:4 + _U32.unpack_from(body, 0)[0]]  # the end value repeats it
    elif ktype == GEO:
        raise AerospikeError(ResultCode.UNSUPPORTED_FEATURE, "geo index queries are not implemented")
    else:
        raise _bad(f"invalid particle type {ktype} in an index filter")
    index_name = fields.get(FIELD_INDEX_NAME)
    if index_name is not None:
        index = catalog.live().get(index_name.decode("utf-8", errors="replace"))
    else:
        index = catalog.find(set_name, bin_name, itype, ktype, context)
    if index is None:
        raise AerospikeError(INDEX_NOT_FOUND, "no index serves this query")
    return IndexQuery(index, low, high, value, index.steps())
