"""Synthetic DOTA: ``{train,val}/images/P*.png`` + ``labelTxt/P*.txt`` (CRLF, header), ``test/images``."""

from __future__ import annotations

import random
from pathlib import Path

from skyeye_data.boxes import polygon_to_box
from skyeye_data.sources.base import Scale
from skyeye_data.sources.dota import LABELLED_SPLITS
from skyeye_data.synth.painter import synth_image

PAPER_COUNTS = {"train": 1411, "val": 458, "test": 937}
MINI_COUNTS = {"train": 3, "val": 2, "test": 1}
# the v1.0 archive as extracted (oriented labels): the first of DotaSource.layouts
LABELS = "labelTxt-v1.0/labelTxt"
SYNTH_CLASSES = ("plane", "small-vehicle", "storage-tank", "harbor", "tennis-court")


def write(raw_dir: Path, scale: Scale, rng: random.Random) -> int:
    counts = PAPER_COUNTS if scale == "paper" else MINI_COUNTS
    side = 48 if scale == "paper" else 256
    written = 0
    number = 0
    for split, count in counts.items():
        for _ in range(count):
            stem = f"P{number:04d}"
            number += 1
            objects = _synthetic_objects(rng, side)
            synth_image(raw_dir / split / "images" / f"{stem}.png", side, side, seed=f"dota:{stem}",
                        boxes=[polygon_to_box(c) for c, _ in objects])  # fmt: skip
            if split in LABELLED_SPLITS:
                _write_labels(raw_dir / split / LABELS / f"{stem}.txt", objects, header=True)
                written += 1
    if scale == "mini":
        # one devkit split patch: float coordinates, no header, same folders
        stem = "P0000__1__0___0"
        objects = [([float(c) + 0.5 for c in coords], label) for coords, label in _synthetic_objects(rng, side)]
        synth_image(raw_dir / "train" / "images" / f"{stem}.png", side, side, seed=f"dota:{stem}",
                    boxes=[polygon_to_box(c) for c, _ in objects])  # fmt: skip
        _write_labels(raw_dir / "train" / LABELS / f"{stem}.txt", objects, header=False)
        written += 1
    return written


def _synthetic_objects(rng: random.Random, side: int) -> list[tuple[list[float], str]]:
    """Two or three non-overlapping quadrilaterals (slightly rotated boxes), one per horizontal band."""
    count = rng.randint(2, 3)
    band = side // count
    objects = []
    for i in range(count):
        x1 = rng.randrange(0, side // 2)
        x2 = rng.randrange(x1 + side // 8, side - 2)
        y1 = i * band + 1
        y2 = y1 + band // 2
        skew = rng.randrange(0, 3)
        coords = [x1 + skew, y1, x2, y1 + skew, x2 - skew, y2, x1, y2 - skew]
        objects.append(([float(c) for c in coords], rng.choice(SYNTH_CLASSES)))
    return objects


def _write_labels(path: Path, objects, header: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["imagesource:GoogleEarth", "gsd:0.146343590398"] if header else []
    for coords, label in objects:
        numbers = " ".join(f"{c:g}" if header else f"{c:.1f}" for c in coords)
        lines.append(f"{numbers} {label} 0")
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("".join(line + "\r\n" for line in lines))  # DOTA's label files use CRLF
