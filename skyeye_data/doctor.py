"""Check a raw root against the published layouts and counts, without converting (``skyeye doctor``).

For every source folder: which accepted layout variant it holds (``SourceConverter.find_layout``),
or the LayoutError that names the folder, what was expected, what was found and the fix; then the
raw records counted cheaply (``count_raw``: entries per split, lines per file, label files, videos)
against the published counts (``published_splits`` / ``published_files``), with what is missing or
extra. ``skyeye build`` runs :func:`diagnose` on a recipe's sources before converting and stops
when one cannot be built. Layer: above the source registry, below convert and compile.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from skyeye_data import rawfs
from skyeye_data.sources import LayoutError, all_sources


@dataclass
class SourceCheck:
    """What the doctor found for one source folder."""

    name: str
    folder: Path
    present: bool
    layout: str | None = None  # the variant found ("archive v1.0 (...) — train: ...")
    evidence: str | None = None
    problem: str | None = None  # the LayoutError: what is wrong and the fix
    unit: str = "records"
    counts: dict[str, int] | None = None
    published: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def buildable(self) -> bool:
        return self.present and self.problem is None

    def differences(self) -> list[str]:
        """Published parts missing, extra ones, and counts that differ from the published ones."""
        if not self.counts or not self.published:
            return []
        lines = []
        for part, expected in self.published.items():
            found = self.counts.get(part, 0)
            if found == 0:
                lines.append(f"missing: {part} (published: {expected:,} {self.unit})")
            elif found != expected:
                lines.append(f"{part}: {found:,} {self.unit}, published {expected:,} ({found - expected:+,})")
        lines += [f"extra: {part} ({n:,} {self.unit}; not in the release)" for part, n in self.counts.items()
                  if part not in self.published]  # fmt: skip
        return lines


def check_source(name: str, folder: Path, options: dict | None = None) -> SourceCheck:
    """What ``folder`` holds for source ``name``; ``options``: the recipe's converter options (DOTA's
    ``version``: which labels to look for when the folder holds several versions)."""
    source = all_sources()[name].configured(**(options or {}))
    published = source.published_files or source.published_splits
    check = SourceCheck(name, folder, folder.is_dir(), unit=source.published_unit, published=dict(published))
    if not check.present:
        return check
    start = time.perf_counter()
    try:
        found = source.find_layout(folder)
    except LayoutError as error:
        check.problem = str(error)
    else:
        check.layout, check.evidence = found.describe(), found.layout.evidence
        try:
            check.counts = source.count_raw(folder, found)
        except (rawfs.RawAccessError, ValueError, OSError) as error:  # ValueError: JSONDecodeError included
            check.problem = f"{name}: {folder} holds the {found.layout.name} layout but a file cannot be read: " + (
                error.reason if isinstance(error, rawfs.RawAccessError) else f"{type(error).__name__}: {error}")
    check.seconds = time.perf_counter() - start
    return check


def diagnose(raw_root: Path, names: Iterable[str] | None = None) -> list[SourceCheck]:
    """A :class:`SourceCheck` for each named source (default: every registered one) under ``raw_root``;
    every read goes through the guarded raw reader scoped to ``raw_root`` (no FIFO, no link out)."""
    with rawfs.scope(raw_root):
        return [check_source(name, raw_root / name) for name in (names if names is not None else all_sources())]


def unknown_folders(raw_root: Path) -> list[str]:
    """Folders of the raw root that no converter is named after (a typo, or a dataset not supported)."""
    if not raw_root.is_dir():
        return []
    known = set(all_sources())
    return sorted(p.name for p in raw_root.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in known)
