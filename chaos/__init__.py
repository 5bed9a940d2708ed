"""The harness around experiments: load, safety workload, recorder, results and report,
the fault proxy (`chaos.proxy`) and the Chaos Toolkit extension (`chaos.experiment`)."""


def discover(discover_system: bool = True):
    """`chaos discover --no-install refcluster` imports the distribution's first top-level
    package, this one: hand over to the extension (imported only then)."""
    from chaos.experiment import discover as discover_extension

    return discover_extension(discover_system)
