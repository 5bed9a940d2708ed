"""Info protocol (proto type 1): newline-separated commands, tab-separated replies.

A request line is echoed verbatim in the reply, then a TAB, the value and a newline.
Commands look like `name`, `name/arg` or `name:key=value;key=value`.
"""

from .proto import TYPE_INFO, frame


def split_request(body: bytes) -> list[str]:
    """Command lines of a request body; only newline-terminated segments count (as the server does)."""
    text = body.decode("utf-8", errors="replace")
    lines = text.split("\n")
    return [line for line in lines[:-1] if line]


def parse_command(line: str) -> tuple[str, list[str], dict[str, str]]:
    """Split `name/arg1/arg2:k=v;k=v` into (name, positional args, key/value params)."""
    head, _, params = line.partition(":")
    name, *args = head.split("/")
    kv: dict[str, str] = {}
    for item in params.split(";"):
        if item:
            key, _, value = item.partition("=")
            kv[key.strip()] = value.strip()
    return name, args, kv


def build_response(pairs: list[tuple[str, str]]) -> bytes:
    body = "".join(f"{cmd}\t{value}\n" for cmd, value in pairs).encode()
    return frame(TYPE_INFO, body)


def build_request(commands: list[str]) -> bytes:
    return frame(TYPE_INFO, "".join(c + "\n" for c in commands).encode())


def parse_response(body: bytes) -> dict[str, str]:
    """Map each echoed command to its value (a line without TAB has an empty value)."""
    out: dict[str, str] = {}
    for line in body.decode("utf-8", errors="replace").split("\n"):
        if line:
            name, _, value = line.partition("\t")
            out[name] = value
    return out


def error_value(code: int, message: str) -> str:
    return f"ERROR:{code}:{message}"
