"""Feature modules imported at first use, and a warm-up that imports them in the background.

A node can serve CDT, expression and HyperLogLog requests, but it needs none of that code
(nor numpy) to join its cluster, and importing it was a third of a node's start-up: four
nodes starting at once on two cores waited ≈ 0.2 s longer for each other. ``lazy_import``
gives a stand-in whose first attribute access imports the module; a serving node imports
them all in a thread (``load_in_background``) while it waits for its first quantum, so
neither its heartbeat nor its first clients wait for them. Both paths are ordinary
imports, so a request that needs a module while the thread is importing it waits for that
import to finish (the import system's per-module lock), never sees half a module.
"""

import importlib
import importlib.util
import threading
from collections.abc import Callable

_registered: list[str] = []


class LazyModule:
    """Stands for the module ``name``: attribute access imports it (once) and reads from it."""

    __slots__ = ("_name", "_module")

    def __init__(self, name: str):
        self._name = name
        self._module = None

    def __getattr__(self, attr: str):
        module = self._module
        if module is None:  # import_module returns once the module is whole, whoever imports it
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_import(name: str) -> LazyModule:
    """A stand-in for module ``name``, imported when first used. The name is checked now
    (which imports its parent packages)."""
    if importlib.util.find_spec(name) is None:
        raise ImportError(f"no module named {name!r}", name=name)
    if name not in _registered:
        _registered.append(name)
    return LazyModule(name)


def load_in_background(*first: Callable[[], object]) -> threading.Thread:
    """Run ``first`` (other warm-up work), then import every module given to ``lazy_import``,
    in a daemon thread."""

    def load() -> None:
        for call in first:
            call()
        for name in list(_registered):
            importlib.import_module(name)

    thread = threading.Thread(target=load, name="lazy-imports", daemon=True)
    thread.start()
    return thread
