"""Synthetic RSICD: ``dataset_rsicd.json`` + ``RSICD_images/*.jpg`` (see :mod:`skyeye_data.synth._karpathy`)."""

from __future__ import annotations

import random
from pathlib import Path

from skyeye_data.sources.base import Scale
from skyeye_data.sources.rsicd import RSICD, RSICD_CLASSES
from skyeye_data.synth._karpathy import SynthSpec, write_synthetic


def rsicd_filename(class_name: str, in_class: int, overall: int) -> str:
    # every seventh image gets a bare five-digit number, like the RSICD files RSIVQA-AID names
    return f"{overall:05d}.jpg" if overall % 7 == 0 else f"{class_name}_{in_class}.jpg"


def rsicd_names(count: int) -> list[str]:
    """The file names the synthetic RSICD gives its first ``count`` images at paper scale (RSIVQA-AID asks
    its questions about RSICD's files)."""
    total = sum(RSICD.published_splits.values())
    per_class = -(-total // len(RSICD_CLASSES))
    return [rsicd_filename(RSICD_CLASSES[n // per_class], n % per_class + 1, n + 1) for n in range(min(count, total))]


SPEC = SynthSpec(
    classes=RSICD_CLASSES,
    image_size=(224, 224),
    paper_splits=RSICD.published_splits,
    mini_splits={"train": 5, "val": 2, "test": 2},
    filename=rsicd_filename,
    capitalised=False,
)


def write(raw_dir: Path, scale: Scale, rng: random.Random) -> int:
    return write_synthetic(RSICD(), SPEC, raw_dir, scale, rng)
