"""The folder of one chaos run: ``results/<utc-time>-<name>/``.

Everything a run records goes into one folder so the report (and a notebook) can be
made from it alone:

    config.json     the resolved configuration of the run (experiment, cluster, load)
    faults.csv      one row per fault window: kind, targets, start, end (unix seconds;
                    targets space-separated; end empty while the fault is still active)
    load/           the YCSB results (timeseries.csv, summary.csv, locust_*.csv, *.hdr)
    cluster.csv     the recorder's per-second node samples (chaos.recorder)
    timeline.csv    one row per second: node samples merged with the load
    safety.json     the safety workload's verdict (chaos.safety)
    journal.json    Chaos Toolkit's journal, when the run came from `chaos run`
    report.html     chaos.report
"""

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

FAULT_COLUMNS = ["kind", "targets", "start", "end"]


@dataclass(frozen=True)
class Fault:
    kind: str  # kill, pause, partition, ...: whatever the fault API names it
    targets: tuple[str, ...]
    start: float  # unix seconds
    end: float | None = None  # None: not undone (yet)

    def end_or(self, default: float) -> float:
        return default if self.end is None else self.end


class RunFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def create(cls, name: str, root: str | Path = "results", config: dict | None = None) -> "RunFolder":
        """A new folder ``<root>/<YYYYmmddTHHMMSSZ>-<name>``, with config.json if given."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        folder = cls(Path(root) / f"{stamp}-{name}")
        folder.path.mkdir(parents=True, exist_ok=False)
        if config is not None:
            folder.write_config(config)
        return folder

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def load_dir(self) -> Path:
        return self.path / "load"

    # -- writing ------------------------------------------------------------------------

    def write_config(self, config: dict) -> None:
        _write_json(self / "config.json", config)

    def write_safety(self, verdict: dict) -> None:
        _write_json(self / "safety.json", verdict)

    def add_fault(self, fault: Fault) -> None:
        """Append one fault window (write it once it has ended, or with end None and
        call again with the end: the last row for the same kind, targets and start wins)."""
        append_csv(self / "faults.csv", FAULT_COLUMNS, [{
            "kind": fault.kind, "targets": " ".join(fault.targets), "start": f"{fault.start:.3f}",
            "end": "" if fault.end is None else f"{fault.end:.3f}"}])

    # -- reading ------------------------------------------------------------------------

    def config(self) -> dict:
        return _read_json(self / "config.json") or {}

    def safety(self) -> dict | None:
        return _read_json(self / "safety.json")

    def journal(self) -> dict | None:
        return _read_json(self / "journal.json")

    def faults(self) -> list[Fault]:
        """Fault windows in start order; a window written twice (open, then closed) once."""
        path = self / "faults.csv"
        if not path.exists():
            return []
        latest: dict[tuple, Fault] = {}
        with path.open(newline="") as src:
            for row in csv.DictReader(src):
                fault = Fault(row["kind"], tuple(row["targets"].split()), float(row["start"]),
                              float(row["end"]) if row["end"] else None)
                latest[(fault.kind, fault.targets, fault.start)] = fault
        return sorted(latest.values(), key=lambda f: f.start)

    def timeline(self) -> pd.DataFrame:
        return read_csv(self / "timeline.csv")


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, default=str, allow_nan=False) + "\n")


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def append_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    """Append ``rows`` to the CSV at ``path``, header first if the file is new."""
    is_new = not path.exists()
    with path.open("a", newline="") as out:
        writer = csv.DictWriter(out, columns)
        if is_new:
            writer.writeheader()
        writer.writerows(rows)


def read_csv(path: Path) -> pd.DataFrame | None:
    """A CSV of the run (None if missing or empty), cluster keys kept as the hex strings they are."""
    if not path.exists() or not path.stat().st_size:
        return None
    keys = [column for column in pd.read_csv(path, nrows=0).columns if column.endswith("cluster_key")]
    return pd.read_csv(path, dtype=dict.fromkeys(keys, str))
