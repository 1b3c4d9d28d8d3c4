"""DOTA: a large-scale dataset for object detection in aerial images (Xia et al. 2018).

What it is: 2,806 aerial images (about 800 to 4,000 pixels a side; v1.0: 1,411 train, 458 val,
937 test) with 188,282 instances of 15 classes (16 in v1.5, which adds ``container-crane``), each
an arbitrary quadrilateral. SkyEye-968k joins DOTA detection with the RSIVQA-DOTA questions on the
same image (DOTA-Conversa).

Raw layout (``RAW/dota/``, as downloaded; v1.0 and v1.5 are laid out alike)::

    train/images/P0000.png ...    train/labelTxt/P0000.txt ...
    val/images/P0003.png ...      val/labelTxt/P0003.txt ...
    test/images/P0006.png ...     # images only: test labels are withheld, so no records

One :class:`DetectionRecord` per label file; the split is the folder (train or val).

A label file (CRLF line endings) starts with optional header lines ``imagesource:GoogleEarth`` and
``gsd:0.146343590398`` and then holds one object a line::

    x1 y1 x2 y2 x3 y3 x4 y4 class difficult

Quirks handled here:
- Split patches made by the DOTA devkit (``P0004__1__0___0.png`` = image P0004 at scale 1, offset
  0,0) live in the same folders; their labels have float coordinates and no header. They are read
  the same way and keep their own stem as image key (``dota:P0004__1__0___0``).
- The quadrilateral becomes its axis-aligned box. A box reaching outside the image (common at patch
  borders and in a few originals) is clipped, the object marked ``clipped`` and the record flagged
  ``box_clipped``; an object wholly outside is quarantined as a part. No out-of-bounds box is emitted.
- A line with the wrong number of coordinates, a non-numeric value, an unknown class or a
  difficult flag other than 0/1 is quarantined (file + line + reason); a label file with no usable
  object is quarantined as a whole. The devkit accepts lines without the difficult flag (= 0); so do we.
- Sizes come from the image header (PNG), never from the labels.

Citation: Xia, G.-S., Bai, X., Ding, J., Zhu, Z., Belongie, S., Luo, J., Datcu, M., Pelillo, M.,
Zhang, L. "DOTA: A Large-scale Dataset for Object Detection in Aerial Images." CVPR 2018.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Iterator

from skyeye_data.boxes import clip_box, polygon_to_box
from skyeye_data.schema import DetectedObject, DetectionRecord
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

DOTA_CLASSES: frozenset[str] = frozenset(
    {
        "plane", "ship", "storage-tank", "baseball-diamond", "tennis-court", "basketball-court",
        "ground-track-field", "harbor", "bridge", "large-vehicle", "small-vehicle", "helicopter",
        "roundabout", "soccer-ball-field", "swimming-pool", "container-crane",
    }
)  # fmt: skip
LABELLED_SPLITS = ("train", "val")
HEADER_KEYS = ("imagesource", "gsd")
IMAGE_SUFFIXES = (".png", ".jpg", ".tif")


class LineProblem(Exception):
    """One label line that cannot be used; the message is the quarantine reason."""


def parse_object_line(line: str) -> tuple[list[float], str, bool]:
    """``x1 y1 .. x4 y4 class [difficult]`` → (8 coordinates, class, difficult)."""
    tokens = line.split()
    numbers = 0
    while numbers < len(tokens) and _is_number(tokens[numbers]):
        numbers += 1
    if numbers != 8:
        raise LineProblem(f"a polygon needs 8 coordinates, found {numbers} numbers before the class name")
    rest = tokens[8:]
    if not rest:
        raise LineProblem("class name missing after the 8 coordinates")
    if len(rest) > 2:
        raise LineProblem(f"unexpected extra fields after the difficult flag: {' '.join(rest[2:])!r}")
    label = rest[0]
    if label not in DOTA_CLASSES:
        raise LineProblem(f"unknown class {label!r} (not a DOTA v1.0/v1.5 class)")
    difficult = rest[1] if len(rest) == 2 else "0"
    if difficult not in ("0", "1"):
        raise LineProblem(f"difficult flag must be 0 or 1, got {difficult!r}")
    return [float(t) for t in tokens[:8]], label, difficult == "1"


def _is_number(token: str) -> bool:
    try:
        return math.isfinite(float(token))
    except ValueError:
        return False


def _is_header(line: str) -> bool:
    key, sep, _ = line.partition(":")
    return bool(sep) and key.strip().lower() in HEADER_KEYS


@register
class DotaSource(SourceConverter):
    name = "dota"
    task = "detection"
    family = "dota"
    layout = "{train,val}/images/P*.png + {train,val}/labelTxt/P*.txt (test/images has no labels)"
    title = "DOTA v1.0/v1.5"
    citation = "Xia et al. DOTA: A Large-scale Dataset for Object Detection in Aerial Images. CVPR 2018."
    license = "academic use only (see the DOTA terms)"
    homepage = "https://captain-whu.github.io/DOTA/"

    def check_layout(self, raw_dir: Path) -> None:
        super().check_layout(raw_dir)
        if not any((raw_dir / split / "labelTxt").is_dir() for split in LABELLED_SPLITS):
            found = sorted(p.name for p in raw_dir.iterdir())[:10]
            raise LayoutError(
                f"dota: {raw_dir} has no train/labelTxt/ or val/labelTxt/ (found: {', '.join(found) or 'nothing'}); "
                f"expected {self.layout}"
            )

    def records(self, raw_dir: Path) -> Iterator[DetectionRecord | Rejected]:
        for split in LABELLED_SPLITS:
            label_dir = raw_dir / split / "labelTxt"
            if not label_dir.is_dir():
                continue
            for label_path in sorted(label_dir.glob("*.txt")):
                yield from self._label_file(raw_dir, split, label_path)

    def _find_image(self, raw_dir: Path, split: str, stem: str) -> Path:
        for suffix in IMAGE_SUFFIXES:
            if (path := raw_dir / split / "images" / f"{stem}{suffix}").is_file():
                return path
        return raw_dir / split / "images" / f"{stem}.png"

    def _label_file(self, raw_dir: Path, split: str, label_path: Path) -> Iterator[DetectionRecord | Rejected]:
        raw_file = label_path.relative_to(raw_dir).as_posix()
        image_path = self._find_image(raw_dir, split, label_path.stem)
        try:
            info = probe_image(image_path)
        except ImageProblem as error:
            yield Rejected(raw_file, f"{error} (looked for {image_path.relative_to(raw_dir).as_posix()})")
            return
        objects: list[DetectedObject] = []
        problems: list[Rejected] = []
        text = label_path.read_bytes().decode("utf-8", errors="replace")
        in_header = True
        for line_no, raw_line in enumerate(text.splitlines(), 1):  # splitlines drops the CR of CRLF
            line = raw_line.strip()
            if not line:
                continue
            if in_header and _is_header(line):
                continue
            in_header = False
            try:
                objects.append(self._object(line, info.width, info.height))
            except LineProblem as error:
                problems.append(Rejected(raw_file, str(error), raw_line=line_no, excerpt=line, level="part"))
        yield from problems
        if not objects:
            why = f"{len(problems)} unusable object lines" if problems else "no object lines"
            yield Rejected(raw_file, f"no usable object in the label file ({why})")
            return
        flags = ["box_clipped"] if any(o.clipped for o in objects) else []
        yield build_record(
            DetectionRecord,
            raw_file=raw_file,
            source=self.name,
            record_id=f"dota:{split}/{label_path.stem}",
            split=split,
            **media_fields(image_path.relative_to(raw_dir).as_posix(), image_key(self.family, image_path.name), info),
            objects=objects,
            flags=flags,
        )

    @staticmethod
    def _object(line: str, width: int, height: int) -> DetectedObject:
        coords, label, difficult = parse_object_line(line)
        box = polygon_to_box(coords)
        if box[2] <= box[0] or box[3] <= box[1]:
            raise LineProblem(f"polygon has no area (box {box})")
        clipped_box, clipped = clip_box(box, width, height)
        if clipped_box is None:
            raise LineProblem(f"box {box} lies wholly outside the {width}x{height} image")
        return DetectedObject(label=label, box=clipped_box, difficult=difficult, clipped=clipped)

    # -- synthetic layout --------------------------------------------------------------------------

    def synthesize(self, raw_dir: Path, scale: Scale, rng: random.Random) -> int:
        from skyeye_data.synth import synth_image  # synth imports the registry; import late

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
                    _write_labels(raw_dir / split / "labelTxt" / f"{stem}.txt", objects, header=True)
                    written += 1
        if scale == "mini":
            # one devkit split patch: float coordinates, no header, same folders
            stem = "P0000__1__0___0"
            objects = [([float(c) + 0.5 for c in coords], label) for coords, label in _synthetic_objects(rng, side)]
            synth_image(raw_dir / "train" / "images" / f"{stem}.png", side, side, seed=f"dota:{stem}",
                        boxes=[polygon_to_box(c) for c, _ in objects])  # fmt: skip
            _write_labels(raw_dir / "train" / "labelTxt" / f"{stem}.txt", objects, header=False)
            written += 1
        return written


PAPER_COUNTS = {"train": 1411, "val": 458, "test": 937}
MINI_COUNTS = {"train": 3, "val": 2, "test": 1}
SYNTH_CLASSES = ("plane", "small-vehicle", "storage-tank", "harbor", "tennis-court")


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
