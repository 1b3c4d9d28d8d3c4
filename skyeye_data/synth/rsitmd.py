"""Synthetic RSITMD: ``dataset_RSITMD.json`` (with ``keywords``) + ``images/*.tif``."""

from __future__ import annotations

import random
from pathlib import Path

from skyeye_data.sources.base import Scale
from skyeye_data.sources.rsitmd import RSITMD, RSITMD_CLASSES
from skyeye_data.synth._karpathy import SynthSpec, karpathy_entry, write_synthetic


def rsitmd_entry(filename: str, imgid: int, split: str, captions: list[str], class_name: str) -> dict:
    """A Karpathy entry plus RSITMD's retrieval ``keywords`` (which the converter does not read)."""
    entry = karpathy_entry(filename, imgid, split, captions, class_name)
    entry["keywords"] = [
        class_name,
        *sorted({w for c in captions for w in c.split() if w in ("trees", "cars", "buildings")}),
    ]
    return entry


SPEC = SynthSpec(
    classes=RSITMD_CLASSES,
    image_size=(256, 256),
    paper_splits=RSITMD.published_splits,
    mini_splits={"train": 5, "test": 2},
    filename=lambda class_name, in_class, overall: f"{class_name}_{in_class}.tif",
    entry_json=rsitmd_entry,
)


def write(raw_dir: Path, scale: Scale, rng: random.Random) -> int:
    return write_synthetic(RSITMD(), SPEC, raw_dir, scale, rng)
