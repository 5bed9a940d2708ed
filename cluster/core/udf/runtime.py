"""One Lua 5.4 state per node, sandboxed, running the registered UDF modules.

Lua 5.4 because the server embeds it (modules/lua in its source). The node runs one
transaction at a time on its event loop, so one state serves them all; a module is
(re)loaded when its registered text changes. Nothing a UDF does can take the node down:
errors come back as text, every call runs under an instruction budget (a UDF looping
forever fails with "UDF exceeded its execution budget" instead of stalling the loop) and
the state under a memory cap (lupa's max_memory: an allocation beyond it fails inside Lua
and the call fails with Lua's "not enough memory").
"""

import logging
import time
from collections.abc import Callable

import lupa.lua54 as lua

from .prelude import PRELUDE
from .values import Converter

log = logging.getLogger("cluster.udf")

INSTRUCTIONS = 50_000_000  # per call: ~ a second of Lua, far above what a record UDF needs
MAX_MEMORY = 256 * 1024 * 1024  # bytes the Lua state may hold
# what crossing into Lua may raise outside a UDF's own pcall (the state's memory cap, mostly)
LUA_ERRORS = (lua.LuaError, MemoryError)
_LEVELS = {b"warn": logging.WARNING, b"info": logging.INFO, b"debug": logging.DEBUG, b"trace": logging.DEBUG}


class LuaRuntime:
    def __init__(self, source_of: Callable[[str], tuple[str, str] | None], chunk_dir: str = "udf",
                 instructions: int = INSTRUCTIONS, max_memory: int = MAX_MEMORY):
        """`source_of(module)`: (text, version) of a registered module, None if unknown."""
        self.source_of = source_of
        self.chunk_dir = chunk_dir  # names modules in error messages, as the server's user-path
        self.instructions = instructions
        self.lua = lua.LuaRuntime(encoding=None, register_eval=False, register_builtins=False,
                                  unpack_returned_tuples=True, max_memory=max_memory)
        host = self.lua.table_from({b"log": self._log, b"now_ms": lambda: time.time_ns() // 1_000_000,
                                    b"module": self._require})
        self.api = self.lua.execute(PRELUDE, host)
        self.values = Converter(self.lua, self.api)
        self._loaded: dict[str, str] = {}  # module -> version loaded

    def _chunkname(self, filename: str) -> bytes:
        return f"{self.chunk_dir}/{filename}".encode()

    @staticmethod
    def _log(level: bytes, text: bytes) -> None:
        """A UDF's warn/info/debug/trace, into the node's log at that level (trace: debug)."""
        log.log(_LEVELS.get(level, logging.INFO), "%s", text.decode(errors="replace"))

    def compile_error(self, filename: str, source: bytes) -> str | None:
        """None if `source` compiles, else Lua's message ("<file>:<line>: <why>")."""
        try:
            err = self.api.compile(source, self._chunkname(filename))
        except LUA_ERRORS as exc:
            return f"{filename}:0: {exc}"
        return None if err is None else err.decode(errors="replace")

    def _require(self, name: bytes) -> bool:
        return self.ensure(name.decode(errors="replace")) is None

    def ensure(self, module: str) -> str | None:
        """Load `module` (or reload it after a new registration): None if it is ready, else
        why not ("not found", a compile or load error)."""
        found = self.source_of(module)
        if found is None:
            self.forget(module)
            return "not found"
        text, version = found
        if self._loaded.get(module) == version:
            return None
        try:
            err = self.api.install(module.encode(), text.encode(), self._chunkname(f"{module}.lua"),
                                   self.instructions)
        except LUA_ERRORS as exc:
            err = str(exc).encode()
        if err is not None:
            self.forget(module)
            return err.decode(errors="replace")
        self._loaded[module] = version
        return None

    def forget(self, module: str) -> None:
        self._loaded.pop(module, None)
        self.api.forget(module.encode())

    def call(self, module: str, function: str, record, args: list) -> tuple[bool, object]:
        """module.function(record, *args): (True, Lua result) or (False, error text)."""
        err = self.ensure(module)
        if err is not None:
            return False, err
        lua_args = self.lua.table_from([self.api.NIL if a is None else self.values.to_lua(a) for a in args])
        try:
            ok, result = self.api.call(module.encode(), function.encode(), record, lua_args, len(args),
                                       self.instructions)
        except lua.LuaError as exc:  # what escapes Lua's own pcall (memory exhausted in the bridge)
            return False, str(exc)
        if not ok:
            return False, "" if result is None else result.decode(errors="replace")
        return True, result
