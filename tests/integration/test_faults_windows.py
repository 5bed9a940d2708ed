"""Fault windows as a report lists them: one latency window for several links, and a window
recorded for a fault made outside the API (a real proxied cluster, refproxy)."""

from cluster.deploy.faults import FaultError, Faults
from cluster.deploy.local_cluster import LocalCluster


def toxics(lc: LocalCluster) -> dict[str, int]:
    api = lc.proxy_api()
    return {f"{a}-{b}": len(api.proxy(f"{a}-{b}-fabric").toxics)
            for a in lc.nodes for b in lc.nodes if a != b}


def test_a_latency_on_several_links_is_one_window_and_a_recorded_fault_is_active(tmp_path):
    seen = []
    with LocalCluster(nodes=3, rf=2, links="proxied", run_dir=tmp_path) as lc:
        faults = Faults(lc, on_window=lambda w: seen.append((w.kind, w.targets, w.end is None)))
        try:
            window = faults.latency("n1", ["n2", "n3"], 50, channels=("fabric",))
            assert window.targets == ("n1", "n2", "n3") and faults.active() == [window]
            assert toxics(lc) == {"n1-n2": 1, "n2-n1": 1, "n1-n3": 1, "n3-n1": 1, "n2-n3": 0, "n3-n2": 0}
            faults.end(window)
            assert set(toxics(lc).values()) == {0}
            for bad in ([], ["n2", "n2"], ["n1"]):
                try:
                    faults.latency("n1", bad, 50)
                    raise AssertionError(f"accepted peers {bad}")
                except FaultError:
                    pass

            fill = faults.record("fill", ["n1", "n2", "n3"])
            assert faults.active() == [fill]
            faults.end(fill)
            assert not faults.active() and fill.end is not None
        finally:
            faults.restore()
    assert seen == [("latency", ("n1", "n2", "n3"), True), ("latency", ("n1", "n2", "n3"), False),
                    ("fill", ("n1", "n2", "n3"), True), ("fill", ("n1", "n2", "n3"), False)]
