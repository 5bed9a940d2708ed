"""The YCSB options of ``locust -f workloads/ycsb.py`` and the workload properties they make.

Property precedence, lowest first (as ``ycsb -P file -p key=value``): the core workload
file of ``--workload`` (default ``a``), each ``--property-file`` in order, each ``--prop
key=value``, then the named overrides (``--recordcount`` …). ``-P`` is Locust's web port,
hence ``--property-file``.

Every option is also a field of the web UI's form (Locust's "Custom parameters"). Where an
option's default is None, Locust keeps the form's text as it is (``""`` for a field left
empty), so those options are read through the functions here, never changed in place: a
value of another type would change how Locust converts the next form.
"""

import time
from pathlib import Path

from workloads.properties import PropertyError, WorkloadProperties, load_properties

WORKLOADS_DIR = Path(__file__).resolve().parent
NAMED_OVERRIDES = {
    "recordcount": "records to load",
    "operationcount": "run phase: transactions over all workers, 0 = no limit",
    "fieldcount": "fields per record",
    "fieldlength": "bytes per field",
    "requestdistribution": "uniform, zipfian, latest, hotspot, exponential or sequential",
    "readallfields": "true or false",
    "writeallfields": "true or false",
    "insertorder": "hashed or ordered",
}  # the properties with an option of their own


class _FormGroup:
    """An argument group whose options are also fields of the web UI's form.

    ``LocustArgumentParser.add_argument`` marks an option ``include_in_web_ui``; a group's
    ``add_argument`` (plain argparse) does not, so the group keeps ``--help`` tidy and this
    marks each option as Locust would.
    """

    def __init__(self, parser, title: str):
        self._group = parser.add_argument_group(title)

    def add_argument(self, *args, **kwargs):
        action = self._group.add_argument(*args, **kwargs)
        action.include_in_web_ui = True
        return action


def add_arguments(parser) -> None:
    """Register the options on Locust's (configargparse) parser; all are sent to workers."""
    group = _FormGroup(parser, "YCSB workload (workloads/ycsb.py)")
    group.add_argument("--workload", choices=[*"abcdef", "none"], default="a",
                       help="YCSB core workload a..f, or none: only the property files")
    group.add_argument("--property-file", action="append", metavar="FILE",
                       help="YCSB property file; repeatable, later files win")
    group.add_argument("--prop", action="append", metavar="KEY=VALUE",
                       help="one property override, like ycsb -p; repeatable")
    # Checked as property values (properties.py), not by argparse: a form field left empty
    # then means "as the workload says" (a choice list would preselect its first entry).
    for name, meaning in NAMED_OVERRIDES.items():
        group.add_argument(f"--{name}", metavar="VALUE", help=f"{meaning}; default: the workload's")
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


def _items(value) -> list[str]:
    """A repeatable option: a list from the command line, ``"x,y"`` (or ``""``) from the form."""
    if isinstance(value, str):
        value = value.split(",")
    return [item.strip() for item in value or [] if item.strip()]


def seed(options) -> int | None:
    if options.seed in (None, ""):
        return None
    try:
        return int(options.seed)
    except ValueError:
        raise PropertyError(f"--seed: expected an integer, got {options.seed!r}") from None


def property_files(options) -> list[Path]:
    files = [] if options.workload == "none" else [WORKLOADS_DIR / f"workload{options.workload}"]
    files += [Path(name) for name in _items(options.property_file)]
    if not files:
        # YCSB's bare defaults mean 2^31 records: never what a load test wants.
        raise PropertyError("workload: --workload none needs --property-file FILE")
    return files


def overrides(options) -> dict[str, str]:
    result = {}
    for item in _items(options.prop):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise PropertyError(f"--prop: expected key=value, got {item!r}")
        result[key.strip()] = value.strip()
    for name in NAMED_OVERRIDES:
        value = getattr(options, name, None)
        if value not in (None, ""):
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
    if options.workload != "none":
        return options.workload
    return Path(_items(options.property_file)[-1]).name


def results_dir(options, test: int = 1) -> Path:
    """The folder of a process's ``test``-th test (the web UI can run several): ``-<test>`` after the first."""
    base = Path(options.results_dir) if options.results_dir else (
        Path("results") / f"{time.strftime('%Y%m%d-%H%M%S')}-ycsb-{workload_label(options)}")
    return base if test == 1 else base.with_name(f"{base.name}-{test}")
