"""The UDF modules registered on the cluster, and the info answers about them.

The server keeps its UDF modules in system metadata (SMD): one item per file, its value a
JSON object with the base64 text, shared with every member; `udf-list` hashes that JSON
(SHA-1), so the same module has the same hash on every node and in every client's cache.
We keep the same items, each with the stamp (wall-clock ms) of the command that set it;
a removal is kept as an entry without text so that it travels like a registration; the
newest stamp wins when members exchange entries (as truncate entries do, docs/cluster.md).
Persisted in <work-dir>/smd/UDF.json before the command is answered.

Pure: the caller provides the Lua compile check and does the sharing.
"""

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MAX_CONTENT = 1024 * 1024  # decoded bytes, as the server's MAX_UDF_CONTENT_LENGTH
UDF_TYPES = ("LUA",)


@dataclass(frozen=True)
class Entry:
    content64: str | None  # None: removed
    udf_type: str
    stamp: int

    def smd_value(self, filename: str) -> str:
        """The server's SMD value for the module (what its udf-list hash is taken of)."""
        return json.dumps({"content64": self.content64, "type": self.udf_type, "name": filename})


class UdfRegistry:
    def __init__(self, path: Path | None, compile_error: Callable[[str, bytes], str | None]):
        """`compile_error(filename, text)`: None if the Lua compiles, else "<file>:<line>: why"."""
        self.path = path
        self.compile_error = compile_error
        self.entries: dict[str, Entry] = {}
        self._decoded: dict[str, tuple[Entry, str, str]] = {}  # filename -> (entry, text, version)
        if path is not None and path.exists():
            for filename, e in json.loads(path.read_text()).items():
                self.entries[filename] = Entry(e["content64"], e["type"], e["stamp"])

    # -- what transactions use ----------------------------------------------------------

    def source_of(self, module: str) -> tuple[str, str] | None:
        """(text, version) of the module a transaction names (its file name without `.lua`)."""
        filename = f"{module}.lua"
        entry = self.entries.get(filename)
        if entry is None or entry.content64 is None:
            return None
        cached = self._decoded.get(filename)
        if cached is None or cached[0] is not entry:  # decoded once per registration, not per call
            text = base64.b64decode(entry.content64).decode("utf-8", errors="replace")
            cached = (entry, text, f"{entry.stamp}:{hashlib.sha1(entry.content64.encode()).hexdigest()}")
            self._decoded[filename] = cached
        return cached[1], cached[2]

    # -- info commands ----------------------------------------------------------------

    def put(self, kv: dict[str, str], stamp: int) -> tuple[str, Entry | None]:
        """`udf-put:filename=;content-len=;[udf-type=;]content=`: (answer, the entry taken)."""
        filename = kv.get("filename", "")
        stem, dot, ext = filename.partition(".")
        if not (stem and dot and ext):
            return "error=invalid_filename", None
        if "content-len" not in kv:
            return "error=invalid_content_len", None
        udf_type = kv.get("udf-type", "LUA")
        if udf_type not in UDF_TYPES:
            return "error=invalid_udf_type", None
        length = kv["content-len"]
        if not length.isdigit() or int(length) % 4:
            return "error=invalid_content_len", None
        content = kv.get("content")
        if content is None or len(content) != int(length):
            return "error=invalid_content", None
        if len(content) // 4 * 3 > MAX_CONTENT:
            return "error=invalid_udf_content_len,>1M", None
        try:
            text = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            return "error=invalid_base64_content", None
        err = self.compile_error(filename, text)
        if err is not None:
            line, message = _split_lua_error(err)
            encoded = base64.b64encode(message.encode()).decode()
            return f"error=compile_error;file={filename};line={line};message={encoded}", None
        entry = Entry(content, udf_type, self._next_stamp(filename, stamp))
        self._take(filename, entry)
        return "ok", entry

    def get(self, kv: dict[str, str]) -> str:
        filename = kv.get("filename", "")
        if not filename:
            return "error=invalid_filename"
        entry = self.entries.get(filename)
        if entry is None or entry.content64 is None:
            return "error=not_found"
        return f"type={entry.udf_type};content={entry.content64};"

    def list(self) -> str:
        return "".join(f"filename={name},hash={hashlib.sha1(e.smd_value(name).encode()).hexdigest()},"
                       f"type={e.udf_type};"
                       for name, e in sorted(self.entries.items()) if e.content64 is not None)

    def remove(self, kv: dict[str, str], stamp: int) -> tuple[str, Entry | None]:
        """`udf-remove:filename=`: ok even for an unknown module (as the server answers)."""
        filename = kv.get("filename", "")
        if not filename:
            return "error=invalid_filename", None
        current = self.entries.get(filename)
        if current is None or current.content64 is None:
            return "ok", None
        entry = Entry(None, current.udf_type, self._next_stamp(filename, stamp))
        self._take(filename, entry)
        return "ok", entry

    # -- sharing among members --------------------------------------------------------

    def merge(self, filename: str, entry: Entry) -> bool:
        """Take another member's entry if it is newer than ours. True if taken."""
        current = self.entries.get(filename)
        if current is not None and (entry.stamp, entry.content64 or "") <= (current.stamp, current.content64 or ""):
            return False
        self._take(filename, entry)
        return True

    def _next_stamp(self, filename: str, stamp: int) -> int:
        """A command's stamp: its clock, but after the entry it replaces (a later command wins)."""
        current = self.entries.get(filename)
        return stamp if current is None else max(stamp, current.stamp + 1)

    def _take(self, filename: str, entry: Entry) -> None:
        self.entries[filename] = entry
        self._persist()

    def _persist(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump({name: {"content64": e.content64, "type": e.udf_type, "stamp": e.stamp}
                       for name, e in self.entries.items()}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


def _split_lua_error(err: str) -> tuple[int, str]:
    """("<chunk>:<line>: why") -> (line, why), as the server reports a compile error."""
    parts = err.split(":", 2)
    if len(parts) == 3 and parts[1].isdigit():
        return int(parts[1]), parts[2].strip()
    return 0, err
