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

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from skyeye_data import rawfs
from skyeye_data.boxes import box_problem, clip_box
from skyeye_data.schema import GroundingRecord
from skyeye_data.sources import register
from skyeye_data.sources._voc import VocError, VocObject, count_object_tags, read_voc
from skyeye_data.sources.base import Layout, LayoutError, SourceConverter
from skyeye_data.sources.base import ImageInfo, ImageProblem, Rejected, build_record, image_fields, probe_image
from skyeye_data.sources.dior import normalize_dior_class

SPLIT_NAMES = ("train", "val", "test")
PAPER_IMAGES = 17402
PAPER_SPLIT_SIZES = {"train": 26991, "val": 3829, "test": 7500}


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
        if not rawfs.present(path):
            continue
        try:  # the guarded reader: a FIFO or a symlink out of the raw root is refused; its objects stay unplaced
            lines = rawfs.read_text(path, "label", encoding="utf-8-sig", errors="replace").splitlines()
        except rawfs.RawAccessError as error:
            index.bad_lines.append(Rejected(path.name, error.reason, level="part"))
            continue
        for line_no, line in enumerate(lines, 1):
            text = line.strip()
            if not text:
                continue
            if not (text.isascii() and text.isdigit()):  # str.isdigit() is true for '²', which int() refuses
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


class NumberingCheck:
    """Fails closed when a broken XML makes the global object numbering uncertain.

    A file that cannot be parsed advances the numbering by its ``<object>`` tags (a byte scan). That
    count is right when the file was cut inside its last object, wrong when whole objects are gone.
    The check: the tag count over all files must equal the objects the split files number
    (0 .. highest index). When it does not and a file is broken, every object after the first broken
    file may carry another object's index — its split would be a guess — so it is quarantined.

    Source of the numbering: ZhanYang-nwpu/RSVG-pytorch ``data_loader.py`` increments ``count`` once per
    ``root.findall('object')`` of every file of ``filelist(anno_path, '.xml')`` (``os.walk`` order; the
    authors' paths are Windows ones, where that walk is in sorted name order) and keeps the objects whose
    ``count`` is in ``<split>.txt``. Its ``ET.parse`` stops at a broken file, so it has no rule for one.
    """

    def __init__(self, index: SplitIndex, xml_paths: list[Path]):
        listed = max(index.split_of, default=-1) + 1
        self.scanned = sum(count_object_tags(p) for p in xml_paths)
        self.consistent = self.scanned == listed
        self.listed = listed
        self.after: str | None = None

    def broken(self, raw_file: str) -> None:
        if not self.consistent and self.after is None:
            self.after = raw_file

    def problem(self) -> str | None:
        if self.after is None:
            return None
        return (
            f"object numbering is uncertain after the broken {self.after} (the files hold {self.scanned} <object> "
            f"tags, the split files number {self.listed}): not assigned to any split"
        )


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
    short_title = "DIOR-RSVG"
    benchmark_splits = ("val", "test")
    report_rank = 10
    paper_counts = {"dior_rsvg": ("DIOR-RSVG", 27_000), "dior_conversa": ("DIOR-Conversa", 14_700)}
    license_url = "https://creativecommons.org/licenses/by-nc/4.0/"
    published_splits = {"train": 26991, "val": 3829, "test": 7500}  # objects (../shared/real-samples/dior_rsvg/*.txt)
    published_unit = "expressions"
    layouts = (
        Layout("published", "Annotations/*.xml + JPEGImages/*.jpg + {train,val,test}.txt",
               "ZhanYang-nwpu/RSVG-pytorch (DIOR_RSVG/ split files, RSVGD/Annotations/*.xml)"),
    )  # fmt: skip

    def check_layout(self, raw_dir: Path) -> None:
        super().check_layout(raw_dir)
        missing = []
        if not (raw_dir / "Annotations").is_dir():
            missing.append("Annotations/")
        if not any((raw_dir / f"{s}.txt").is_file() for s in SPLIT_NAMES):
            missing.append("train.txt/val.txt/test.txt")
        if missing:
            raise LayoutError(f"dior_rsvg: {raw_dir} lacks {' and '.join(missing)}; expected {self.layout}")

    def count_raw(self, raw_dir: Path, found) -> dict[str, int] | None:
        """Object indices per split file (one expression each)."""
        counts: dict[str, int] = {}
        for split in read_split_index(raw_dir).split_of.values():
            counts[split] = counts.get(split, 0) + 1
        return counts

    def records(self, raw_dir: Path) -> Iterator[GroundingRecord | Rejected]:
        index = read_split_index(raw_dir)
        yield from index.bad_lines
        xml_paths = sorted((raw_dir / "Annotations").glob("*.xml"))
        numbering = NumberingCheck(index, xml_paths)
        next_index = 0
        for xml_path in xml_paths:
            raw_file = xml_path.relative_to(raw_dir).as_posix()
            try:
                annotation = read_voc(xml_path)
            except VocError as error:
                yield from self._broken_file(xml_path, raw_file, str(error), next_index)
                next_index += count_object_tags(xml_path)
                numbering.broken(raw_file)
                continue
            image = self._probe(raw_dir, xml_path)
            for obj in annotation.objects:
                global_index = next_index + obj.index
                split, problem = self._split(index, global_index)
                problem = numbering.problem() or problem
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
        if problem := box_problem(obj.bndbox, info.width, info.height):  # inverted, no area, a broken value
            return Rejected(raw_file, problem, raw_index=obj.index, excerpt=obj.description)
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
            **image_fields(raw_dir, image_path, self.family, info),
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
