"""``OUT/manifest.json`` (docs/ARCHITECTURE.md, "Manifest") and the dataset card beside it.

:func:`write_card_and_manifest` writes README.md, then the manifest -- last: a build folder without
a manifest is incomplete. :func:`read_manifest` is how every reader of a build (stats, export,
review) checks that it is complete.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from skyeye_data.compile.card import dataset_card, license_file
from skyeye_data.compile.errors import BuildError
from skyeye_data.compile.images import train_images_entry
from skyeye_data.compile.recipe import Recipe
from skyeye_data.compile.tally import MixTally, SourceTally
from skyeye_data.hashing import file_sha256
from skyeye_data.io import write_json_atomic, write_text_atomic

MANIFEST_FORMAT = "skyeye-build/1"


def sample_counts(tallies: dict[str, SourceTally], mixes: dict[str, MixTally]) -> dict[str, dict[str, dict[str, int]]]:
    """samples per source (or mix) / task / split; every sample is a train sample (eval goes to eval/)."""
    counts = {name: {task: {"train": n} for task, n in sorted(t.samples.items())} for name, t in tallies.items()}
    counts |= {name: {task: {"train": n} for task, n in sorted(m.samples.items())} for name, m in mixes.items()}
    return counts


def compose_manifest(recipe: Recipe, tallies: dict[str, SourceTally], mixes: dict[str, MixTally], images: int,
                     quarantine_lines: int, warnings: list[str], review: dict[str, Any] | None) -> dict[str, Any]:  # fmt: skip
    """Everything but ``files`` (their checksums come once they are all written)."""
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "recipe": {"name": recipe.name, "fingerprint": recipe.fingerprint(), "body": recipe.model_dump(mode="json")},
        "sources": {name: t.to_json() for name, t in tallies.items()},
        "mixes": {name: m.to_json() for name, m in mixes.items()},
        "counts": {
            "samples": sample_counts(tallies, mixes),
            "samples_total": sum(t.samples_total for t in [*tallies.values(), *mixes.values()]),
            "eval": {name: dict(sorted(t.eval_items.items())) for name, t in tallies.items() if t.eval_items},
            "images": images,
            "quarantine_lines": quarantine_lines,
            "duplicates_dropped": sum(sum(t.duplicates.values()) for t in [*tallies.values(), *mixes.values()]),
            "leak_guard_excluded": {name: sum(t.leak_guard.values()) for name, t in tallies.items() if t.leak_guard},
            # train images the leak guard's scope let into training that an eval split also holds, per source pair
            "eval_overlap": {name: dict(sorted(t.eval_overlap.items())) for name, t in tallies.items() if t.eval_overlap},
        },
        "leak_guard": recipe.leak_guard,
        "balanced": all(t.balanced for t in tallies.values()),
        "warnings": warnings,
    }
    if review is not None:  # review outcomes per source (skyeye_data.review.apply.ReviewCounts)
        manifest["review"] = review
    if recipe.train_size:  # the pre-resized training tier (skyeye_data.compile.images; read by skyeye_model.images.training_images)
        manifest["train_images"] = train_images_entry(recipe.train_size)
    return manifest


def write_card_and_manifest(out: Path, manifest: dict[str, Any], files: list[Path]) -> dict[str, Any]:
    """Write README.md, then manifest.json with the sha256 and size of every output file (last)."""
    write_text_atomic(out / "README.md", dataset_card(manifest, sorted(p.relative_to(out).as_posix() for p in files)))
    write_text_atomic(out / "LICENSE.md", license_file(manifest))
    listed = sorted(files + [out / "README.md", out / "LICENSE.md"])
    manifest["files"] = {p.relative_to(out).as_posix(): {"sha256": file_sha256(p), "bytes": p.stat().st_size} for p in listed}
    write_json_atomic(out / "manifest.json", manifest)
    return manifest


def read_manifest(out: Path) -> dict[str, Any]:
    path = Path(out) / "manifest.json"
    if not path.is_file():
        raise BuildError(f"{out} holds no manifest.json: not a (complete) build output")
    return json.loads(path.read_text(encoding="utf-8"))
