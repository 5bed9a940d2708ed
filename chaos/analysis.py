"""Runs and sweeps as tables, for the results notebooks (notebooks/*.ipynb).

    sweep = load_sweep("results/sweeps/<utc>-rack_breaker")
    runs = per_run(sweep)                 # one row per run: its settings and run_metrics()
    table = per_setting(runs, sweep.keys) # one row per setting: means over the repetitions
    claim_check(table)                    # the seeds' trade-off claim against the data

Every number comes from a run folder's raw files (timeline.csv, faults.csv, safety.json;
chaos.results), at the recorder's resolution of one sample a second. A run's *fault* is its
first fault window; the *return* is that window's end (the rack restarted, the partition
healed). Per run:

* ``detect_s``, ``reform_s`` — chaos.report's headline numbers;
* ``full_replication_s`` — fault → full replication while the fault lasts (None: not reached
  before the return); ``rebalance_s`` — return → the first sample from which on, to the end
  of the run, no migration remains and no partition is below the replication factor;
* ``below_rf_s`` — seconds with a partition below full replication, ``single_copy_s`` with
  a partition on at most one node (the seeds' "single replica" window), ``below_rf_max``;
* ``records_migrated`` — records the nodes transmitted (per node, the growth of
  ``migrate_records_transmitted``; a restarted node counts from 0 again), ``migrating_s`` —
  seconds with migrations remaining, ``migration_rate`` — records/s over those seconds;
* client latency and throughput ``before`` the fault and while ``migrating``: the median
  over those seconds of the per-second p99 / p99.9 (the worse operation's), the mean ops/s;
  ``p99_cost_ms`` = migrating − before. A load second S covers (S-1, S]; the load's first
  and last seconds are partial and left out;
* ``errors`` (whole run), ``writes_lost`` (safety workload).
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure  # not pyplot: no GUI backend, no global state

from chaos.recorder import records_migrated
from chaos.report import time_to_detect, time_to_full_replication, time_to_reform
from chaos.results import Fault, RunFolder

REPO = Path(__file__).resolve().parents[1]
SWEEPS = REPO / "results" / "sweeps"  # where python -m chaos.sweep puts them

METRICS = [
    "detect_s", "reform_s", "full_replication_s", "rebalance_s", "below_rf_s", "single_copy_s", "below_rf_max",
    "records_migrated", "migrating_s", "migration_rate", "p99_before_ms", "p99_migrating_ms", "p99_cost_ms",
    "p999_before_ms", "p999_migrating_ms", "ops_before", "ops_migrating", "errors", "writes_lost",
]  # fmt: skip


# -- one run --------------------------------------------------------------------------------

def worst_op(timeline: pd.DataFrame, column: str) -> pd.Series:
    """Per second, the worse operation's ``<OP>.<column>`` (p99_ms, p99.9_ms, ...)."""
    columns = [c for c in timeline.columns if c.endswith(f".{column}") and c.split(".")[0].isupper()]
    return timeline[columns].max(axis=1)


def load_seconds(timeline: pd.DataFrame) -> pd.DataFrame:
    """The seconds the load measured in full: those with ops, without its first and last."""
    loaded = timeline[timeline["ops"].notna()] if "ops" in timeline else timeline.iloc[0:0]
    return loaded.iloc[1:-1]


def _median(series: pd.Series) -> float | None:
    series = series.dropna()
    return float(series.median()) if len(series) else None


def _mean(series: pd.Series) -> float | None:
    series = series.dropna()
    return float(series.mean()) if len(series) else None


