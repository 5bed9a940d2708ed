"""The report of one run folder: report.html (self-contained) and a plain-text summary.

    python -m chaos.report results/<run>      # writes report.html, prints the summary

Headline numbers per fault window (from timeline.csv, faults.csv, safety.json), with the
recorder's 1 s sampling as their resolution — each is measured to the sample at which it
was first seen (``sampled_at``):

* **detect** — fault start → first sample in which a node reports a smaller cluster than
  before the fault (0, an orphaned node, counts as smaller);
* **re-form** — fault start → first sample, from detection to the fault's end, in which
  every node that answers is in a cluster formed since the fault: none is orphaned or on
  the key from before it, and the nodes on each key report that cluster's size and are not
  more than it (one cluster after a node loss; one per side of a split). A member slow to
  answer a sample does not hide the re-form; after the fault's end a formed cluster is the
  fault's undoing, not its re-form;
* **full replication** — fault start → first sample from which on, up to the next fault or
  the end of the timeline, no migration remains and no partition is below the replication
  factor (chaos.recorder);
* **worst p99** (the worst per-second p99 of any operation) and **errors** over the seconds
  overlapping the fault window; **writes lost** from the safety workload (the whole run).

None means "not seen": the cluster never reported it within the timeline.
"""

import html
import io
import json
import math
import sys
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure  # not pyplot: no GUI backend, no global state

from chaos.results import Fault, RunFolder

# -- headline numbers -----------------------------------------------------------------------

def node_columns(timeline: pd.DataFrame, metric: str) -> pd.DataFrame:
    return timeline[[c for c in timeline.columns if c.endswith(f".{metric}") and c.count(".") == 1]]


def _before(timeline: pd.DataFrame, fault: Fault) -> pd.Series | None:
    rows = timeline[timeline["sampled_at"] < fault.start]
    return rows.iloc[-1] if len(rows) else None


def _after(timeline: pd.DataFrame, start: float) -> pd.DataFrame:
    return timeline[timeline["sampled_at"] >= start]


def time_to_detect(timeline: pd.DataFrame, fault: Fault) -> float | None:
    before = _before(timeline, fault)
    if before is None:
        return None
    size = before["cluster_size_max"]
    after = _after(timeline, fault.start)
    smaller = (node_columns(after, "cluster_size") < size).any(axis=1)
    return _first(after[smaller], fault)


def time_to_reform(timeline: pd.DataFrame, fault: Fault) -> float | None:
    before, detected = _before(timeline, fault), time_to_detect(timeline, fault)
    if before is None or detected is None:
        return None
    old_keys = set(node_columns(before.to_frame().T, "cluster_key").stack())
    after = _after(timeline, fault.start + detected)
    after = after[after["sampled_at"] < fault.end_or(math.inf)]
    keys = node_columns(after, "cluster_key")
    sizes = after[[f"{column.split('.')[0]}.cluster_size" for column in keys.columns]]
    formed = [_formed_since(zip(k, z, strict=True), old_keys)
              for k, z in zip(keys.itertuples(index=False), sizes.itertuples(index=False), strict=True)]
    return _first(after[pd.Series(formed, index=after.index, dtype=bool)], fault)


def _formed_since(nodes, old_keys: set) -> bool:
    """Whether one sample's nodes, (cluster key, size) each, re-formed (see time_to_reform)."""
    members: dict = {}
    for key, size in nodes:
        if pd.isna(key):
            continue  # did not answer
        if key in old_keys or not size > 0:
            return False
        members.setdefault(key, []).append(size)
    return bool(members) and all(len(set(s)) == 1 and len(s) <= s[0] for s in members.values())


def time_to_full_replication(timeline: pd.DataFrame, fault: Fault, horizon: float = math.inf) -> float | None:
    window = _after(timeline, fault.start)
    window = window[window["sampled_at"] < horizon]
    full = (window["migrate_partitions_remaining"] == 0) & (window["partitions_below_rf"] == 0)
    not_full = window[~full]
    if len(not_full) == len(window):
        return None
    settled = window[window["sampled_at"] > not_full["sampled_at"].max()] if len(not_full) else window
    return _first(settled, fault)


def _first(rows: pd.DataFrame, fault: Fault) -> float | None:
    return round(float(rows["sampled_at"].iloc[0]) - fault.start, 3) if len(rows) else None


def during(timeline: pd.DataFrame, fault: Fault) -> pd.DataFrame:
    """The seconds overlapping the fault (the load labels second S with what ended in (S-1, S])."""
    end = fault.end_or(float(timeline["time"].max()))
    return timeline[(timeline["time"] > fault.start) & (timeline["time"] - 1 < end)]


