"""DIOR-RSVG: visual grounding on DIOR images (Zhan, Xiong, Yuan 2023).

What it is: 38,320 referring expressions, each naming one object on one of 17,402 DIOR images
(800x800), with the object's horizontal box. SkyEye-968k uses the train split (26,991) for the
``[refer]`` / ``[identify]`` tasks and joins it with DIOR detection on the same image
(DIOR-Conversa), which is why its image keys use the ``dior`` family.

Raw layout (``RAW/dior_rsvg/``, as released in ZhanYang-nwpu/RSVG-pytorch)::

    Annotations/00001.xml ...   # VOC XML; every <object> has <name>, <bndbox> and
                                # <description> = the referring expression
    JPEGImages/00001.jpg ...
    train.txt  val.txt  test.txt   # one integer a line (26,991 / 3,829 / 7,500)

One :class:`GroundingRecord` per ``<object>``, ``record_id = dior_rsvg:<global index>``.

Quirks handled here:
- The split files do not name files: they hold the *global index* of an object, counted over all
  ``Annotations/*.xml`` in sorted file order (the authors' loader walks the sorted file list and
  numbers every object it meets). An object in no split file, or in two, is quarantined with the
  reason. A file that cannot be parsed still advances the numbering by the ``<object>`` tags it
  holds (a byte count), so one broken file does not shift every later object into the wrong split.
- Width and height come from the image header; a ``<size>`` that disagrees is flagged
  ``size_mismatch`` (the header wins).
- A box reaching outside the image is clipped (flag ``box_clipped``); one wholly outside is
  quarantined. Class names are normalised to the DIOR spelling; an unknown one is kept as the
  expression is still valid, but the record is flagged ``unknown_class`` and its label left empty.

Citation: Zhan, Y., Xiong, Z., Yuan, Y. "RSVG: Exploring Data and Models for Visual Grounding on
Remote Sensing Data." IEEE TGRS 61 (2023) 1-13.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from xml.sax.saxutils import escape

from skyeye_data.boxes import clip_box
from skyeye_data.schema import GroundingRecord
from skyeye_data.sources import register
from skyeye_data.sources._voc import VocError, VocObject, count_object_tags, read_voc
from skyeye_data.sources.base import (
    ImageInfo,
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
from skyeye_data.sources.dior import (
    MINI_SPLITS,
    SYNTH_SIDE,
    normalize_dior_class,
    synthetic_objects,
    write_synthetic_image,
)

SPLIT_NAMES = ("train", "val", "test")
PAPER_IMAGES = 17402
PAPER_SPLIT_SIZES = {"train": 26991, "val": 3829, "test": 7500}
MINI_IMAGES = sum(MINI_SPLITS.values())  # the same ids and image bytes as the DIOR mini corpus


@dataclass
class SplitIndex:
    """Global object index → split, with the indices listed more than once and bad lines."""

    split_of: dict[int, str]
    conflicts: dict[int, list[str]]
    bad_lines: list[Rejected]


def read_split_index(raw_dir: Path) -> SplitIndex:
    index = SplitIndex({}, {}, [])
    for split in SPLIT_NAMES:
        path = raw_dir / f"{split}.txt"
        if not path.is_file():
            continue
        for line_no, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            text = line.strip()
            if not text:
                continue
            if not text.isdigit():
                index.bad_lines.append(
                    Rejected(path.name, f"split line is not an object index: {text!r}", raw_line=line_no, level="part")
                )
                continue
            number = int(text)
            if number in index.split_of:
                index.conflicts.setdefault(number, [index.split_of[number]]).append(split)
            else:
                index.split_of[number] = split
    return index


@register
class DiorRsvgSource(SourceConverter):
    name = "dior_rsvg"
    task = "grounding"
    family = "dior"
    layout = "Annotations/*.xml (VOC + <description>), JPEGImages/*.jpg, {train,val,test}.txt (global object indices)"
    title = "DIOR-RSVG"
    citation = (
        "Zhan, Xiong, Yuan. RSVG: Exploring Data and Models for Visual Grounding on Remote Sensing Data. "
        "IEEE TGRS 61 (2023)."
    )
    license = "CC BY-NC 4.0 (annotations); DIOR images: research use"
    homepage = "https://github.com/ZhanYang-nwpu/RSVG-pytorch"

    def check_layout(self, raw_dir: Path) -> None:
        super().check_layout(raw_dir)
        missing = []
        if not (raw_dir / "Annotations").is_dir():
            missing.append("Annotations/")
        if not any((raw_dir / f"{s}.txt").is_file() for s in SPLIT_NAMES):
            missing.append("train.txt/val.txt/test.txt")
        if missing:
            raise LayoutError(f"dior_rsvg: {raw_dir} lacks {' and '.join(missing)}; expected {self.layout}")

    def records(self, raw_dir: Path) -> Iterator[GroundingRecord | Rejected]:
        index = read_split_index(raw_dir)
        yield from index.bad_lines
        next_index = 0
        for xml_path in sorted((raw_dir / "Annotations").glob("*.xml")):
            raw_file = xml_path.relative_to(raw_dir).as_posix()
            try:
                annotation = read_voc(xml_path)
            except VocError as error:
                yield from self._broken_file(xml_path, raw_file, str(error), next_index)
                next_index += count_object_tags(xml_path)
                continue
            image = self._probe(raw_dir, xml_path)
            for obj in annotation.objects:
                global_index = next_index + obj.index
                split, problem = self._split(index, global_index)
                if problem:
                    yield Rejected(raw_file, problem, raw_index=obj.index, excerpt=obj.description)
                elif isinstance(image, str):
                    yield Rejected(raw_file, image, raw_index=obj.index, excerpt=obj.description)
                else:
                    yield self._record(raw_dir, raw_file, obj, global_index, split, image, annotation.size)
            next_index += len(annotation.objects)
        yield from self._dangling_indices(index, next_index)

    def _broken_file(self, xml_path: Path, raw_file: str, reason: str, first_index: int) -> Iterator[Rejected]:
        tags = count_object_tags(xml_path)
        if tags == 0:
            yield Rejected(raw_file, f"{reason}; no <object> tag found, the whole file is left out")
            return
        for i in range(tags):
            yield Rejected(raw_file, f"{reason} (object global index {first_index + i})", raw_index=i)

    def _probe(self, raw_dir: Path, xml_path: Path) -> tuple[Path, ImageInfo] | str:
        """The image (path, header info), or the reason why it cannot be used."""
        image_path = raw_dir / "JPEGImages" / f"{xml_path.stem}.jpg"
        try:
            return image_path, probe_image(image_path)
        except ImageProblem as error:
            return f"{error} (looked for JPEGImages/{image_path.name})"

    @staticmethod
    def _split(index: SplitIndex, global_index: int) -> tuple[str | None, str | None]:
        if global_index in index.conflicts:
            return None, f"object global index {global_index} is in several split files: {index.conflicts[global_index]}"
        if global_index not in index.split_of:
            return None, f"object global index {global_index} is in no split file (train/val/test.txt)"
        return index.split_of[global_index], None

    def _record(
        self,
        raw_dir: Path,
        raw_file: str,
        obj: VocObject,
        global_index: int,
        split: str,
        image: tuple[Path, ImageInfo],
        declared_size: tuple[int, int] | None,
    ) -> GroundingRecord | Rejected:
        image_path, info = image
        if obj.problem or obj.bndbox is None:
            reason = f"object box unreadable: {obj.problem or 'no <bndbox> (DIOR-RSVG boxes are horizontal)'}"
            return Rejected(raw_file, reason, raw_index=obj.index, excerpt=obj.description)
        flags = []
        box, clipped = clip_box(obj.bndbox, info.width, info.height)
        if box is None:
            return Rejected(
                raw_file,
                f"box {obj.bndbox} lies wholly outside the {info.width}x{info.height} image",
                raw_index=obj.index,
                excerpt=obj.description,
            )
        if clipped:
            flags.append("box_clipped")
        if declared_size and declared_size != (info.width, info.height):
            flags.append("size_mismatch")
        label = normalize_dior_class(obj.name)
        if label is None:
            flags.append("unknown_class")
        return build_record(
            GroundingRecord,
            raw_file=raw_file,
            raw_index=obj.index,
            source=self.name,
            record_id=f"dior_rsvg:{global_index}",
            split=split,
            **media_fields(image_path.relative_to(raw_dir).as_posix(), image_key(self.family, image_path.name), info),
            expression=obj.description or "",
            boxes=[box],
            label=label,
            flags=flags,
        )

    @staticmethod
    def _dangling_indices(index: SplitIndex, total: int) -> Iterator[Rejected]:
        """Split-file entries past the last object (a partial download): one summary per split file."""
        for split in SPLIT_NAMES:
            dangling = [n for n, s in index.split_of.items() if s == split and n >= total]
            if dangling:
                yield Rejected(
                    f"{split}.txt",
                    f"{len(dangling)} object indices ({min(dangling)}..{max(dangling)}) refer to no object; "
                    f"the annotations hold {total}",
                    level="part",
                )

    # -- synthetic layout --------------------------------------------------------------------------

    def synthesize(self, raw_dir: Path, scale: Scale, rng: random.Random) -> int:
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
        chosen = _paper_splits(total, rng) if scale == "paper" else _mini_splits(images, scale)
        for split in SPLIT_NAMES:
            (raw_dir / f"{split}.txt").write_text("".join(f"{i}\n" for i in sorted(chosen[split])))
        return total


def _paper_splits(total: int, rng: random.Random) -> dict[str, list[int]]:
    """The published sizes, objects drawn at random (the real splits are per object, not per image)."""
    order = list(range(total))
    rng.shuffle(order)
    chosen, start = {}, 0
    for split in SPLIT_NAMES:
        chosen[split] = order[start : start + PAPER_SPLIT_SIZES[split]]
        start += PAPER_SPLIT_SIZES[split]
    return chosen


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