def run_metrics(run: RunFolder) -> dict:
    """The numbers of one run (see the module docstring); None where not seen."""
    timeline, faults, safety = run.timeline(), run.faults(), run.safety()
    if timeline is None or not faults:
        return dict.fromkeys(METRICS)
    fault = faults[0]
    end = fault.end if fault.end is not None else math.inf
    returned = Fault("return", fault.targets, fault.end) if fault.end is not None else None
    migrated = records_migrated(timeline)
    migrating = timeline["migrate_partitions_remaining"] > 0
    loaded = load_seconds(timeline)
    before = loaded[loaded["time"] <= fault.start]
    during = loaded[loaded["migrate_partitions_remaining"] > 0]
    p99_before, p99_during = _median(worst_op(before, "p99_ms")), _median(worst_op(during, "p99_ms"))
    records, seconds = int(migrated.sum()), int(migrating.sum())
    return {
        "detect_s": time_to_detect(timeline, fault),
        "reform_s": time_to_reform(timeline, fault),
        "full_replication_s": time_to_full_replication(timeline, fault, horizon=end),
        "rebalance_s": time_to_full_replication(timeline, returned) if returned else None,
        "below_rf_s": int((timeline["partitions_below_rf"] > 0).sum()),
        "single_copy_s": int((timeline["partitions_single_copy"] > 0).sum()),
        "below_rf_max": int(timeline["partitions_below_rf"].max()),
        "records_migrated": records,
        "migrating_s": seconds,
        "migration_rate": records / seconds if seconds else None,
        "p99_before_ms": p99_before,
        "p99_migrating_ms": p99_during,
        "p99_cost_ms": p99_during - p99_before if p99_before is not None and p99_during is not None else None,
        "p999_before_ms": _median(worst_op(before, "p99.9_ms")),
        "p999_migrating_ms": _median(worst_op(during, "p99.9_ms")),
        "ops_before": _mean(before["ops"]) if len(before) else None,
        "ops_migrating": _mean(during["ops"]) if len(during) else None,
        "errors": int(timeline["errors"].sum()) if "errors" in timeline else None,
        "writes_lost": safety["counts"]["lost"] if safety else None,
    }


# -- a sweep --------------------------------------------------------------------------------

@dataclass
class Sweep:
    path: Path
    spec: dict  # sweep.json: experiment, grid, vars, repeat
    index: pd.DataFrame  # index.csv, the grid's settings as strings

    @property
    def keys(self) -> list[str]:
        return list(self.spec["grid"])

    def done(self) -> pd.DataFrame:
        """Runs that ended with a run folder and a journal (completed or failed: both are data)."""
        ok = self.index["status"].isin(["completed", "failed"]) & (self.index["run_folder"] != "")
        return self.index[ok]

    def run(self, run_id: str) -> RunFolder:
        row = self.index.set_index("run_id").loc[run_id]
        return RunFolder(self.path / row["run_folder"])


def resolve(path: str | Path) -> Path:
    """A relative path from the repository root when it is not one from here: a notebook's
    kernel runs in notebooks/, the user typed the path from the root."""
    path = Path(path)
    return path if path.is_absolute() or path.exists() else REPO / path


def load_sweep(path: str | Path) -> Sweep:
    path = resolve(path)
    spec = json.loads((path / "sweep.json").read_text())
    index = pd.read_csv(path / "index.csv", dtype=str, keep_default_na=False)
    return Sweep(path, spec, index)


def setting_label(row: pd.Series | dict, keys: list[str]) -> str:
    # no spaces: a label stays one field in a printed table
    return ",".join(f"{key}={row[key]}" for key in keys) or "default"


def latest_sweep(root: str | Path = SWEEPS) -> Path:
    """The newest sweep folder under results/sweeps (names start with their UTC time)."""
    sweeps = sorted(p for p in Path(root).glob("*") if (p / "sweep.json").exists())
    if not sweeps:
        raise FileNotFoundError(f"no sweep under {root}: make one with python -m chaos.sweep")
    return sweeps[-1]


def sweep_runs(sweep: Sweep) -> dict[str, RunFolder]:
    """The sweep's finished runs, labelled ``<run_id>:<setting>``."""
    return {f"{row['run_id']}:{setting_label(row, sweep.keys)}": sweep.run(row["run_id"])
            for _, row in sweep.done().iterrows()}


def per_run(sweep: Sweep) -> pd.DataFrame:
    """One row per finished run: run_id, repetition, setting, the grid's keys, METRICS."""
    rows = []
    for _, row in sweep.done().iterrows():
        rows.append({"run_id": row["run_id"], "repetition": int(row["repetition"]),
                     "setting": setting_label(row, sweep.keys), **{key: row[key] for key in sweep.keys},
                     **run_metrics(sweep.run(row["run_id"]))})
    return pd.DataFrame(rows, columns=["run_id", "repetition", "setting", *sweep.keys, *METRICS])


