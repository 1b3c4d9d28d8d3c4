"""The registry of source converters: one module per public dataset.

A converter module defines a :class:`~skyeye_data.sources.base.SourceConverter` subclass decorated
with :func:`register`. ``skyeye sources`` lists them; ``skyeye convert NAME`` runs one. Every module
of this package not starting with ``_`` (and not ``base``) is a converter module: dropping
``<name>.py`` here is all it takes to register a source (its writer goes in ``skyeye_data/synth/``).

The helpers below are how the rest of the toolkit reads the dataset facts the converter classes
carry (titles, benchmark splits, the paper's counts), so those facts live in one place.
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


def benchmark_sources() -> frozenset[str]:
    """The sources SkyEyeGPT reports scores on (their val/test records become eval shards)."""
    return frozenset(name for name, source in all_sources().items() if source.benchmark_splits)


def dataset_title(name: str) -> str:
    """How tables and reports name a source ("RSVQA-HR"); an unknown name is shown as it is."""
    source = all_sources().get(name)
    return (source.short_title or source.name) if source else name


def subset_title(name: str, subset: str) -> str:
    """How reports name a subset of a source ("test set 2"); the subset itself when it has no title."""
    source = all_sources().get(name)
    return source.subset_titles.get(subset, subset) if source else subset


def report_order() -> list[str]:
    """Source names in the order of the paper's results tables (sources without a rank left out)."""
    ranked = [(s.report_rank, name) for name, s in all_sources().items() if s.report_rank is not None]
    return [name for _, name in sorted(ranked)]


def paper_table() -> dict[str, tuple[str, int]]:
    """Recipe entry (source or mix) -> (the paper's label, the paper's count), from every converter."""
    table: dict[str, tuple[str, int]] = {}
    for source in all_sources().values():
        for entry, row in source.paper_counts.items():
            if entry in table:
                raise ValueError(f"paper count of {entry!r} claimed by two sources")
            table[entry] = row
    return table


__all__ = [
    "LayoutError",
    "Rejected",
    "SourceConverter",
    "all_sources",
    "benchmark_sources",
    "dataset_title",
    "get_source",
    "paper_table",
    "register",
    "report_order",
    "subset_title",
]
