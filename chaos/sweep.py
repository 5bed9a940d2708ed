"""One experiment over a grid of settings, each run through the real `chaos run` CLI.

    python -m chaos.sweep chaos/rack_breaker.yaml --grid migrate_threads=1,4 \\
        --grid migrate_sleep_us=0,200 --repeat 2 --var repair_s=10 [--max-minutes 60]
    python -m chaos.sweep --resume results/sweeps/<utc>-rack_breaker     # after a Ctrl-C or a bound

A grid or ``--var`` key is one of the experiment's ``configuration`` keys (``chaos run``
silently ignores any other), Aerospike's name of a migration setting (``migrate-threads``,
``migrate-sleep``), or a node setting with a dot (``service.migrate-max-num-incoming``;
``migrate-max-num-incoming`` for short), which goes into the experiment's ``node_config``.

The sweep folder (default ``results/sweeps/<utc>-<experiment>/``):

    sweep.json              what was asked: experiment, grid, vars, repeat
    index.csv               one row per run: run_id, repetition, the grid's settings, run_folder,
                            status, deviated, exit_code, duration_s, started (rewritten after each run)
    runs/<run_id>/<utc>-<name>/   the run folder as the control writes it (chaos.results)
    logs/<run_id>.log       what `chaos run` printed; logs/<run_id>.journal.json

Repetitions are the outer loop, so a sweep cut short has every setting at least once. A run
is done once `chaos run` ended with a journal whose status is not ``interrupted``/``aborted``;
a resumed sweep skips done runs and moves an unfinished run's folder aside before it runs
again. ``--max-minutes`` bounds the whole sweep: it starts a run only if the mean duration
so far fits in what is left, and says so when it stops. Ctrl-C (or SIGTERM) is passed on to
the running `chaos run` once, which rolls back and tears its cluster down; then the sweep
stops with exit code 130.
"""

import argparse
import csv
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CHAOS = str(Path(sys.executable).with_name("chaos"))
ALIASES = {"migrate-threads": "migrate_threads", "migrate-sleep": "migrate_sleep_us",
           "migrate-max-num-incoming": "service.migrate-max-num-incoming"}
INDEX_COLUMNS = ["run_id", "repetition", "run_folder", "status", "deviated", "exit_code", "duration_s", "started"]
UNFINISHED = {"interrupted", "aborted", "no journal", "running"}
ROLLBACK_GRACE_S = 180  # a chaos run's rollback and teardown after Ctrl-C take well under this


class SweepError(Exception):
    pass


@dataclass
class Spec:
    experiment: str
    grid: dict[str, list[str]]
    vars: dict[str, str] = field(default_factory=dict)
    repeat: int = 1

    def runs(self) -> list[dict]:
        """Every run in order: repetitions outermost, then the grid's product in the order given."""
        combos = list(itertools.product(*self.grid.values())) or [()]
        width = len(str(len(combos) * self.repeat))
        runs = []
        for rep in range(1, self.repeat + 1):
            for values in combos:
                settings = dict(zip(self.grid, values, strict=True))
                runs.append({"run_id": f"r{len(runs) + 1:0{width}d}", "repetition": rep, "settings": settings})
        return runs

    def chaos_vars(self, settings: dict[str, str], results_dir: Path) -> list[str]:
        """The ``--var`` arguments of one run: fixed vars, then the run's settings (which win),
        node settings folded into one ``node_config``."""
        values = {**self.vars, **settings}
        node_config = [values.pop("node_config")] if values.get("node_config") else []
        node_config += [f"{key}={values.pop(key)}" for key in list(values) if "." in key]
        if node_config:
            values["node_config"] = ";".join(node_config)
        values["results_dir"] = str(results_dir)
        return [arg for key, value in values.items() for arg in ("--var", f"{key}={value}")]


def parse_assignments(items: list[str], what: str, split: bool) -> dict:
    parsed = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or (split and not value.strip()):
            raise SweepError(f"{what}: expected key=value{',value' if split else ''}, got {item!r}")
        key = ALIASES.get(key.strip(), key.strip())
        parsed[key] = [v.strip() for v in value.split(",")] if split else value
    return parsed


def check_keys(experiment: Path, keys: list[str]) -> None:
    """Refuse a key the experiment does not declare: `chaos run` would ignore it without a word."""
    declared = (yaml.safe_load(experiment.read_text()) or {}).get("configuration") or {}
    for key in keys:
        if key == "results_dir":
            raise SweepError("results_dir: the sweep sets it (each run goes under the sweep folder)")
        needed = "node_config" if "." in key else key
        if needed not in declared:
            raise SweepError(f"{key}: not in {experiment.name}'s configuration (declared: {', '.join(declared)}); "
                             "chaos run would ignore it")


