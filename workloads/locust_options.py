"""The YCSB options of ``locust -f workloads/ycsb.py`` and the workload properties they make.

Property precedence, lowest first (as ``ycsb -P file -p key=value``): the core workload
file of ``--workload``, each ``--property-file`` in order, each ``--prop key=value``, then
the named overrides (``--recordcount`` …). ``-P`` is Locust's web port, hence
``--property-file``.
"""

import time
from pathlib import Path

from workloads.properties import PropertyError, WorkloadProperties, load_properties

WORKLOADS_DIR = Path(__file__).resolve().parent
NAMED_OVERRIDES = (
    "recordcount", "operationcount", "fieldcount", "fieldlength", "requestdistribution",
    "readallfields", "writeallfields", "insertorder",
)  # fmt: skip


def add_arguments(parser) -> None:
    """Register the options on Locust's (configargparse) parser; all are sent to workers."""
    group = parser.add_argument_group("YCSB workload (workloads/ycsb.py)")
    group.add_argument("--workload", choices=list("abcdef"), help="YCSB core workload a..f")
    group.add_argument("--property-file", action="append", metavar="FILE",
                       help="YCSB property file; repeatable, later files win")
    group.add_argument("--prop", action="append", metavar="KEY=VALUE",
                       help="one property override, like ycsb -p; repeatable")
    group.add_argument("--recordcount", type=int)
    group.add_argument("--operationcount", type=int, help="run phase: transactions over all workers (0 = no limit)")
    group.add_argument("--fieldcount", type=int)
    group.add_argument("--fieldlength", type=int)
    group.add_argument("--requestdistribution",
                       choices=["uniform", "zipfian", "latest", "hotspot", "exponential", "sequential"])
    group.add_argument("--readallfields", choices=["true", "false"])
    group.add_argument("--writeallfields", choices=["true", "false"])
    group.add_argument("--insertorder", choices=["hashed", "ordered"])
    group.add_argument("--phase", choices=["load", "run"], default="run",
                       help="load: insert the records; run: the transaction mix (default)")
    group.add_argument("--hosts", default="",
                       help="seed nodes host:port,host:port; none = start an embedded LocalCluster")
    group.add_argument("--namespace", default="test")
    group.add_argument("--set", dest="set_name", default="",
                       help="Aerospike set; default the YCSB table (usertable)")
    group.add_argument("--target-rate", type=float, default=0.0, metavar="OPS",
                       help="open-loop target in transactions/s over all workers (0 = as fast as possible)")
    group.add_argument("--results-dir", default="", help="default results/<timestamp>-ycsb-<workload>/")
    group.add_argument("--seed", type=int, help="seed of the key and value streams (worker i uses seed + i)")
    group.add_argument("--embedded-nodes", type=int, default=3, help="size of the embedded cluster")
    group.add_argument("--embedded-rf", type=int, default=2, help="replication factor of the embedded cluster")


def property_files(options) -> list[Path]:
    files = [WORKLOADS_DIR / f"workload{options.workload}"] if options.workload else []
    files += [Path(name) for name in options.property_file or []]
    if not files:
        # YCSB's bare defaults mean 2^31 records: never what a load test wants.
        raise PropertyError("workload: give --workload a..f or --property-file FILE")
    return files


def overrides(options) -> dict[str, str]:
    result = {}
    for item in options.prop or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise PropertyError(f"--prop: expected key=value, got {item!r}")
        result[key.strip()] = value.strip()
    for name in NAMED_OVERRIDES:
        value = getattr(options, name, None)
        if value is not None:
            result[name] = str(value)
    return result


def properties(options) -> WorkloadProperties:
    return load_properties(*property_files(options), overrides=overrides(options))


def parse_hosts(text: str) -> list[tuple[str, int]]:
    """``"127.0.0.1:3000,127.0.0.2"`` → ``[("127.0.0.1", 3000), ("127.0.0.2", 3000)]``."""
    seeds = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "3000")
        if not port.isdigit():
            raise ValueError(f"--hosts: bad port in {item!r}")
        seeds.append((host, int(port)))
    return seeds


def workload_label(options) -> str:
    if options.workload:
        return options.workload
    return Path(options.property_file[-1]).name


def results_dir(options) -> Path:
    if options.results_dir:
        return Path(options.results_dir)
    return Path("results") / f"{time.strftime('%Y%m%d-%H%M%S')}-ycsb-{workload_label(options)}"
