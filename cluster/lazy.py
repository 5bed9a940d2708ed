"""Feature modules that load on first use, and a warm-up that loads them ahead of it.

A node can serve CDT, expression, HyperLogLog and UDF requests, but it needs none of that
code to join its cluster, and importing it was a third of a node's start-up: four nodes
starting at once on two cores waited ≈ 0.2 s longer for each other. ``lazy_import`` gives
the module object at once and runs the module's code at the first attribute access
(``importlib.util.LazyLoader``); a serving node calls ``load_pending`` while it waits for
its first quantum, so clients do not pay for the import either.
"""

import importlib.util
import sys
from types import ModuleType

_pending: list[ModuleType] = []


def lazy_import(name: str) -> ModuleType:
    """The module ``name`` (a top-level module or a package's submodule whose package is
    already imported), its code run when first used."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module named {name!r}", name=name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)  # as an import statement would
    spec.loader.exec_module(module)
    _pending.append(module)
    return module


def load_pending() -> None:
    """Run the code of every lazily imported module not used yet."""
    while _pending:
        _pending.pop().__name__  # noqa: B018  the first attribute access runs a lazy module's code
