"""Synthetic raw corpora in the published layouts, for the demo, tests and benchmarks.

``mini``: a few records per source. ``paper``: the real datasets' image and record counts with tiny
images. Each source's writer is the module ``skyeye_data/synth/<source name>.py`` with a function
``write(raw_dir, scale, rng) -> int`` (raw records written); the writers share the image painter
(:mod:`skyeye_data.synth.painter`) and, per file format, the helpers in the ``_``-prefixed modules.

Layering: this package sits above the source registry (:mod:`skyeye_data.sources`): a writer may
read its converter's constants (file names, published counts), a converter never imports a writer.
Writers are discovered like converters, by listing this package, so a new source's two files
(``sources/<name>.py`` and ``synth/<name>.py``) are all it takes.
"""

from __future__ import annotations

import importlib
import pkgutil
import random
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterable

from skyeye_data.sources import all_sources
from skyeye_data.sources.base import Scale
from skyeye_data.synth.painter import synth_image

_SHARED_MODULES = frozenset({"painter"})


def writers() -> dict[str, ModuleType]:
    """Source name -> its writer module (every public module of this package except the painter)."""
    found = {}
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_") and module.name not in _SHARED_MODULES:
            found[module.name] = importlib.import_module(f"{__name__}.{module.name}")
    return found


def synthesize(name: str, raw_dir: Path, scale: Scale, rng: random.Random) -> int:
    """Write one source's synthetic layout under ``raw_dir``; return the raw records written."""
    all_sources()[name]  # KeyError for an unknown source, before anything is written
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as error:
        if error.name != f"{__name__}.{name}":
            raise
        raise KeyError(f"source {name!r} has no synthetic-layout writer (expected skyeye_data/synth/{name}.py)") from None
    return module.write(raw_dir, scale, rng)


def synthesize_raw_root(
    raw_root: Path,
    scale: Scale = "mini",
    sources: Iterable[str] | None = None,
    seed: int = 0,
    on_source: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Write every (or the named) source's synthetic layout under ``raw_root/<source>/``."""
    names = list(sources) if sources else list(all_sources())
    counts: dict[str, int] = {}
    for name in names:
        rng = random.Random(f"{seed}:{name}")
        counts[name] = synthesize(name, raw_root / name, scale, rng)
        if on_source:
            on_source(name, counts[name])
    return counts


__all__ = ["synth_image", "synthesize", "synthesize_raw_root", "writers"]
