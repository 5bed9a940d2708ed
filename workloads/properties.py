"""YCSB property files (``key=value`` lines, ``#``/``!`` comments) and CoreWorkload's defaults.

``load_properties("workloads/workloada", overrides={"recordcount": "100000"})`` mirrors
``ycsb run -P workloads/workloada -p recordcount=100000``: later files and overrides win.
Known CoreWorkload keys are type-checked into ``WorkloadProperties``; every other key (a
binding's ``as.host``, Client's ``threadcount`` …) is kept as a string in ``extra``.
"""

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

JAVA_INT_MAX = 2**31 - 1


class PropertyError(ValueError):
    """A property file line or value that cannot be used; the message names the key."""


def _prop(default, *, key=None, choices=None, minimum=None, maximum=None):
    meta = {"key": key, "choices": choices, "minimum": minimum, "maximum": maximum}
    return field(default=default, metadata=meta)


def _fraction(default):
    return _prop(default, minimum=0.0, maximum=1.0)


@dataclass(frozen=True)
class WorkloadProperties:
    """CoreWorkload's properties with YCSB's defaults (harness spec section 1.2)."""

    workload: str = _prop("site.ycsb.workloads.CoreWorkload")
    table: str = _prop("usertable")
    # 0 means "unbounded" in YCSB; CoreWorkload turns it into Integer.MAX_VALUE.
    recordcount: int = _prop(0, minimum=0)
    # 0 = no operation limit (time-bounded Locust runs); YCSB has no default here.
    operationcount: int = _prop(0, minimum=0)
    insertstart: int = _prop(0, minimum=0)
    insertcount: int | None = _prop(None, minimum=0)  # None: recordcount − insertstart
    insertorder: str = _prop("hashed", choices=("hashed", "ordered"))
    keyprefix: str = _prop("user")
    zeropadding: int = _prop(1, minimum=1)

    fieldcount: int = _prop(10, minimum=1)
    fieldnameprefix: str = _prop("field")
    fieldlength: int = _prop(100, minimum=1)
    minfieldlength: int = _prop(1, minimum=1)
    fieldlengthdistribution: str = _prop("constant", choices=("constant", "uniform", "zipfian"))
    readallfields: bool = _prop(True)
    readallfieldsbyname: bool = _prop(False)
    writeallfields: bool = _prop(False)
    dataintegrity: bool = _prop(False)

    readproportion: float = _fraction(0.95)
    updateproportion: float = _fraction(0.05)
    insertproportion: float = _fraction(0.0)
    scanproportion: float = _fraction(0.0)
    readmodifywriteproportion: float = _fraction(0.0)

    requestdistribution: str = _prop(
        "uniform", choices=("uniform", "zipfian", "latest", "hotspot", "exponential", "sequential")
    )
    minscanlength: int = _prop(1, minimum=1)
    maxscanlength: int = _prop(1000, minimum=1)
    scanlengthdistribution: str = _prop("uniform", choices=("uniform", "zipfian"))
    hotspotdatafraction: float = _fraction(0.2)
    hotspotopnfraction: float = _fraction(0.8)
    exponential_percentile: float = _prop(95.0, key="exponential.percentile", minimum=0.0, maximum=100.0)
    exponential_frac: float = _prop(0.8571428571, key="exponential.frac", minimum=0.0)

    core_workload_insertion_retry_limit: int = _prop(0, minimum=0)
    core_workload_insertion_retry_interval: float = _prop(3.0, minimum=0.0)

    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.recordcount == 0:
            object.__setattr__(self, "recordcount", JAVA_INT_MAX)
        if self.insertcount is None:
            object.__setattr__(self, "insertcount", self.recordcount - self.insertstart)
        self._check_consistency()

    def _check_consistency(self) -> None:
        if self.insertstart + self.insertcount > self.recordcount:
            raise PropertyError(
                f"insertcount: insertstart + insertcount ({self.insertstart} + {self.insertcount}) "
                f"exceeds recordcount ({self.recordcount})"
            )
        if self.minscanlength > self.maxscanlength:
            raise PropertyError(
                f"maxscanlength: {self.maxscanlength} is below minscanlength {self.minscanlength}"
            )
        if self.minfieldlength > self.fieldlength:
            raise PropertyError(
                f"fieldlength: {self.fieldlength} is below minfieldlength {self.minfieldlength}"
            )
        if self.dataintegrity and self.fieldlengthdistribution != "constant":
            raise PropertyError("dataintegrity: needs fieldlengthdistribution=constant")
        if sum(self.proportions().values()) <= 0:
            raise PropertyError("readproportion: all operation proportions are zero")

    def proportions(self) -> dict[str, float]:
        """Operation name → proportion, in YCSB's order."""
        return {
            "READ": self.readproportion,
            "UPDATE": self.updateproportion,
            "INSERT": self.insertproportion,
            "SCAN": self.scanproportion,
            "READ-MODIFY-WRITE": self.readmodifywriteproportion,
        }

    @classmethod
    def from_mapping(cls, raw: Mapping[str, str]) -> "WorkloadProperties":
        known = {f.metadata["key"] or f.name: f for f in dataclasses.fields(cls) if f.name != "extra"}
        hints = typing.get_type_hints(cls)
        values = {}
        for key, text in raw.items():
            spec = known.get(key)
            if spec is not None:
                values[spec.name] = _convert(key, text, hints[spec.name], spec.metadata)
        extra = {key: text for key, text in raw.items() if key not in known}
        return cls(**values, extra=extra)


def _convert(key: str, text: str, hint, meta: Mapping):
    kind = _base_type(hint)
    text = text.strip()
    try:
        value = _PARSERS[kind](text)
    except ValueError:
        raise PropertyError(f"{key}: expected {kind.__name__}, got {text!r}") from None
    if meta["choices"] is not None and value not in meta["choices"]:
        raise PropertyError(f"{key}: {text!r} is not one of {', '.join(meta['choices'])}")
    if meta["minimum"] is not None and value < meta["minimum"]:
        raise PropertyError(f"{key}: {text} is below the minimum {meta['minimum']}")
    if meta["maximum"] is not None and value > meta["maximum"]:
        raise PropertyError(f"{key}: {text} is above the maximum {meta['maximum']}")
    return value


def _base_type(hint) -> type:
    """``int | None`` → ``int``; plain types pass through."""
    if isinstance(hint, types.UnionType):
        return next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered not in ("true", "false"):
        raise ValueError(text)
    return lowered == "true"


_PARSERS = {int: int, float: float, bool: _parse_bool, str: str}


def parse_properties(text: str, source: str = "<string>") -> dict[str, str]:
    """Parse ``key=value`` lines; blank lines and ``#``/``!`` comment lines are skipped."""
    result = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#!":
            continue
        key, sep, value = stripped.partition("=")
        if not sep or not key.strip():
            raise PropertyError(f"{source}:{number}: expected key=value, got {stripped!r}")
        result[key.strip()] = value.strip()
    return result


def load_properties(*paths: str | Path, overrides: Mapping[str, str] | None = None) -> WorkloadProperties:
    """Read property files in order (later ones win), apply ``-p``-style overrides, type-check."""
    raw: dict[str, str] = {}
    for path in paths:
        raw.update(parse_properties(Path(path).read_text(), source=str(path)))
    raw.update(overrides or {})
    return WorkloadProperties.from_mapping(raw)
