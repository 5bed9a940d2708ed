"""The invariants are not vacuous: each deliberately broken core below is caught.

Bugs are injected by wrapping ``Membership`` construction in the simulator (its
``membership_factory`` parameter) and patching one instance method; production code has no
flag for them.
"""

import itertools
import types

from cluster.core.membership import Membership
from cluster.core.messages import Learn
from cluster.sim.simulation import SimConfig, Simulation


def with_bug(patch):
    def factory(*args, **kwargs):
        m = Membership(*args, **kwargs)
        patch(m)
        return m

    return factory


def run(seed, patch, **config):
    return Simulation(SimConfig(seed=seed, fault_ms=15_000, **config), membership_factory=with_bug(patch)).run()


def seeds_with_final_split(count):
    found = (s for s in itertools.count() if Simulation(SimConfig(seed=s, fault_ms=15_000)).schedule.final_split)
    return list(itertools.islice(found, count))


def never_expire(m):
    m.heartbeat._expire = lambda now_ms: None


def skip_accept_phase(m):
    """A proposer that goes from a majority of promises straight to LEARN."""
    clustering = m.clustering

    def on_promise(self, msg, now_ms):
        r = self._current_round(msg.seq, msg.proposer)
        if r is None or r.phase != "prepare":
            return
        r.promised.add(msg.src)
        if len(r.promised) >= r.majority:
            r.phase = "learn"
            for node in r.succession:
                self._out.fabric(node, Learn(self.node_id, r.seq, r.cluster_key, r.succession))

    clustering._on_Promise = types.MethodType(on_promise, clustering)


class RepeatingKeys:
    """Cluster keys drawn from a tiny pool, so a key gets reused for another membership."""

    def __init__(self):
        self.keys = itertools.cycle([0xAAAA, 0xBBBB])

    def getrandbits(self, bits):
        return next(self.keys)


def reuse_cluster_keys(m):
    m.clustering._rng = RepeatingKeys()


def test_heartbeat_that_never_expires_nodes_is_caught():
    for seed in seeds_with_final_split(3):
        result = run(seed, never_expire)
        assert not result.ok and "sees" in result.violations[0], result.violations


def test_principal_skipping_the_accept_phase_is_caught():
    result = run(1, skip_accept_phase)
    assert not result.ok and "not converged" in result.violations[0]


def test_reused_cluster_keys_are_caught():
    violations = [v for seed in range(5) for v in run(seed, reuse_cluster_keys).violations]
    assert any("two succession lists" in v for v in violations)  # one key, two memberships
    assert any("announced cluster" in v and "twice" in v for v in violations)  # a node back in an "old" cluster


def test_the_same_seeds_pass_without_the_bugs():
    for seed in [1, *seeds_with_final_split(3)]:
        assert run(seed, lambda m: None).ok
