"""DIOR: object detection in optical remote sensing images (Li et al. 2020).

What it is: 23,463 Google Earth images of 800x800 pixels with 192,472 instances of 20 object
classes, boxed by hand; the later DIOR-R release adds an oriented box for every instance.
SkyEye-968k uses it for phrase grounding (RSPG) and, joined with DIOR-RSVG on the same image,
for DIOR-Conversa.

Raw layout (``RAW/dior/``, as downloaded)::

    JPEGImages-trainval/00001.jpg ...        # train + val images (11,725)
    JPEGImages-test/11726.jpg ...            # test images (11,738)
    Annotations/Horizontal Bounding Boxes/00001.xml ...   # VOC XML, <bndbox>
    Annotations/Oriented Bounding Boxes/00001.xml ...     # DIOR-R, <robndbox> with 8 corner tags
    ImageSets/Main/train.txt  val.txt  test.txt           # image ids, one a line, no extension

One :class:`DetectionRecord` per image id listed in the split files (5,862 / 5,863 / 11,738).

Quirks handled here:
- Class names come in several spellings across releases and tools ("Expressway-Service-area",
  "expressway-service-area", "expresswayservicearea"); they are normalised to the spelling of the
  original DIOR release (:data:`DIOR_CLASSES`). An unknown class drops that object (quarantined as a
  part, with the name) and the image if nothing is left.
- Horizontal boxes are preferred; when an image has only the oriented DIOR-R file, its corners
  become the axis-aligned box (``boxes.polygon_to_box``) and the record is flagged
  ``from_oriented_box``. ``DiorSource(prefer="oriented")`` reverses the preference.
- A box reaching outside the image is clipped and flagged; a box wholly outside is quarantined.
- Image sizes come from the image header, never from ``<size>`` alone; a disagreement is flagged.
- An image id listed in two split files is quarantined (it would leak between splits); an
  annotation file listed in no split file is quarantined too, so no file is silently ignored.

Citation: Li, K., Wan, G., Cheng, G., Meng, L., Han, J. "Object detection in optical remote sensing
images: A survey and a new benchmark." ISPRS J. Photogramm. Remote Sens. 159 (2020) 296-307.
DIOR-R: Cheng, G. et al. "Anchor-free Oriented Proposal Generator for Object Detection." IEEE TGRS
60 (2022).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, Literal

from skyeye_data import rawfs
from skyeye_data.boxes import box_problem, clip_box, polygon_to_box
from skyeye_data.schema import DetectedObject, DetectionRecord
from skyeye_data.sources import register
from skyeye_data.sources._voc import VocAnnotation, VocError, VocObject, read_voc
from skyeye_data.sources.base import Layout, LayoutError, SourceConverter
from skyeye_data.sources.base import ImageProblem, Rejected, build_record, image_fields, probe_image

DIOR_CLASSES: tuple[str, ...] = (
    "airplane", "airport", "baseballfield", "basketballcourt", "bridge", "chimney", "dam",
    "Expressway-Service-area", "Expressway-toll-station", "golffield", "groundtrackfield", "harbor",
    "overpass", "ship", "stadium", "storagetank", "tenniscourt", "trainstation", "vehicle", "windmill",
)  # fmt: skip
_SPELLING_KEY = re.compile(r"[^a-z]")
_CANONICAL = {_SPELLING_KEY.sub("", name.lower()): name for name in DIOR_CLASSES}

HBB_DIR = "Annotations/Horizontal Bounding Boxes"
OBB_DIR = "Annotations/Oriented Bounding Boxes"
SPLIT_DIR = "ImageSets/Main"
IMAGE_DIRS = {"train": "JPEGImages-trainval", "val": "JPEGImages-trainval", "test": "JPEGImages-test"}
SPLIT_NAMES = ("train", "val", "test")


def normalize_dior_class(name: str) -> str | None:
    """One spelling per DIOR class (case, hyphens, spaces and underscores ignored); None if unknown."""
    return _CANONICAL.get(_SPELLING_KEY.sub("", name.lower()))


def read_split_ids(raw_dir: Path, refused: list[Rejected] | None = None) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Image id → split from ImageSets/Main/*.txt, and the ids found in several split files.

    A split file the guarded reader refuses (a FIFO, a symlink out of the raw root) is appended to
    ``refused``; its ids stay unknown, so their annotations are quarantined as in no split file.
    """
    split_of: dict[str, str] = {}
    conflicts: dict[str, list[str]] = {}
    for split in SPLIT_NAMES:
        path = raw_dir / SPLIT_DIR / f"{split}.txt"
        if not rawfs.present(path):
            continue
        try:
            text = rawfs.read_text(path, "label", errors="replace")
        except rawfs.RawAccessError as error:
            if refused is not None:
                refused.append(Rejected(f"{SPLIT_DIR}/{split}.txt", error.reason, level="part"))
            continue
        for line in text.splitlines():
            image_id = line.strip()
            if not image_id:
                continue
            if image_id in split_of and split_of[image_id] != split:
                conflicts.setdefault(image_id, [split_of[image_id]]).append(split)
            split_of.setdefault(image_id, split)
    return split_of, conflicts


