"""refcluster's Chaos Toolkit extension: actions (chaos.experiment.actions), probes
(chaos.experiment.probes) and the control that owns a run (chaos.experiment.controls).

    chaos discover --no-install refcluster     # discovery.json, then `chaos init`
    chaos run chaos/rack_breaker.yaml

(``--no-install``: the package is this repository, installed by ``make setup``; without it
``chaos discover`` would ask pip for a package of that name.)
"""

from chaoslib.discovery.discover import discover_actions, discover_probes, initialize_discovery_result
from chaoslib.types import Discovery

__version__ = "0.1.0"


def discover(discover_system: bool = True) -> Discovery:
    """What `chaos discover` reports: every action and probe, with arguments and types."""
    discovery = initialize_discovery_result("refcluster", __version__, "refcluster")
    discovery["activities"].extend(discover_actions("chaos.experiment.actions"))
    discovery["activities"].extend(discover_probes("chaos.experiment.probes"))
    return discovery
