"""Synthetic caption datasets in the Karpathy layout (UCM, Sydney, RSICD, RSITMD) and NWPU's variant.

One annotation file streamed entry by entry next to an image folder; the reading rules this layout
exercises are in :mod:`skyeye_data.sources._karpathy`.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TextIO

from skyeye_data.io import atomic_path
from skyeye_data.sources._karpathy import CaptionJsonSource
from skyeye_data.sources.base import Scale
from skyeye_data.synth.painter import synth_image

_TOKEN = re.compile(r"[a-z0-9]+")


def karpathy_entry(filename: str, imgid: int, split: str, captions: list[str], class_name: str) -> dict:  # noqa: ARG001
    """One synthetic image entry in the Karpathy shape."""
    first = imgid * 5
    return {
        "filename": filename,
        "imgid": imgid,
        "sentences": [
            {"tokens": _TOKEN.findall(caption.lower()), "raw": caption, "imgid": imgid, "sentid": first + k}
            for k, caption in enumerate(captions)
        ],
        "split": split,
        "sentids": [first + k for k in range(len(captions))],
    }


def numbered_tif(class_name: str, in_class: int, overall: int) -> str:  # noqa: ARG001
    """UCM and Sydney name their images by their 1-based number: ``1.tif``."""
    return f"{overall}.tif"


def write_karpathy(source: CaptionJsonSource, out: TextIO, entries: Iterator[tuple[str, dict]]) -> None:
    """Stream entries (class name, entry) into the file in the Karpathy shape."""
    out.write('{"images": [')
    for number, (_, entry) in enumerate(entries):
        out.write(("," if number else "") + "\n" + json.dumps(entry))
    out.write(f'\n], "dataset": {json.dumps(source.family)}}}\n')



@dataclass(frozen=True)
class SynthSpec:
    """How a source's synthetic copy looks: classes, file names, image size, split sizes."""

    classes: tuple[str, ...]
    image_size: tuple[int, int]  # the real images' size (mini writes this)
    paper_splits: dict[str, int]  # images per split at paper scale (the real dataset's)
    mini_splits: dict[str, int]
    filename: Callable[[str, int, int], str]  # (class name, number in class, number overall) -> file name
    image_subdir: Callable[[str], str] | None = None  # class name -> folder under image_dir
    capitalised: bool = True  # UCM/Sydney/RSITMD/NWPU start with a capital; RSICD is lower case
    paper_image_size: tuple[int, int] = (8, 8)
    # (filename, imgid, split, captions, class name) -> the entry in the source's published shape
    entry_json: Callable[[str, int, str, list[str], str], dict] = karpathy_entry
    write_annotation: Callable[[CaptionJsonSource, TextIO, Iterator[tuple[str, dict]]], None] = write_karpathy
    missing_images: tuple[str, ...] = ()  # listed in the annotation file but absent from the images (paper scale)


def numbered_tif_writer(
    source: CaptionJsonSource, classes: tuple[str, ...], image_size: tuple[int, int], mini_splits: dict[str, int]
) -> Callable[[Path, Scale, random.Random], int]:
    """The ``write`` of a source whose images are numbered ``1.tif``, ``2.tif``, ... (UCM, Sydney), with
    the published split sizes at paper scale."""
    spec = SynthSpec(classes, image_size, source.published_splits, mini_splits, filename=numbered_tif)

    def write(raw_dir: Path, scale: Scale, rng: random.Random) -> int:
        return write_synthetic(source, spec, raw_dir, scale, rng)

    return write


def write_synthetic(
    source: CaptionJsonSource, spec: SynthSpec, raw_dir: Path, scale: Scale, rng: random.Random
) -> int:
    """Write the annotation file and images of ``source`` in its published layout; return images written.

    The JSON is streamed entry by entry, so the paper scale (31.5k NWPU images) stays in bounded memory.
    Images come in contiguous blocks per class, as in the real files; the split is drawn per image.
    """
    splits = spec.paper_splits if scale == "paper" else spec.mini_splits
    size = spec.paper_image_size if scale == "paper" else spec.image_size
    total = sum(splits.values())
    split_of = [name for name, count in splits.items() for _ in range(count)]
    rng.shuffle(split_of)
    per_class = -(-total // len(spec.classes))
    # the first accepted layout is the published archive as extracted: write that one
    annotation, images = (part.strip() for part in source.layouts[0].files.split(" + ", 1))
    image_dir = images.split("/", 1)[0]
    raw_dir.mkdir(parents=True, exist_ok=True)

    def entries() -> Iterator[tuple[str, dict]]:
        for number in range(total):
            class_name = spec.classes[number // per_class]
            filename = spec.filename(class_name, number % per_class + 1, number + 1)
            folder = image_dir + (f"/{spec.image_subdir(class_name)}" if spec.image_subdir else "")
            if not (scale == "paper" and filename in spec.missing_images):
                synth_image(raw_dir / folder / filename, *size, seed=f"{source.name}:{filename}")
            captions = synth_captions(class_name, rng, spec.capitalised)
            yield class_name, spec.entry_json(filename, number, split_of[number], captions, class_name)

    (raw_dir / annotation).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(raw_dir / annotation) as tmp, open(tmp, "w", encoding="utf-8") as out:
        spec.write_annotation(source, out, entries())
    return total


_THINGS = ("buildings", "green trees", "roads", "cars", "houses", "bare land", "meadows", "white clouds")
_TEMPLATES = (
    "there is {a} {c} in the middle of some {s} .",
    "some {s} are around the {c} .",
    "{a} {c} is surrounded by {s} and {t} .",
    "it is {a} {c} with many {s} .",
    "many {s} , some {t} and {a} {c} are in this image .",
    "{a} {c} is near many {s}  .",  # a stray double space: the reader must collapse it
)
# how many distinct descriptions an image gets; the rest of its five slots repeat one of them
_DISTINCT_CHOICES = (1, 1, 2, 3, 5, 5)


def synth_captions(class_name: str, rng: random.Random, capitalised: bool = True) -> list[str]:
    """Five pre-tokenised captions ("... a road ."), repeating the way the real files do.

    UCM and Sydney images often have fewer than five distinct descriptions; the authors repeated
    one to fill the five slots. A third of synthetic images repeat one caption five times.
    """
    noun = class_name.replace("_", " ").lower()
    if noun.endswith(("al", "residential")):  # "agricultural", "industrial": adjectives, not things
        noun += " area"
    article = "an" if noun[0] in "aeiou" else "a"

    def one() -> str:
        s, t = rng.sample(_THINGS, 2)
        text = rng.choice(_TEMPLATES).format(a=article, c=noun, s=s, t=t)
        return text[0].upper() + text[1:] if capitalised else text

    pool = [one() for _ in range(rng.choice(_DISTINCT_CHOICES))]
    return pool + [rng.choice(pool) for _ in range(5 - len(pool))]
