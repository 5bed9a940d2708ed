"""Lazily imported modules (cluster/lazy.py) and what a starting node leaves unloaded."""

import subprocess
import sys
import textwrap

import pytest

from cluster import lazy


@pytest.fixture
def probe_module(tmp_path, monkeypatch):
    """A module that records in a file that its code ran."""
    ran = tmp_path / "ran"
    (tmp_path / "lazy_probe_mod.py").write_text(f"open({str(ran)!r}, 'a').write('x')\nVALUE = 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "lazy_probe_mod", ran
    sys.modules.pop("lazy_probe_mod", None)


def test_a_lazy_module_runs_at_its_first_attribute_access(probe_module):
    name, ran = probe_module
    module = lazy.lazy_import(name)
    assert not ran.exists()
    assert module.VALUE == 7
    assert ran.read_text() == "x"
    assert lazy.lazy_import(name) is module  # imported once


def test_load_pending_runs_what_was_not_used_yet(probe_module):
    name, ran = probe_module
    lazy.lazy_import(name)
    lazy.load_pending()
    assert ran.read_text() == "x"
    assert sys.modules[name].VALUE == 7


def test_an_unknown_module_fails_at_once():
    with pytest.raises(ImportError, match="no_such_module_here"):
        lazy.lazy_import("no_such_module_here")


def test_a_node_starts_without_importing_numpy_or_the_feature_modules():
    """Start-up cost: four nodes starting on two cores wait for each other's imports."""
    check = textwrap.dedent("""
        import sys, types
        import cluster.node.main, cluster.node.server
        assert "numpy" not in sys.modules, "numpy"
        for name in ("cluster.core.cdt", "cluster.core.expressions", "cluster.core.hll"):
            assert type(sys.modules[name]) is not types.ModuleType, name + " was loaded"
        from cluster import lazy
        lazy.load_pending()
        assert sys.modules["cluster.core.cdt"].read
    """)
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
