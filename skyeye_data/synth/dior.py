"""Synthetic DIOR: JPEGImages-{trainval,test}/, both annotation folders, ImageSets/Main/{train,val,test}.txt.

The images and their objects are shared with DIOR-RSVG (:mod:`skyeye_data.synth.dior_rsvg`): the
same id gives the same bytes in both folders, as the real DIOR-RSVG reuses DIOR's images.
"""

from __future__ import annotations

import functools
import math
import random
from pathlib import Path
from xml.sax.saxutils import escape

from skyeye_data.sources.base import Scale
from skyeye_data.sources.dior import HBB_DIR, IMAGE_DIRS, OBB_DIR, SPLIT_DIR, SPLIT_NAMES
from skyeye_data.sources.dior_rsvg import PAPER_IMAGES as RSVG_IMAGES
from skyeye_data.sources.dior_rsvg import PAPER_SPLIT_SIZES as RSVG_SPLIT_SIZES
from skyeye_data.synth.painter import synth_image

PAPER_SPLITS = {"train": 5862, "val": 5863, "test": 11738}
MINI_SPLITS = {"train": 3, "val": 1, "test": 2}
SYNTH_SIDE = {"mini": 200, "paper": 32}
RSVG_OBJECTS = sum(RSVG_SPLIT_SIZES.values())  # 38,320 expressions, one object each, on 17,402 images
MAX_OBJECTS = 8  # 8 bands of 4 px on a 32 px synthetic image
SYNTH_CLASSES = ("airplane", "ship", "storagetank", "golffield", "Expressway-Service-area", "vehicle")