# -- the index ------------------------------------------------------------------------------

def read_index(sweep_dir: Path) -> dict[str, dict]:
    path = sweep_dir / "index.csv"
    if not path.exists():
        return {}
    with path.open(newline="") as src:
        return {row["run_id"]: row for row in csv.DictReader(src)}


def write_index(sweep_dir: Path, spec: Spec, rows: dict[str, dict]) -> None:
    columns = INDEX_COLUMNS[:2] + list(spec.grid) + INDEX_COLUMNS[2:]
    tmp = sweep_dir / "index.csv.tmp"
    with tmp.open("w", newline="") as out:
        writer = csv.DictWriter(out, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows[run_id] for run_id in sorted(rows))
    tmp.replace(sweep_dir / "index.csv")  # a sweep killed mid-write keeps the previous index


def is_done(row: dict | None) -> bool:
    return row is not None and row.get("status") not in UNFINISHED and bool(row.get("run_folder"))


# -- one run --------------------------------------------------------------------------------

class Interrupted(Exception):
    def __init__(self, signum: int, row: dict | None = None):
        self.signum, self.row = signum, row


def _raise_interrupted(signum, _frame):
    raise Interrupted(signum)


def run_one(spec: Spec, run: dict, sweep_dir: Path, timeout_s: float) -> dict:
    """`chaos run` for one run, in its own session so that a terminal's Ctrl-C reaches the
    sweep alone and `chaos` gets exactly one SIGINT from us (a second one would cut its
    rollback short). Returns the index row; raises Interrupted after the run has wound down."""
    run_id = run["run_id"]
    results_dir = sweep_dir / "runs" / run_id
    if results_dir.exists():  # an earlier attempt that did not finish
        attempt = 1
        while (aside := results_dir.with_name(f"{run_id}.unfinished-{attempt}")).exists():
            attempt += 1
        results_dir.rename(aside)
    results_dir.mkdir(parents=True)
    logs = sweep_dir / "logs"
    logs.mkdir(exist_ok=True)
    command = [CHAOS, "--no-version-check", "--log-file", str(logs / f"{run_id}.chaostoolkit.log"), "run",
               str(spec.experiment), "--journal-path", str(logs / f"{run_id}.journal.json"),
               *spec.chaos_vars(run["settings"], results_dir.resolve())]
    row = {"run_id": run_id, "repetition": run["repetition"], **run["settings"],
           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    began = time.monotonic()
    interrupted = None
    with (logs / f"{run_id}.log").open("wb") as out:
        proc = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            print(f"  {run_id}: over --run-timeout ({timeout_s:.0f} s), interrupting it", flush=True)
            _wind_down(proc, signal.SIGINT)
        except (KeyboardInterrupt, Interrupted) as exc:
            interrupted = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
            print(f"\n  {run_id}: interrupted, waiting for chaos to roll back (up to {ROLLBACK_GRACE_S} s)", flush=True)
            _wind_down(proc, interrupted)
    folders = sorted(p for p in results_dir.iterdir() if p.is_dir())
    journal = _read_json(folders[-1] / "journal.json") if folders else None
    row |= {"run_folder": str(folders[-1].relative_to(sweep_dir)) if folders else "",
            "status": journal.get("status", "no journal") if journal else "no journal",
            "deviated": journal.get("deviated", "") if journal else "",
            "exit_code": proc.returncode, "duration_s": round(time.monotonic() - began, 1)}
    if interrupted is not None:
        row["status"] = "interrupted"
        raise Interrupted(interrupted, row)
    return row


def _wind_down(proc: subprocess.Popen, signum: int) -> None:
    """One signal to `chaos`, then its rollback's time; its whole session is killed only after."""
    with _signals_ignored():
        proc.send_signal(signum)
        try:
            proc.wait(ROLLBACK_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class _signals_ignored:
    """While `chaos` rolls back, a second Ctrl-C must not leave it orphaned mid-cleanup."""

    def __enter__(self):
        self.previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# -- the sweep ------------------------------------------------------------------------------

def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def sweep(spec: Spec, sweep_dir: Path, max_minutes: float = math.inf, run_timeout_s: float = 1800) -> int:
    """Run what the index does not have yet; 0 when every run is done, 2 when the time bound
    stopped it, 130 on Ctrl-C/SIGTERM."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    saved = _read_json(sweep_dir / "sweep.json")
    if saved is not None and saved != asdict(spec):
        raise SweepError(f"{sweep_dir} holds another sweep ({saved}); resume it with --resume or pick another --dir")
    (sweep_dir / "sweep.json").write_text(json.dumps(asdict(spec), indent=2) + "\n")
    runs, rows = spec.runs(), read_index(sweep_dir)
    todo = [run for run in runs if not is_done(rows.get(run["run_id"]))]
    print(f"sweep {sweep_dir}: {len(runs)} runs ({len(runs) - len(todo)} already done), {len(todo)} to go", flush=True)
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        return _run_all(spec, sweep_dir, todo, rows, max_minutes, run_timeout_s)
    except (KeyboardInterrupt, Interrupted):  # between two runs: nothing to wind down
        print(f"sweep stopped by a signal; resume with: python -m chaos.sweep --resume {sweep_dir}", flush=True)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_all(spec: Spec, sweep_dir: Path, todo: list[dict], rows: dict[str, dict], max_minutes: float,
             run_timeout_s: float) -> int:
    started, durations = time.monotonic(), []
    for n, run in enumerate(todo, 1):
        elapsed = time.monotonic() - started
        expected = sum(durations) / len(durations) if durations else 0.0
        if elapsed + expected > max_minutes * 60:
            print(f"stopping: --max-minutes {max_minutes:g} reached after {_duration(elapsed)} "
                  f"({len(todo) - n + 1} runs left; resume with --resume {sweep_dir})", flush=True)
            return 2
        label = " ".join(f"{k}={v}" for k, v in run["settings"].items())
        print(f"[{n}/{len(todo)}] {run['run_id']} {label} repetition {run['repetition']} ...", flush=True)
        rows[run["run_id"]] = {"run_id": run["run_id"], "repetition": run["repetition"], **run["settings"],
                               "status": "running"}
        write_index(sweep_dir, spec, rows)
        try:
            row = run_one(spec, run, sweep_dir, run_timeout_s)
        except Interrupted as exc:
            rows[run["run_id"]] = exc.row
            write_index(sweep_dir, spec, rows)
            print(f"sweep stopped by a signal; resume with: python -m chaos.sweep --resume {sweep_dir}", flush=True)
            return 130
        rows[run["run_id"]] = row
        write_index(sweep_dir, spec, rows)
        durations.append(row["duration_s"])
        left = len(todo) - n
        eta = f", about {_duration(left * sum(durations) / len(durations))} left" if left else ""
        print(f"  {row['status']} (deviated {row['deviated']}, exit {row['exit_code']}) in "
              f"{_duration(row['duration_s'])}: {row['run_folder'] or 'no run folder'}; {left} runs left{eta}",
              flush=True)
    print(f"sweep done: {sweep_dir / 'index.csv'}", flush=True)
    return 0


def parse_args(argv: list[str]) -> tuple[Spec, Path, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m chaos.sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", nargs="?", default="chaos/rack_breaker.yaml")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2", help="a setting to sweep")
    parser.add_argument("--var", action="append", default=[], metavar="KEY=VALUE", help="a fixed setting")
    parser.add_argument("--repeat", type=int, default=1, help="repetitions of every setting")
    parser.add_argument("--dir", type=Path, help="the sweep folder (default results/sweeps/<utc>-<experiment>)")
    parser.add_argument("--resume", type=Path, metavar="SWEEP_DIR", help="continue the sweep in this folder")
    parser.add_argument("--max-minutes", type=float, default=math.inf, help="bound on the whole sweep")
    parser.add_argument("--run-timeout", type=float, default=1800, help="seconds before one run is interrupted")
    args = parser.parse_args(argv)
    if args.resume:
        saved = _read_json(args.resume / "sweep.json")
        if saved is None:
            raise SweepError(f"{args.resume}: no sweep.json, nothing to resume")
        return Spec(**saved), args.resume, args
    if args.repeat < 1:
        raise SweepError(f"--repeat: at least 1, got {args.repeat}")
    experiment = next((p.resolve() for p in (Path(args.experiment), REPO / args.experiment) if p.is_file()), None)
    if experiment is None:
        raise SweepError(f"{args.experiment}: no such experiment")
    grid, fixed = parse_assignments(args.grid, "--grid", True), parse_assignments(args.var, "--var", False)
    check_keys(experiment, [*grid, *fixed])
    # relative to the repository when inside it, so that sweep.json reads the same anywhere
    name = str(experiment.relative_to(REPO)) if experiment.is_relative_to(REPO) else str(experiment)
    spec = Spec(name, grid, fixed, args.repeat)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return spec, args.dir or REPO / "results" / "sweeps" / f"{stamp}-{experiment.stem}", args


def main(argv: list[str] | None = None) -> int:
    try:
        spec, sweep_dir, args = parse_args(sys.argv[1:] if argv is None else argv)
        return sweep(spec, sweep_dir, args.max_minutes, args.run_timeout)
    except SweepError as exc:
        print(f"sweep: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
