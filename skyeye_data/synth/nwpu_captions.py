"""Synthetic NWPU-Captions: ``dataset_nwpu.json`` keyed by class + ``NWPU_images/<class>/*.jpg``."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Iterator, TextIO

from skyeye_data.sources.base import Scale
from skyeye_data.sources.nwpu_captions import CAPTION_FIELDS, NWPU_CLASSES, NWPUCaptions
from skyeye_data.synth._karpathy import SynthSpec, write_synthetic


def nwpu_entry(filename: str, imgid: int, split: str, captions: list[str], class_name: str) -> dict:  # noqa: ARG001
    """NWPU's flat entry: ``raw``, ``raw_1``..``raw_4`` and one ``sentids*`` integer each."""
    entry: dict[str, Any] = {"filename": filename, "imgid": imgid, "split": split}
    for k, (field, caption) in enumerate(zip(CAPTION_FIELDS, captions)):
        entry[field] = caption
        entry["sentids" + field[3:]] = imgid * 5 + k
    return entry


def write_nwpu(source: NWPUCaptions, out: TextIO, entries: Iterator[tuple[str, dict]]) -> None:  # noqa: ARG001
    """Stream ``{"<class>": [entry, ...], ...}``; entries arrive grouped by class."""
    current = None
    out.write("{")
    for class_name, entry in entries:
        if class_name != current:
            out.write(("\n], " if current is not None else "") + f"{json.dumps(class_name)}: [\n")
            current = class_name
        else:
            out.write(",\n")
        out.write(json.dumps(entry))
    out.write("\n]}\n" if current is not None else "}\n")


SPEC = SynthSpec(
    classes=NWPU_CLASSES,
    image_size=(256, 256),
    paper_splits=NWPUCaptions.published_splits,
    mini_splits={"train": 5, "val": 2, "test": 1},
    filename=lambda class_name, in_class, overall: f"{class_name}_{in_class:03d}.jpg",
    image_subdir=lambda class_name: class_name,
    entry_json=nwpu_entry,
    write_annotation=write_nwpu,
    missing_images=("airplane_111.jpg",),  # listed in dataset_nwpu.json, absent from the image archive
)


def write(raw_dir: Path, scale: Scale, rng: random.Random) -> int:
    return write_synthetic(NWPUCaptions(), SPEC, raw_dir, scale, rng)
