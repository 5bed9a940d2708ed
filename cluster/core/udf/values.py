"""Values between the wire (particles), Python and Lua, as mod-lua converts them.

Into Lua: integer, float, string, bool as Lua's own; blobs as `bytes`; lists and maps as
the prelude's `list` and `map`. Out of Lua: the same back, and what has no bin type
(a plain table, a function, a record) becomes nil, as the server answers it.
"""

from collections.abc import Callable

from cluster.wire import particles
from cluster.wire.particles import ParticleType

MAX_DEPTH = 64  # nesting a UDF result may have (a list holding itself would never end)


class UdfValueError(Exception):
    """A value that cannot cross between Lua and the wire."""


class Converter:
    """Conversions against one Lua runtime (`api`: the table the prelude returned)."""

    def __init__(self, runtime, api):
        self.runtime = runtime
        self.api = api
        self.lua_type: Callable = runtime.globals().type  # Lua's type(), to tell tables apart

    # -- into Lua ---------------------------------------------------------------------

    def to_lua(self, value: object, depth: int = 0):
        if depth > MAX_DEPTH:
            raise UdfValueError("value nested too deep")
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, bytes | bytearray):
            return self.api.new_bytes(bytes(value))
        if isinstance(value, list | tuple):
            items = [self.api.NIL if v is None else self.to_lua(v, depth + 1) for v in value]
            return self.api.new_list(self.runtime.table_from(items), len(items))
        if isinstance(value, dict):
            keys = [self.to_lua(k, depth + 1) for k in value]
            values = [self.to_lua(v, depth + 1) for v in value.values()]
            return self.api.new_map(self.runtime.table_from(keys), self.runtime.table_from(values), len(keys))
        raise UdfValueError(f"cannot pass a {type(value).__name__} to Lua")

    def particle_to_lua(self, ptype: int, data: bytes):
        return self.to_lua(particles.decode(ptype, data))

    # -- out of Lua -------------------------------------------------------------------

    def to_python(self, value, depth: int = 0) -> object:
        if depth > MAX_DEPTH:
            raise UdfValueError("value nested too deep")
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, bytes):
            return value.decode("utf-8", errors="replace")
        kind = self.api.kind(value)
        if kind == b"list":
            items, n = self.api.list_items(value)
            # a hole (the prelude's NIL) has no kind: it comes out as None like any plain table
            return [self.to_python(items[i], depth + 1) for i in range(1, n + 1)]
        if kind == b"map":
            keys, values, n = self.api.map_items(value)
            out = {}
            for i in range(1, n + 1):
                key = self.to_python(keys[i], depth + 1)
                if isinstance(key, list):
                    key = tuple(key)
                if isinstance(key, dict):
                    continue  # no map keys in msgpack maps the clients can read
                out[key] = self.to_python(values[i], depth + 1)
            return out
        if kind == b"bytes":
            data, _type = self.api.bytes_string(value)
            return bytes(data)
        return None  # a plain table, a function, a record: no value the server returns

    def to_particle(self, value) -> tuple[int, bytes]:
        """A Lua value as a bin: (particle type, bytes); NULL for nil."""
        python = self.to_python(value)
        if python is None:
            return ParticleType.NULL, b""
        return particles.encode(python)