RECOVERY_TIMES = ["full_replication_s", "rebalance_s"]  # fault -> full RF (rack down), return -> rebalanced


def per_setting(runs: pd.DataFrame) -> pd.DataFrame:
    """Means over the repetitions of each setting (a metric None in every repetition: NaN),
    with ``runs`` and the range of the two recovery times across them (``<time>_min/_max``)."""
    metrics = runs[["setting", *METRICS]].astype({m: float for m in METRICS})
    grouped = metrics.groupby("setting", sort=False)
    table = grouped[METRICS].mean()
    table.insert(0, "runs", grouped.size())
    for time in RECOVERY_TIMES:
        table[f"{time}_min"] = grouped[time].min()
        table[f"{time}_max"] = grouped[time].max()
    return table


def below_rf_over_time(sweep: Sweep) -> pd.DataFrame:
    """Long table: setting, run_id, t (s since the fault), partitions_below_rf."""
    frames = []
    for _, row in sweep.done().iterrows():
        run = sweep.run(row["run_id"])
        timeline, faults = run.timeline(), run.faults()
        if timeline is None or not faults:
            continue
        frames.append(pd.DataFrame({"setting": setting_label(row, sweep.keys), "run_id": row["run_id"],
                                    "t": timeline["time"] - faults[0].start,
                                    "partitions_below_rf": timeline["partitions_below_rf"]}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["setting", "run_id", "t", "partitions_below_rf"])


CLAIM = ("Temporarily slowing transactions heals the cluster more quickly. If you need to maintain "
         "transactional speed and volume, the cluster rebalances more slowly.")


def claim_check(table: pd.DataFrame, time: str = "rebalance_s") -> dict:
    """The seeds' claim against a per_setting table: the setting that recovered fastest
    (``time``: one of RECOVERY_TIMES) should cost clients more p99 than the slowest one.
    ``verdict``: holds, contradicted, or inconclusive when either of the two has fewer than
    two repetitions, when their times overlap across repetitions, or with fewer than two
    settings with both numbers."""
    known = table.dropna(subset=[time, "p99_cost_ms"])
    if len(known) < 2:
        return {"verdict": "inconclusive", "text": f"{time}: fewer than two settings with it and a p99 cost"}
    fast, slow = known[time].idxmin(), known[time].idxmax()
    f, s = known.loc[fast], known.loc[slow]
    rank_corr = float(known[time].rank().corr(known["p99_cost_ms"].rank()))
    if min(f["runs"], s["runs"]) < 2 or f[f"{time}_max"] >= s[f"{time}_min"]:
        verdict = "inconclusive"  # one repetition measures no noise; overlapping ranges are within it
    else:
        verdict = "holds" if f["p99_cost_ms"] > s["p99_cost_ms"] else "contradicted"
    text = (f"{time}: fastest {fast} ({f[time]:.1f} s, p99 +{f['p99_cost_ms']:.1f} ms while migrating); "
            f"slowest {slow} ({s[time]:.1f} s, p99 +{s['p99_cost_ms']:.1f} ms); "
            f"rank correlation time vs p99 cost {rank_corr:+.2f} (a trade-off is negative): the claim {verdict}"
            + (" (repetitions too few or too spread to tell)" if verdict == "inconclusive" else ""))
    return {"verdict": verdict, "fastest": fast, "slowest": slow, "rank_correlation": rank_corr, "text": text}


# -- runs side by side ----------------------------------------------------------------------

COMPARED = {  # column of aligned(): what it is, its unit
    "ops": ("throughput", "ops/s"),
    "errors": ("errors", "errors/s"),
    "p99_ms": ("p99 (worse operation)", "ms"),
    "p999_ms": ("p99.9 (worse operation)", "ms"),
    "nodes_up": ("nodes answering", "nodes"),
    "migrate_partitions_remaining": ("migrations remaining", "partitions"),
    "migration_rate": ("records migrated", "records/s"),
    "partitions_below_rf": ("partitions below full replication", "partitions"),
}


def aligned(runs: dict[str, RunFolder]) -> pd.DataFrame:
    """Long table of the runs' timelines on one clock: run (the dict's key), t (seconds since
    the run's first fault, or its first sample without a fault), and COMPARED's columns."""
    frames = []
    for label, run in runs.items():
        timeline, faults = run.timeline(), run.faults()
        zero = faults[0].start if faults else float(timeline["time"].min())
        frames.append(pd.DataFrame({
            "run": label, "t": timeline["time"] - zero,
            "ops": timeline.get("ops"), "errors": timeline.get("errors"),
            "p99_ms": worst_op(timeline, "p99_ms"), "p999_ms": worst_op(timeline, "p99.9_ms"),
            "nodes_up": timeline["nodes_up"],
            "migrate_partitions_remaining": timeline["migrate_partitions_remaining"],
            "migration_rate": records_migrated(timeline),
            "partitions_below_rf": timeline["partitions_below_rf"],
        }))
    return pd.concat(frames, ignore_index=True)


def fault_spans(runs: dict[str, RunFolder]) -> dict[str, list[tuple[float, float | None]]]:
    """Per run, its fault windows as (start, end) in seconds since its first fault."""
    spans = {}
    for label, run in runs.items():
        faults = run.faults()
        zero = faults[0].start if faults else 0.0
        spans[label] = [(f.start - zero, None if f.end is None else f.end - zero) for f in faults]
    return spans


def headline_table(runs: dict[str, RunFolder]) -> pd.DataFrame:
    """run_metrics of each run, one row per run."""
    return pd.DataFrame({label: run_metrics(run) for label, run in runs.items()}).T.rename_axis("run")


# -- figures (matplotlib Figures; a notebook shows them, a test reads their data back) -------

def plot_compare(table: pd.DataFrame, spans: dict | None = None, columns: list[str] | None = None) -> Figure:
    """aligned() runs on one timeline: a panel per column, a line per run; faults shaded."""
    columns = columns or list(COMPARED)
    fig = Figure(figsize=(11, 2.3 * len(columns)))
    axes = fig.subplots(len(columns), 1, sharex=True, squeeze=False)[:, 0]
    for ax, column in zip(axes, columns, strict=True):
        for label, rows in table.groupby("run", sort=False):
            ax.plot(rows["t"], rows[column], label=label, drawstyle="steps-post")
        for windows in (spans or {}).values():
            for start, end in windows:
                ax.axvspan(start, end if end is not None else table["t"].max(), color="tab:red", alpha=0.06)
        title, unit = COMPARED[column]
        ax.set(title=title, ylabel=unit)
    axes[0].legend(fontsize=7, loc="upper right")
    axes[-1].set_xlabel("seconds since the fault")
    fig.tight_layout()
    return fig


def plot_below_rf(long: pd.DataFrame) -> Figure:
    """Partitions below full replication over time, one line per run, coloured by setting."""
    fig = Figure(figsize=(11, 3.5))
    ax = fig.subplots()
    colours = {s: f"C{i}" for i, s in enumerate(long["setting"].unique())}
    for (setting, run_id), rows in long.groupby(["setting", "run_id"], sort=False):
        ax.plot(rows["t"], rows["partitions_below_rf"], drawstyle="steps-post", color=colours[setting],
                label=f"{setting} ({run_id})")
    ax.set(title="Partitions below full replication", xlabel="seconds since the fault", ylabel="partitions")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_tradeoff(table: pd.DataFrame) -> Figure:
    """The trade-off: rebalance time (x) against p99 cost while migrating (y), a point per setting."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    ax.scatter(table["rebalance_s"], table["p99_cost_ms"])
    for setting, row in table.iterrows():
        ax.annotate(setting, (row["rebalance_s"], row["p99_cost_ms"]), fontsize=7, xytext=(4, 4),
                    textcoords="offset points")
    ax.set(title="Rebalance time vs client latency cost", xlabel="rebalance after the return (s)",
           ylabel="p99 while migrating − before (ms)")
    fig.tight_layout()
    return fig
