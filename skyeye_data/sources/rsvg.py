"""RSVG: visual grounding in remote sensing images (Sun et al., ACM MM 2022; the GeoVG paper).

What it is: 7,933 referring expressions on 4,239 remote sensing images, each expression naming
one object by its geospatial relations ("find a water tower that is about 170 square meters.
there is a ground track field, located approximately 34 meters southeast of the water tower ..."),
with the object's horizontal box; splits 5,505 / 1,201 / 1,227 expressions. SkyEye-968k uses the
train split for ``[refer]``.

Released layout, as far as it could be established. No file of the release was available to us;
the GeoVG code (a fork of ReSC, ``dataset/data_loader.py``, dataset name ``'rsvg'``) reads
``<data_root>/rsvg/images/<image_file>`` and the split lists ``<split_root>/rsvg/rsvg_<split>.pth``,
each a ``torch.save``-d Python list of tuples ``(image_file, bbox, phrase, extra)`` with ``bbox``
already ``[x1, y1, x2, y2]`` in pixels (the loader only casts it to int). Third-party READMEs show
the same folder: ``rsvg/images/``, ``rsvg_train.pth``, ``rsvg_val.pth``, ``rsvg_test.pth``.

Assumed layout under ``RAW/rsvg/``::

    images/<image_file> ...
    rsvg_train.json  rsvg_val.json  rsvg_test.json

A ``.pth`` file is a pickle, and this toolkit never unpickles untrusted input (a pickle can run
arbitrary code) nor imports torch. So the converter reads ``rsvg_<split>.json``: the same lists,
exported once with torch's safe loader (``weights_only=True`` refuses code)::

    python -c "import json, sys, torch; json.dump([[f, [float(v) for v in b], p] for f, b, p, *_
    in torch.load(sys.argv[1], weights_only=True)], open(sys.argv[2], 'w'))" rsvg_train.pth rsvg_train.json

(the fourth tuple field is not used and may be left out). When only the ``.pth`` files are
present, :meth:`RsvgSource.check_layout` fails with a LayoutError that says exactly this.

One :class:`GroundingRecord` per list entry, ``record_id = rsvg:<split>:<position in the list>``.
Quirks handled here: an entry that is not ``[image_file, [4 numbers], text, ...]``, a missing image,
an empty expression or a box wholly outside the image is quarantined with its file and index; a box
reaching outside is clipped and flagged ``box_clipped``. Sizes come from the image header.

Citation: Sun, Y., Feng, S., Li, X., Ye, Y., Kang, J., Huang, X. "Visual Grounding in Remote
Sensing Images." Proc. 30th ACM International Conference on Multimedia (MM '22), 404-412.
doi:10.1145/3503161.3548316
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Iterator

from skyeye_data.boxes import clip_box
from skyeye_data.schema import GroundingRecord
from skyeye_data.sources import register
from skyeye_data.sources.base import (
    ImageProblem,
    LayoutError,
    Rejected,
    Scale,
    SourceConverter,
    build_record,
    image_key,
    media_fields,
    probe_image,
)

SPLIT_NAMES = ("train", "val", "test")
PTH_EXPORT_HINT = (
    "python -c \"import json, sys, torch; json.dump([[f, [float(v) for v in b], p] for f, b, p, *_ in "
    "torch.load(sys.argv[1], weights_only=True)], open(sys.argv[2], 'w'))\" rsvg_train.pth rsvg_train.json"
)


def split_file(raw_dir: Path, split: str) -> Path:
    return raw_dir / f"rsvg_{split}.json"


@register
class RsvgSource(SourceConverter):
    name = "rsvg"
    task = "grounding"
    family = "rsvg"
    layout = "images/*, rsvg_{train,val,test}.json (the rsvg_<split>.pth lists exported to JSON; see `skyeye sources`)"
    title = "RSVG (GeoVG)"
    citation = "Sun, Feng, Li, Ye, Kang, Huang. Visual Grounding in Remote Sensing Images. ACM MM 2022."
    license = "research use (see the GeoVG release)"
    homepage = "https://sunyuxi.github.io/publication/GeoVG"

    def check_layout(self, raw_dir: Path) -> None:
        super().check_layout(raw_dir)
        if not (raw_dir / "images").is_dir():
            raise LayoutError(f"rsvg: {raw_dir} has no images/ folder; expected {self.layout}")
        if any(split_file(raw_dir, s).is_file() for s in SPLIT_NAMES):
            return
        if any((raw_dir / f"rsvg_{s}.pth").is_file() for s in SPLIT_NAMES):
            raise LayoutError(
                f"rsvg: {raw_dir} holds the released rsvg_<split>.pth files, which are pickles; this toolkit "
                f"does not unpickle them. Export each to rsvg_<split>.json once, e.g.: {PTH_EXPORT_HINT}"
            )
        raise LayoutError(f"rsvg: {raw_dir} has none of rsvg_train.json, rsvg_val.json, rsvg_test.json; expected {self.layout}")

    def records(self, raw_dir: Path) -> Iterator[GroundingRecord | Rejected]:
        for split in SPLIT_NAMES:
            path = split_file(raw_dir, split)
            if not path.is_file():
                continue
            try:
                entries = json.loads(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as error:
                # nothing of the file can be counted: one rejection stands for the whole file
                yield Rejected(path.name, f"split file is not valid JSON ({error})")
                continue
            if not isinstance(entries, list):
                yield Rejected(path.name, f"split file holds a {type(entries).__name__}, expected a list of entries")
                continue
            for index, entry in enumerate(entries):
                yield self._record(raw_dir, path.name, split, index, entry)

    def _record(self, raw_dir: Path, raw_file: str, split: str, index: int, entry) -> GroundingRecord | Rejected:
        excerpt = json.dumps(entry, ensure_ascii=False)[:300]

        def reject(reason: str) -> Rejected:
            return Rejected(raw_file, reason, raw_index=index, excerpt=excerpt)

        problem = _entry_problem(entry)
        if problem:
            return reject(problem)
        image_file, bbox, expression = entry[0], [float(v) for v in entry[1]], entry[2]
        image_path = raw_dir / "images" / image_file
        if not image_path.resolve().is_relative_to((raw_dir / "images").resolve()):
            return reject(f"image file name {image_file!r} points outside images/")
        try:
            info = probe_image(image_path)
        except ImageProblem as error:
            return reject(f"{error} (looked for images/{image_file})")
        box, clipped = clip_box(bbox, info.width, info.height)
        if box is None:
            return reject(f"box {bbox} lies wholly outside the {info.width}x{info.height} image")
        return build_record(
            GroundingRecord,
            raw_file=raw_file,
            raw_index=index,
            source=self.name,
            record_id=f"rsvg:{split}:{index}",
            split=split,
            **media_fields(image_path.relative_to(raw_dir).as_posix(), image_key(self.family, image_file), info),
            expression=expression.strip(),
            boxes=[box],
            flags=["box_clipped"] if clipped else [],
        )

    # -- synthetic layout --------------------------------------------------------------------------

    def synthesize(self, raw_dir: Path, scale: Scale, rng: random.Random) -> int:
        from skyeye_data.synth import synth_image  # synth imports the registry; import late

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
                lists[split_of_image[number]].append([image_file, box, _synthetic_expression(rng, box, side), None])
        for split, entries in lists.items():
            split_file(raw_dir, split).write_text(json.dumps(entries))
        return total


PAPER_IMAGES = 4239
PAPER_SPLIT_SIZES = {"train": 5505, "val": 1201, "test": 1227}
MINI_IMAGES = 4
MINI_SPLIT_SIZES = {"train": 3, "val": 1, "test": 2}
_OBJECTS = ("water tower", "storage tank", "tennis court", "ground track field", "bridge", "vehicle")


def _entry_problem(entry) -> str | None:
    if not isinstance(entry, list) or len(entry) < 3:
        return "entry is not a list [image_file, [x1, y1, x2, y2], expression, ...]"
    image_file, bbox, expression = entry[:3]
    if not isinstance(image_file, str) or not image_file.strip():
        return f"image file name is not a non-empty string: {image_file!r}"
    if not isinstance(bbox, list) or len(bbox) != 4:
        return f"box is not a list of 4 numbers: {bbox!r}"
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox):
        return f"box holds a value that is not a finite number: {bbox!r}"
    if not isinstance(expression, str) or not expression.strip():
        return "expression is empty or not text"
    return None


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
