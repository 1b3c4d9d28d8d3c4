"""The registry of source converters: one module per public dataset.

A converter module defines a :class:`~skyeye_data.sources.base.SourceConverter` subclass decorated
with :func:`register`. ``skyeye sources`` lists them; ``skyeye convert NAME`` runs one.
"""

from __future__ import annotations

import importlib
import pkgutil

from skyeye_data.sources.base import LayoutError, Rejected, SourceConverter

_REGISTRY: dict[str, SourceConverter] = {}
_LOADED = False  # every source module imported


def register(cls: type[SourceConverter]) -> type[SourceConverter]:
    if cls.name in _REGISTRY:
        raise ValueError(f"source {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls()
    return cls


def _load_all() -> None:
    global _LOADED
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_") and module.name != "base":
            importlib.import_module(f"{__name__}.{module.name}")
    _LOADED = True


def all_sources() -> dict[str, SourceConverter]:
    # not "if not _REGISTRY": importing one source module directly registers it and would hide the rest
    if not _LOADED:
        _load_all()
    return dict(sorted(_REGISTRY.items()))


def get_source(name: str) -> SourceConverter:
    sources = all_sources()
    if name not in sources:
        raise KeyError(f"unknown source {name!r}; known: {', '.join(sources)}")
    return sources[name]


__all__ = ["LayoutError", "Rejected", "SourceConverter", "all_sources", "get_source", "register"]
