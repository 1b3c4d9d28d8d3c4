"""What ``skyeye build`` hands back: :class:`BuildResult`, from a build just run or from the manifest of one verified.

Light on purpose (the tallies and the standard library): the no-change shortcut of ``skyeye build``
(:mod:`skyeye_data.compile.quick`) makes its result from the manifest without importing the stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skyeye_data.compile.tally import MixTally, SourceTally


@dataclass
class BuildResult:
    out: Path
    manifest: dict[str, Any]
    sources: dict[str, SourceTally]
    mixes: dict[str, MixTally]
    warnings: list[str]
    files: list[Path] = field(default_factory=list)
    verified_only: bool = False  # nothing changed since the build in OUT: its files were checked, not rewritten
    records_from_cache: list[str] = field(default_factory=list)  # sources whose converted records came from the cache
    samples_from_cache: list[str] = field(default_factory=list)  # sources and mixes whose compiled segment came from the cache


def verified_result(out: Path, manifest: dict[str, Any]) -> BuildResult:
    """The result of a rebuild that only verified the build in ``out`` (its counts are its manifest's)."""
    tallies = {name: SourceTally.from_json(name, data) for name, data in manifest["sources"].items()}
    mixes = {name: MixTally.from_json(name, data) for name, data in manifest["mixes"].items()}
    files = [out / relative for relative in manifest["files"]]
    return BuildResult(out, manifest, tallies, mixes, manifest["warnings"], files, verified_only=True)


def expected_counts(manifest: dict[str, Any]) -> dict[tuple[str, str], int]:
    """The recipe's ``expected`` sample counts per (source or mix, task), from a build's manifest."""
    body = manifest["recipe"]["body"]
    entries = {**body.get("sources", {}), **body.get("mixes", {})}
    return {(name, task): n for name, spec in entries.items() for task, n in ((spec or {}).get("expected") or {}).items()}
