"""POSIX regular expressions (what the server's regcomp/regexec accept) run with Python's re.

The server passes the client's flags straight to glibc's regcomp: 1 extended syntax,
2 ignore case, 4 REG_NEWLINE ('.' and [^...] stop at newlines, ^ and $ match at them),
8 REG_NOSUB (no effect on whether it matches). The client's REGEX_NOSUB constant is 4
and its REGEX_NEWLINE is 8, so they act the other way round on a real server; we do what
the server does with the bits. Without the extended flag the pattern is a basic RE, where
( ) { } + ? | are literals unless escaped (the GNU extensions).
"""

import re

EXTENDED, ICASE, NEWLINE = 1, 2, 4

_CLASSES = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z",
    "space": " \\t\\n\\r\\f\\v", "blank": " \\t", "xdigit": "0-9A-Fa-f", "cntrl": "\\x00-\\x1f\\x7f",
    "print": "\\x20-\\x7e", "graph": "\\x21-\\x7e", "punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
}
_GNU_ESCAPES = {"<": r"\b(?=\w)", ">": r"\b(?<=\w)", "`": r"\A", "'": r"\Z"}
_BRE_SWAPPED = frozenset("(){}+?|")  # special only when escaped in a basic RE


def compile_posix(pattern: str, flags: int) -> re.Pattern:
    """The Python pattern that matches what regexec would; raises re.error if regcomp would fail."""
    extended, newline = bool(flags & EXTENDED), bool(flags & NEWLINE)
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "[":
            i = _bracket(pattern, i + 1, newline, out)
            continue
        if c == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if not extended and nxt in _BRE_SWAPPED:
                out.append(nxt)
            elif nxt in _GNU_ESCAPES:
                out.append(_GNU_ESCAPES[nxt])
            elif nxt.isdigit() or nxt in "wWsSbB":
                out.append("\\" + nxt)
            else:
                out.append(re.escape(nxt))
            i += 2
            continue
        if not extended and c in _BRE_SWAPPED:
            out.append(re.escape(c))
        elif c == "*" and (not out or out[-1] in ("^", "(")) and not extended:
            out.append(r"\*")  # a leading '*' of a basic RE is a literal
        elif c == "$" and not newline:
            out.append(r"\Z")  # Python's '$' would also match before a final newline
        else:
            out.append(c)
        i += 1
    python_flags = (re.M if newline else re.S) | (re.I if flags & ICASE else 0)
    return re.compile("".join(out), python_flags)


def _bracket(pattern: str, i: int, newline: bool, out: list[str]) -> int:
    """Translate the bracket expression whose body starts at `i`; return the index after it."""
    parts = ["["]
    negated = pattern.startswith("^", i)
    if negated:
        parts.append("^")
        i += 1
    first = True
    while True:
        if i >= len(pattern):
            raise re.error("unterminated bracket expression")
        c = pattern[i]
        if c == "]" and not first:
            break
        first = False
        if pattern.startswith("[:", i):
            end = pattern.find(":]", i + 2)
            name = pattern[i + 2 : end] if end > 0 else ""
            if name not in _CLASSES:
                raise re.error(f"unknown character class {name!r}")
            parts.append(_CLASSES[name])
            i = end + 2
            continue
        parts.append("\\" + c if c in "\\[]&~|" else c)  # a backslash is a literal in POSIX brackets
        i += 1
    if negated and newline:
        parts.append("\\n")
    out.append("".join(parts) + "]")
    return i + 1
