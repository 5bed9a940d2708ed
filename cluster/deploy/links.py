"""How network faults reach a cluster's links: named proxies (Toxiproxy API) or iptables."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cluster.deploy.faults import Faults

NEED = "network faults need links='proxied' or root"


class NoLinks:
    """Direct links without a firewall we may use: every network fault is refused."""

    def __init__(self, why: str):
        self.why = why

    def _refuse(self, *args, **kwargs):
        from cluster.deploy.faults import FaultError
        raise FaultError(f"{NEED} ({self.why})")

    block = toxic = client_toxic = _refuse

    def undo(self, step) -> None:
        raise RuntimeError(f"cannot undo {step}: {self.why}")


def links_for(faults: Faults):
    return NoLinks("direct links")
