"""A package's names loaded on first use (PEP 562), so importing the package stays light."""

from __future__ import annotations

import importlib


def lazy_getattr(package: str, names: dict[str, str]):
    """A module ``__getattr__`` for ``package`` that imports ``names[name]`` (a module path,
    relative to ``package`` when it starts with a dot) the first time ``name`` is asked for."""
    def __getattr__(name: str):
        if name in names:
            return getattr(importlib.import_module(names[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