def headline(timeline: pd.DataFrame, fault: Fault, horizon: float = math.inf,
             safety: dict | None = None) -> dict:
    """The fault's numbers. Full replication is judged while the fault lasts (the cluster
    restoring the replication factor without what the fault took); `rebalance_s` from its
    end (the rack back, the split healed) until the cluster is whole again."""
    rows = during(timeline, fault)
    p99 = rows[[c for c in rows.columns if c.endswith(".p99_ms") and "intended" not in c]]
    worst = p99.max().max() if not p99.empty else math.nan
    returned = Fault("return", fault.targets, fault.end) if fault.end is not None else None
    return {
        "kind": fault.kind, "targets": " ".join(fault.targets), "start": fault.start, "end": fault.end,
        "detect_s": time_to_detect(timeline, fault),
        "reform_s": time_to_reform(timeline, fault),
        "full_replication_s": time_to_full_replication(timeline, fault, min(horizon, fault.end_or(math.inf))),
        "rebalance_s": time_to_full_replication(timeline, returned, horizon) if returned else None,
        "worst_p99_ms": None if pd.isna(worst) else float(worst),
        "errors": int(rows["errors"].sum()) if "errors" in rows else None,
        "ops": int(rows["ops"].sum()) if "ops" in rows else None,
        "writes_lost": safety["counts"]["lost"] if safety else None,
    }


def headlines(run: RunFolder) -> list[dict]:
    """One headline per fault window of the run, in start order."""
    timeline, faults, safety = run.timeline(), run.faults(), run.safety()
    if not faults:  # e.g. an existing cluster the harness could not fault
        return []
    horizons = [f.start for f in faults[1:]] + [math.inf]
    return [headline(timeline, fault, horizon, safety) for fault, horizon in zip(faults, horizons, strict=True)]


# -- text ---------------------------------------------------------------------------------

def _seconds(value) -> str:
    return "not seen" if value is None else f"{value:.1f} s"


def summary_text(run: RunFolder) -> str:
    lines = [f"run {run.path.name}"]
    journal = run.journal()
    if journal:
        lines.append(f"experiment: status {journal.get('status')}, deviated {journal.get('deviated')}")
    for h in headlines(run):
        lasted = f"{h['end'] - h['start']:.1f} s" if h["end"] else "the rest of the run"
        p99 = "-" if h["worst_p99_ms"] is None else f"{h['worst_p99_ms']:.1f} ms"
        lines += [
            f"fault {h['kind']} {h['targets']} at {h['start']:.1f} for {lasted}",
            f"  detect {_seconds(h['detect_s'])}, re-form {_seconds(h['reform_s'])}, "
            f"full replication {_seconds(h['full_replication_s'])} (while it lasted), "
            f"rebalanced {_seconds(h['rebalance_s'])} after it ended",
            f"  worst p99 {p99}, errors {h['errors']} of {h['ops']} ops",
        ]
    safety = run.safety()
    if safety:
        c = safety["counts"]
        lines.append(f"safety: {'valid' if safety['valid'] else 'INVALID'}: {c['lost']} acknowledged writes lost, "
                     f"{c['failed_visible']} failed writes visible, {c['stale_reads']} stale reads, "
                     f"{c['unreadable']} keys unreadable; writes {c['writes']}")
    return "\n".join(lines)


# -- plots --------------------------------------------------------------------------------

PANELS = [  # (title, y label, columns of the timeline to draw: a suffix, or exact names)
    ("Latency per operation (service time)", "ms", [".p50_ms", ".p99_ms"]),
    ("Throughput per operation", "ops/s", [".ops"]),
    ("Errors per second by result code", "errors/s", ["errors."]),
    ("Cluster size seen by each node", "nodes", [".cluster_size"]),
    ("Migrations remaining (all nodes)", "partitions", ["migrate_partitions_remaining"]),
    ("Partitions below full replication", "partitions", ["partitions_below_rf", "partitions_single_copy"]),
]


def panel_columns(timeline: pd.DataFrame, patterns: list[str]) -> list[str]:
    columns = []
    for pattern in patterns:
        if pattern in timeline.columns:
            columns.append(pattern)
        elif pattern.endswith("."):
            columns += [c for c in timeline.columns if c.startswith(pattern)]
        else:
            columns += [c for c in timeline.columns if c.endswith(pattern) and c.count(".") == pattern.count(".")]
    return columns


