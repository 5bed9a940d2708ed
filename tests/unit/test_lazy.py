"""Lazily imported modules (cluster/lazy.py) and what a starting node leaves unloaded."""

import subprocess
import sys
import textwrap
import time

import pytest

from cluster import lazy


@pytest.fixture(autouse=True)
def own_registry(monkeypatch):
    monkeypatch.setattr(lazy, "_registered", [])


@pytest.fixture
def probe_module(tmp_path, monkeypatch):
    """A module that records in a file that its code ran."""
    ran = tmp_path / "ran"
    (tmp_path / "lazy_probe_mod.py").write_text(f"with open({str(ran)!r}, 'a') as f:\n    f.write('x')\nVALUE = 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "lazy_probe_mod", ran
    sys.modules.pop("lazy_probe_mod", None)


def test_a_lazy_module_is_imported_at_its_first_attribute_access(probe_module):
    name, ran = probe_module
    module = lazy.lazy_import(name)
    assert not ran.exists()
    assert module.VALUE == 7
    assert module.VALUE == 7
    assert ran.read_text() == "x"  # imported once


def test_the_background_load_runs_its_first_calls_then_imports_what_was_not_used(probe_module):
    name, ran = probe_module
    lazy.lazy_import(name)
    calls = []
    lazy.load_in_background(lambda: calls.append(name in sys.modules)).join(10)
    assert calls == [False]
    assert ran.read_text() == "x"
    assert sys.modules[name].VALUE == 7


def test_a_module_used_while_the_background_imports_it_is_seen_whole(tmp_path, monkeypatch):
    """The request waits for the thread's import instead of reading half a module."""
    (tmp_path / "lazy_slow_mod.py").write_text("import time\ntime.sleep(0.3)\nLAST = 'done'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        module = lazy.lazy_import("lazy_slow_mod")
        thread = lazy.load_in_background()
        time.sleep(0.1)  # the thread is inside the module's code now
        assert module.LAST == "done"
        thread.join(10)
    finally:
        sys.modules.pop("lazy_slow_mod", None)


def test_an_unknown_module_fails_at_once():
    with pytest.raises(ImportError, match="no_such_module_here"):
        lazy.lazy_import("no_such_module_here")


def test_a_node_starts_without_importing_numpy_or_the_feature_modules():
    """Start-up cost: four nodes starting on two cores wait for each other's imports."""
    check = textwrap.dedent("""
        import sys
        import cluster.node.main, cluster.node.server
        assert "numpy" not in sys.modules, "numpy"
        for name in ("cluster.core.cdt", "cluster.core.expressions", "cluster.core.hll"):
            assert name not in sys.modules, name
        from cluster import lazy
        lazy.load_in_background().join(60)
        assert "cluster.core.cdt" in sys.modules and "numpy" in sys.modules
    """)
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
