"""Synthetic DIOR-RSVG: Annotations/*.xml with <description>, JPEGImages/*.jpg, {train,val,test}.txt.

Images and objects are DIOR's synthetic ones (:mod:`skyeye_data.synth.dior`), same ids and bytes.
Split files: at paper scale the REAL ones (``synth/data/dior_rsvg/``, from ZhanYang-nwpu/RSVG-pytorch
``DIOR_RSVG/``: global object indices), so each synthetic object takes the split of the real object
with its index. What stays invented is how many objects each image holds (only ``00001.xml`` is
public): :func:`skyeye_data.synth.dior.paper_object_counts` draws them from the geometric
distribution with the published mean, 2.2 (the maximum-entropy choice when only the mean is known).
The mini corpus keeps each object in its image's DIOR split, so it joins DIOR without split leaks.
"""

from __future__ import annotations

import random
from importlib import resources
from pathlib import Path
from xml.sax.saxutils import escape

from skyeye_data.sources.base import Scale
from skyeye_data.sources.dior_rsvg import PAPER_IMAGES, PAPER_SPLIT_SIZES, SPLIT_NAMES
from skyeye_data.synth.dior import MINI_SPLITS, SYNTH_SIDE, synthetic_objects, write_synthetic_image

MINI_IMAGES = sum(MINI_SPLITS.values())  # the same ids and image bytes as the DIOR mini corpus


def write(raw_dir: Path, scale: Scale, rng: random.Random) -> int:
    images = PAPER_IMAGES if scale == "paper" else MINI_IMAGES
    side = SYNTH_SIDE[scale]
    (raw_dir / "Annotations").mkdir(parents=True, exist_ok=True)
    total = 0
    for number in range(1, images + 1):
        image_id = f"{number:05d}"
        objects = synthetic_objects(number, scale)
        write_synthetic_image(raw_dir / "JPEGImages" / f"{image_id}.jpg", image_id, side, objects)
        (raw_dir / "Annotations" / f"{image_id}.xml").write_text(rsvg_xml(image_id, side, objects))
        total += len(objects)
    if scale == "paper":
        if total != sum(PAPER_SPLIT_SIZES.values()):  # the real indices number exactly the published objects
            raise RuntimeError(f"synthetic DIOR-RSVG holds {total} objects, the real split files index {sum(PAPER_SPLIT_SIZES.values())}")
        for split in SPLIT_NAMES:
            (raw_dir / f"{split}.txt").write_text(real_split_file(split))
        return total
    chosen = _mini_splits(images, scale)
    for split in SPLIT_NAMES:
        (raw_dir / f"{split}.txt").write_text("".join(f"{i}\n" for i in sorted(chosen[split])))
    return total


def real_split_file(split: str) -> str:
    """The published ``<split>.txt`` of DIOR-RSVG, as shipped in ``synth/data/dior_rsvg/``."""
    text = resources.files(__package__).joinpath("data", "dior_rsvg", f"{split}.txt").read_text(encoding="utf-8")
    if len(text.split()) != PAPER_SPLIT_SIZES[split]:  # a truncated package: fail before writing a wrong corpus
        raise RuntimeError(f"synth/data/dior_rsvg/{split}.txt holds {len(text.split())} indices, not {PAPER_SPLIT_SIZES[split]}")
    return text


def _mini_splits(images: int, scale: Scale) -> dict[str, list[int]]:
    """Each object in its image's DIOR split, so the mini corpus joins DIOR without split leaks."""
    chosen: dict[str, list[int]] = {split: [] for split in SPLIT_NAMES}
    split_of_image = [split for split in SPLIT_NAMES for _ in range(MINI_SPLITS[split])]
    next_index = 0
    for number in range(1, images + 1):
        count = len(synthetic_objects(number, scale))
        chosen[split_of_image[number - 1]].extend(range(next_index, next_index + count))
        next_index += count
    return chosen


def synthetic_expression(name: str, box: list[int], side: int) -> str:
    horizontal = "left" if (box[0] + box[2]) / 2 < side / 2 else "right"
    vertical = "upper" if (box[1] + box[3]) / 2 < side / 2 else "lower"
    return f"the {name.lower().replace('-', ' ')} on the {vertical} {horizontal}"


def rsvg_xml(image_id: str, side: int, objects) -> str:
    parts = [
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<annotation>\n'
        f"  <filename>{image_id}.jpg</filename>\n  <source>\n    <database>DIOR</database>\n  </source>\n"
        f"  <size>\n    <width>{side}</width>\n    <height>{side}</height>\n    <depth>3</depth>\n  </size>\n"
        "  <segmented>0</segmented>\n"
    ]
    for name, box in objects:
        x1, y1, x2, y2 = box
        parts.append(
            f"  <object>\n    <name>{escape(name)}</name>\n    <pose>Unspecified</pose>\n    <bndbox>\n"
            f"      <xmin>{x1}</xmin>\n      <ymin>{y1}</ymin>\n      <xmax>{x2}</xmax>\n      <ymax>{y2}</ymax>\n"
            f"    </bndbox>\n    <description>{escape(synthetic_expression(name, box, side))}</description>\n"
            "  </object>\n"
        )
    return "".join(parts) + "</annotation>"
