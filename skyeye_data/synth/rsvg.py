"""Synthetic RSVG (GeoVG): ``images/<n>.jpg`` and the split lists ``rsvg_{train,val,test}.pth`` as released."""

from __future__ import annotations

import pickle
import random
import zipfile
from pathlib import Path

from skyeye_data.io import atomic_path
from skyeye_data.sources.base import Scale
from skyeye_data.sources.rsvg import SPLIT_NAMES, split_file
from skyeye_data.synth.painter import synth_image

PAPER_IMAGES = 4239
PAPER_SPLIT_SIZES = {"train": 5505, "val": 1201, "test": 1227}
MINI_IMAGES = 4
MINI_SPLIT_SIZES = {"train": 3, "val": 1, "test": 2}
_OBJECTS = ("water tower", "storage tank", "tennis court", "ground track field", "bridge", "vehicle")


def write(raw_dir: Path, scale: Scale, rng: random.Random) -> int:
    images, sizes = (PAPER_IMAGES, PAPER_SPLIT_SIZES) if scale == "paper" else (MINI_IMAGES, MINI_SPLIT_SIZES)
    side = 48 if scale == "paper" else 224
    total = sum(sizes.values())
    entries_of_image = _expressions_per_image(images, total)
    lists: dict[str, list] = {split: [] for split in SPLIT_NAMES}
    split_of_image = _assign_images(entries_of_image, sizes)
    for number, count in enumerate(entries_of_image):
        image_file = f"{number + 1:05d}.jpg"
        boxes = _synthetic_boxes(rng, side, count)
        synth_image(raw_dir / "images" / image_file, side, side, seed=f"rsvg:{image_file}", boxes=boxes)
        for box in boxes:
            lists[split_of_image[number]].append((image_file, box, _synthetic_expression(rng, box, side), None))
    for split, entries in lists.items():
        write_pth(split_file(raw_dir, split, ".pth"), entries)
    return total


def write_pth(path: Path, obj) -> None:
    """``obj`` as ``torch.save`` (zip format) stores it, without torch: ``archive/data.pkl`` (pickle
    protocol 2, what torch.save uses) plus the ``byteorder`` and ``version`` records, uncompressed,
    fixed timestamps (same input, same bytes). ``torch.load(path, weights_only=True)`` reads it."""
    records = {"data.pkl": pickle.dumps(obj, protocol=2), "byteorder": b"little", "version": b"3\n",
               ".data/serialization_id": b"0" * 40}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for name, data in records.items():
            archive.writestr(zipfile.ZipInfo(f"archive/{name}", date_time=(1980, 1, 1, 0, 0, 0)), data)


def _expressions_per_image(images: int, total: int) -> list[int]:
    """Spread ``total`` expressions over ``images`` images: the first ones get one extra."""
    base, extra = divmod(total, images)
    return [base + (1 if i < extra else 0) for i in range(images)]


def _assign_images(counts: list[int], sizes: dict[str, int]) -> list[str]:
    """Give every image one split so that the expression counts per split are exact.

    Greedy: larger images first while they fit, single-expression images fill the rest. Keeping an
    image within one split avoids a leak between train and test in the synthetic corpus.
    """
    remaining = dict(sizes)
    split_of = [""] * len(counts)
    for i in sorted(range(len(counts)), key=lambda i: -counts[i]):
        for split in SPLIT_NAMES:
            if counts[i] <= remaining[split]:
                split_of[i] = split
                remaining[split] -= counts[i]
                break
        else:
            raise ValueError(f"cannot place image {i} ({counts[i]} expressions) within the split sizes {sizes}")
    return split_of


def _synthetic_boxes(rng: random.Random, side: int, count: int) -> list[list[int]]:
    band = side // count
    boxes = []
    for i in range(count):
        x1 = rng.randrange(0, side // 2)
        boxes.append([x1, i * band + 1, rng.randrange(x1 + side // 8, side), i * band + max(3, band * 2 // 3)])
    return boxes


def _synthetic_expression(rng: random.Random, box: list[int], side: int) -> str:
    thing = rng.choice(_OBJECTS)
    area = (box[2] - box[0]) * (box[3] - box[1]) * 4
    other = rng.choice([o for o in _OBJECTS if o != thing])
    direction = rng.choice(("north", "south", "east", "west", "southeast", "northwest"))
    return (
        f"find a {thing} that is about {area} square meters. there is a {other}, located approximately "
        f"{rng.randrange(20, 400)} meters {direction} of the {thing}."
    )