def object_box(obj: VocObject, prefer: str) -> tuple[list[float] | None, bool]:
    """The object's axis-aligned box and whether it came from the oriented corners."""
    if prefer == "oriented" and obj.polygon is not None:
        return polygon_to_box(obj.polygon), True
    if obj.bndbox is not None:
        return list(obj.bndbox), False
    if obj.polygon is not None:
        return polygon_to_box(obj.polygon), True
    return None, False


@register
class DiorSource(SourceConverter):
    name = "dior"
    task = "detection"
    family = "dior"
    layout = (
        "JPEGImages-trainval/*.jpg, JPEGImages-test/*.jpg, 'Annotations/Horizontal Bounding Boxes/*.xml' "
        "and/or 'Annotations/Oriented Bounding Boxes/*.xml', ImageSets/Main/{train,val,test}.txt"
    )
    title = "DIOR (+ DIOR-R oriented boxes)"
    citation = (
        "Li, Wan, Cheng, Meng, Han. Object detection in optical remote sensing images: A survey and a "
        "new benchmark. ISPRS JPRS 159 (2020)."
    )
    license = "research use (see the DIOR release)"
    homepage = "https://gcheng-nwpu.github.io/#Datasets"
    short_title = "DIOR"
    paper_counts = {"rspg": ("RSPG", 6_800)}
    published_splits = {"train": 5862, "val": 5863, "test": 11738}  # image ids in ImageSets/Main/*.txt
    published_unit = "images"
    layouts = (
        Layout("published", "JPEGImages-{trainval,test}/ + Annotations/{Horizontal,Oriented} Bounding Boxes/ + "
               "ImageSets/Main/{train,val,test}.txt",
               "the DIOR / DIOR-R release (../shared/real-samples/README.md, 'Published folder layouts'; "
               "open-mmlab/mmrotate tests/data/dior/ for the oriented XML)"),
    )  # fmt: skip

    def __init__(self, prefer: Literal["horizontal", "oriented"] = "horizontal") -> None:
        self.prefer = prefer

    def check_layout(self, raw_dir: Path) -> None:
        super().check_layout(raw_dir)
        missing = []
        if not (raw_dir / HBB_DIR).is_dir() and not (raw_dir / OBB_DIR).is_dir():
            missing.append(f"'{HBB_DIR}/' or '{OBB_DIR}/'")
        if not any((raw_dir / SPLIT_DIR / f"{s}.txt").is_file() for s in SPLIT_NAMES):
            missing.append(f"{SPLIT_DIR}/{{train,val,test}}.txt")
        if missing:
            raise LayoutError(f"dior: {raw_dir} lacks {' and '.join(missing)}; expected {self.layout}")

    # -- reading ---------------------------------------------------------------------------------

    def count_raw(self, raw_dir: Path, found) -> dict[str, int] | None:
        """Image ids per ImageSets/Main split file."""
        split_of, _ = read_split_ids(raw_dir)
        counts: dict[str, int] = {}
        for split in split_of.values():
            counts[split] = counts.get(split, 0) + 1
        return counts

    def records(self, raw_dir: Path) -> Iterator[DetectionRecord | Rejected]:
        refused: list[Rejected] = []
        split_of, conflicts = read_split_ids(raw_dir, refused)
        yield from refused
        for image_id, split in split_of.items():
            try:  # an id becomes a path: checked before any filesystem call ('..', absolute, NUL, 255 bytes)
                rawfs.check_name(image_id, "image id")
            except rawfs.RawAccessError as error:
                yield Rejected(f"{SPLIT_DIR}/{split}.txt", error.reason, excerpt=image_id)
                continue
            if image_id in conflicts:
                yield Rejected(
                    f"{SPLIT_DIR}/{split}.txt",
                    f"image id {image_id} is listed in several split files ({', '.join(conflicts[image_id])})",
                    excerpt=image_id,
                )
                continue
            yield from self._image_record(raw_dir, image_id, split)
        yield from self._unlisted_annotations(raw_dir, split_of)

    def _annotation_path(self, raw_dir: Path, image_id: str) -> Path | None:
        order = (OBB_DIR, HBB_DIR) if self.prefer == "oriented" else (HBB_DIR, OBB_DIR)
        for folder in order:
            path = raw_dir / folder / f"{image_id}.xml"
            if rawfs.present(path):
                return path
        return None

    def _image_path(self, raw_dir: Path, image_id: str, split: str) -> Path:
        expected = raw_dir / IMAGE_DIRS[split] / f"{image_id}.jpg"
        if rawfs.present(expected):
            return expected
        # some mirrors merge both image folders; look in the other one before giving up
        for folder in set(IMAGE_DIRS.values()):
            if rawfs.present(candidate := raw_dir / folder / f"{image_id}.jpg"):
                return candidate
        return expected

    def _image_record(self, raw_dir: Path, image_id: str, split: str) -> Iterator[DetectionRecord | Rejected]:
        xml_path = self._annotation_path(raw_dir, image_id)
        if xml_path is None:
            yield Rejected(f"{SPLIT_DIR}/{split}.txt", f"no annotation file for image id {image_id}", excerpt=image_id)
            return
        raw_file = xml_path.relative_to(raw_dir).as_posix()
        try:
            annotation = read_voc(xml_path)
        except VocError as error:
            yield Rejected(raw_file, str(error))
            return
        image_path = self._image_path(raw_dir, image_id, split)
        try:
            info = probe_image(image_path)
        except ImageProblem as error:
            yield Rejected(raw_file, f"{error} (looked for {image_path.relative_to(raw_dir).as_posix()})")
            return
        objects, flags, problems = self._objects(annotation, raw_file, info.width, info.height)
        yield from problems
        if annotation.size and annotation.size != (info.width, info.height):
            flags.add("size_mismatch")
        if not objects:
            reasons = "; ".join(sorted({p.reason for p in problems})) or "the file has no <object>"
            yield Rejected(raw_file, f"no usable object left in the image ({reasons})")
            return
        yield build_record(
            DetectionRecord,
            raw_file=raw_file,
            source=self.name,
            record_id=f"dior:{image_id}",
            split=split,
            **image_fields(raw_dir, image_path, self.family, info),
            objects=objects,
            flags=sorted(flags),
        )

    def _objects(
        self, annotation: VocAnnotation, raw_file: str, width: int, height: int
    ) -> tuple[list[DetectedObject], set[str], list[Rejected]]:
        objects: list[DetectedObject] = []
        flags: set[str] = set()
        problems: list[Rejected] = []

        def drop(obj: VocObject, reason: str) -> None:
            problems.append(Rejected(raw_file, reason, raw_index=obj.index, excerpt=obj.name, level="part"))

        for obj in annotation.objects:
            label = normalize_dior_class(obj.name)
            if label is None:
                drop(obj, f"unknown class {obj.name!r} (not one of the 20 DIOR classes)")
                continue
            if obj.problem:
                drop(obj, f"object box unreadable: {obj.problem}")
                continue
            box, from_oriented = object_box(obj, self.prefer)
            if problem := box_problem(box, width, height):  # inverted, no area, or a broken coordinate
                drop(obj, problem)
                continue
            clipped_box, clipped = clip_box(box, width, height)
            if clipped_box is None:
                drop(obj, f"box {box} lies wholly outside the {width}x{height} image")
                continue
            if clipped:
                flags.add("box_clipped")
            if from_oriented:
                flags.add("from_oriented_box")
            objects.append(DetectedObject(label=label, box=clipped_box, difficult=obj.difficult, clipped=clipped))
        return objects, flags, problems

    def _unlisted_annotations(self, raw_dir: Path, split_of: dict[str, str]) -> Iterator[Rejected]:
        seen: set[str] = set()
        for folder in (HBB_DIR, OBB_DIR):
            directory = raw_dir / folder
            if not directory.is_dir():
                continue
            for path in sorted(directory.glob("*.xml")):
                if path.stem not in split_of and path.stem not in seen:
                    seen.add(path.stem)
                    yield Rejected(
                        path.relative_to(raw_dir).as_posix(),
                        f"image id {path.stem} is in no split file ({SPLIT_DIR}/train|val|test.txt)",
                    )
