"""The main job of `make demo`: run chaos/rack_breaker.yaml on the embedded local cluster.

    python -m cluster.deploy.demo [chaos run options, e.g. --var repair_s=60]

`chaos run` starts a 4-node cluster (2 racks, RF 2), YCSB load and the safety workload,
kills a whole rack, brings it back, prints the summary and the path of report.html, and
exits as Chaos Toolkit does (0 only if the steady state held before and after). Its journal
and log go to run/demo/; the run's own folder is results/<utc-time>-rack_breaker/. Ctrl-C
interrupts the experiment, which still restores and stops everything before exiting.
"""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXPERIMENT = REPO / "chaos" / "rack_breaker.yaml"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = REPO / "run" / "demo"
    out.mkdir(parents=True, exist_ok=True)
    chaos = Path(sys.executable).with_name("chaos")  # the venv's, beside its python
    command = [str(chaos), "--no-version-check", "--log-file", str(out / "chaostoolkit.log"), "run",
               str(EXPERIMENT.relative_to(REPO)), "--journal-path", str(out / "journal.json"), *argv]
    print(f"$ {' '.join(command)}", flush=True)
    proc = subprocess.Popen(command, cwd=REPO)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue  # the terminal's Ctrl-C reached chaos too: wait while it cleans up


if __name__ == "__main__":
    raise SystemExit(main())