def plot(timeline: pd.DataFrame, faults: list[Fault], title: str, ylabel: str, patterns: list[str]) -> str:
    """One panel as inline SVG: the columns against seconds since the run began, faults shaded."""
    t0 = float(timeline["time"].min())
    x = timeline["time"] - t0
    fig = Figure(figsize=(10, 2.6))
    ax = fig.subplots()
    columns = panel_columns(timeline, patterns)
    for column in columns:
        ax.plot(x, timeline[column], label=column, drawstyle="steps-post" if "latency" not in title.lower() else None)
    for fault in faults:
        end = fault.end_or(float(timeline["time"].max()))
        ax.axvspan(fault.start - t0, end - t0, color="tab:red", alpha=0.15)
        ax.text(fault.start - t0, 1.0, f" {fault.kind} {' '.join(fault.targets)}", transform=ax.get_xaxis_transform(),
                va="top", fontsize=8, color="tab:red")
    if "latency" in title.lower() and timeline[columns].gt(0).any().any():
        ax.set_yscale("log")
    ax.set(title=title, xlabel="seconds since the run began", ylabel=ylabel)
    if columns:
        ax.legend(loc="upper right", fontsize=7, ncols=min(4, len(columns)))
    else:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center")
    fig.tight_layout()
    out = io.StringIO()
    fig.savefig(out, format="svg")
    svg = out.getvalue()
    return svg[svg.index("<svg"):]


# -- html ---------------------------------------------------------------------------------

def _table(rows: list[dict]) -> str:
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row.values()) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value) -> str:
    if value is None:
        return "not seen"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _hypothesis(journal: dict | None) -> str:
    if not journal:
        return "<p>No journal.json: the run did not come from <code>chaos run</code>.</p>"
    rows = []
    for when in ("before", "after"):
        state = (journal.get("steady_states") or {}).get(when) or {}
        for probe in state.get("probes", []):
            rows.append({"when": when, "probe": probe.get("activity", {}).get("name"),
                         "tolerance met": probe.get("tolerance_met"), "output": json.dumps(probe.get("output"))[:200]})
    status = f"status <b>{html.escape(str(journal.get('status')))}</b>, deviated <b>{journal.get('deviated')}</b>"
    return f"<p>{status}</p>{_table(rows)}"


def _safety(safety: dict | None) -> str:
    if not safety:
        return "<p>No safety workload in this run.</p>"
    verdict = "valid" if safety["valid"] else "INVALID"
    counts = safety["counts"]
    examples = [{"key": x["key"], "final value": x["final_value"], "last acked value": x["last_acked"]["value"],
                 "acked at": x["last_acked"]["end"]} for x in safety["lost"][:20]]
    return (f"<p class='{verdict.lower()}'>Safety: <b>{verdict}</b> — {counts['lost']} acknowledged writes lost, "
            f"{counts['failed_visible']} failed writes visible, {counts['stale_reads']} stale reads, "
            f"{counts['unreadable']} keys unreadable.</p>"
            f"{_table([{'op': kind, **counts[kind + 's']} for kind in ('write', 'read')])}"
            f"<h3>Lost writes (first 20; every one in safety.json)</h3>{_table(examples)}"
            f"<details><summary>policy</summary><pre>{html.escape(json.dumps(safety['policy'], indent=2))}</pre>"
            "</details>")


def render(run: RunFolder) -> str:
    timeline, faults = run.timeline(), run.faults()
    plots = "".join(f"<div class='plot'>{plot(timeline, faults, *panel)}</div>" for panel in PANELS)
    title = html.escape(run.path.name)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;font-size:90%}} .invalid{{color:#b00}} .valid{{color:#070}}</style>
</head><body>
<h1>{title}</h1>
<h2>Headline</h2>{_table(headlines(run))}
<pre id="summary">{html.escape(summary_text(run))}</pre>
<h2>Hypothesis</h2>{_hypothesis(run.journal())}
<h2>Safety</h2>{_safety(run.safety())}
<h2>Timeline</h2>{plots}
<h2>Configuration</h2><pre>{html.escape(json.dumps(run.config(), indent=2))}</pre>
</body></html>
"""


def write_report(run_dir: str | Path) -> Path:
    run = RunFolder(run_dir)
    path = run / "report.html"
    path.write_text(render(run))
    return path


def main(argv: list[str]) -> None:
    for run_dir in argv:
        print(f"{write_report(run_dir)}\n{summary_text(RunFolder(run_dir))}")


if __name__ == "__main__":
    main(sys.argv[1:])