def synthetic_objects(number: int, scale: Scale) -> list[tuple[str, list[int]]]:
    """The (class, pixel box) list of synthetic DIOR image ``number``; the same for DIOR and DIOR-RSVG."""
    if scale == "paper":
        count = paper_object_counts()[number - 1] if number <= RSVG_IMAGES else 2
    else:
        count = 1 + number % 3
    side = SYNTH_SIDE[scale]
    rng = random.Random(f"dior-objects:{number}")
    objects = []
    cell = side // count
    for i in range(count):
        # one object per vertical band, so boxes never overlap and the preview stays readable
        x1 = rng.randrange(0, side // 2)
        x2 = rng.randrange(x1 + side // 8, side)
        y1 = i * cell + rng.randrange(0, max(1, cell // 4))
        y2 = min(side, y1 + max(2, cell // 2 + rng.randrange(0, max(1, cell // 4))))
        objects.append((SYNTH_CLASSES[(number + i) % len(SYNTH_CLASSES)], [x1, y1, x2, y2]))
    return objects


@functools.lru_cache(maxsize=1)
def paper_object_counts() -> tuple[int, ...]:
    """Objects on each of the 17,402 DIOR images DIOR-RSVG uses (paper scale), summing to 38,320.

    The published figures give the total and so the mean (2.20 per image), not the spread; the one
    public annotation file (RSVG-pytorch ``RSVGD/Annotations/00001.xml``) holds a single object. So
    the counts are drawn from the geometric distribution on 1, 2, ... with that mean -- the
    maximum-entropy choice when only the mean is known -- capped at :data:`MAX_OBJECTS`, then
    stepped by one on seeded images until the total is exact. The spread decides how many images
    hold no train expression (what DIOR-Conversa counts); the real files are needed to settle it.
    """
    p = RSVG_IMAGES / RSVG_OBJECTS
    rng = random.Random("dior-rsvg:objects-per-image")
    counts = [min(MAX_OBJECTS, 1 + int(math.log(1.0 - rng.random()) / math.log(1.0 - p))) for _ in range(RSVG_IMAGES)]
    counts[0] = 1  # as the real 00001.xml
    order = rng.sample(range(RSVG_IMAGES), RSVG_IMAGES)
    missing, step = RSVG_OBJECTS - sum(counts), 0
    while missing:
        i = order[step % RSVG_IMAGES]
        step += 1
        if missing > 0 and counts[i] < MAX_OBJECTS and i:
            counts[i], missing = counts[i] + 1, missing - 1
        elif missing < 0 and counts[i] > 1 and i:
            counts[i], missing = counts[i] - 1, missing + 1
    return tuple(counts)


def write_synthetic_image(path: Path, image_id: str, side: int, objects) -> None:
    synth_image(path, side, side, seed=f"dior:{image_id}", boxes=[box for _, box in objects])


def _xml_head(image_id: str, side: int) -> str:
    return (
        f"<?xml version='1.0' encoding='utf-8'?>\n<annotation>\n  <filename>{image_id}.jpg</filename>\n"
        f"  <size>\n    <width>{side}</width>\n    <height>{side}</height>\n    <depth>3</depth>\n  </size>\n"
    )


def horizontal_xml(image_id: str, side: int, objects) -> str:
    parts = [_xml_head(image_id, side)]
    for name, (x1, y1, x2, y2) in objects:
        parts.append(
            f"  <object>\n    <name>{escape(name)}</name>\n    <pose>Unspecified</pose>\n"
            f"    <truncated>0</truncated>\n    <difficult>0</difficult>\n    <bndbox>\n"
            f"      <xmin>{x1}</xmin>\n      <ymin>{y1}</ymin>\n      <xmax>{x2}</xmax>\n      <ymax>{y2}</ymax>\n"
            "    </bndbox>\n  </object>\n"
        )
    return "".join(parts) + "</annotation>\n"


def oriented_xml(image_id: str, side: int, objects) -> str:
    parts = [_xml_head(image_id, side)]
    for name, (x1, y1, x2, y2) in objects:
        corners = {
            "x_left_top": x1, "y_left_top": y1, "x_right_top": x2, "y_right_top": y1,
            "x_right_bottom": x2, "y_right_bottom": y2, "x_left_bottom": x1, "y_left_bottom": y2,
        }  # fmt: skip
        tags = "".join(f"      <{k}>{v}</{k}>\n" for k, v in corners.items())
        parts.append(
            f"  <object>\n    <type>robndbox</type>\n    <name>{escape(name)}</name>\n    <pose>Unspecified</pose>\n"
            f"    <truncated>0</truncated>\n    <difficult>0</difficult>\n    <robndbox>\n{tags}    </robndbox>\n"
            "    <angle>0</angle>\n  </object>\n"
        )
    return "".join(parts) + "</annotation>\n"


def write(raw_dir: Path, scale: Scale, rng: random.Random) -> int:
    counts = PAPER_SPLITS if scale == "paper" else MINI_SPLITS
    side = SYNTH_SIDE[scale]
    ids_by_split: dict[str, list[str]] = {}
    number = 1
    for split in SPLIT_NAMES:
        ids_by_split[split] = [f"{n:05d}" for n in range(number, number + counts[split])]
        number += counts[split]
    for split, ids in ids_by_split.items():
        for image_id in ids:
            objects = synthetic_objects(int(image_id), scale)
            write_synthetic_image(raw_dir / IMAGE_DIRS[split] / f"{image_id}.jpg", image_id, side, objects)
            (raw_dir / HBB_DIR).mkdir(parents=True, exist_ok=True)
            (raw_dir / OBB_DIR).mkdir(parents=True, exist_ok=True)
            (raw_dir / HBB_DIR / f"{image_id}.xml").write_text(horizontal_xml(image_id, side, objects))
            (raw_dir / OBB_DIR / f"{image_id}.xml").write_text(oriented_xml(image_id, side, objects))
    (raw_dir / SPLIT_DIR).mkdir(parents=True, exist_ok=True)
    for split, ids in ids_by_split.items():
        # the published split files are not sorted; shuffling keeps readers honest
        listed = list(ids)
        rng.shuffle(listed)
        (raw_dir / SPLIT_DIR / f"{split}.txt").write_text("".join(f"{i}\n" for i in listed))
    return sum(counts.values())
