"""DOTA: a large-scale dataset for object detection in aerial images (Xia et al. 2018).

What it is: 2,806 aerial images (about 800 to 4,000 pixels a side; v1.0: 1,411 train, 458 val,
937 test) with 188,282 instances of 15 classes (16 in v1.5, which adds ``container-crane``), each
an arbitrary quadrilateral. SkyEye-968k joins DOTA detection with the RSIVQA-DOTA questions on the
same image (DOTA-Conversa).

Raw layout (``RAW/dota/``): ``{train,val,test}/images/P*.png`` and, per labelled split, ONE label
folder of the accepted variants (:data:`LABEL_FOLDERS`, each with its evidence in ``layouts``)::

    train/labelTxt-v1.0/labelTxt/P0000.txt                          # the v1.0 archive (oriented)
    train/labelTxt-v1.0/Train_Task2_gt/trainset_reclabelTxt/        # the v1.0 archive (horizontal)
    train/labelTxt-v1.5/DOTA-v1.5_train/   .../DOTA-v1.5_train_hbb/ # the v1.5 archive
    train/labelTxt/                                                 # flattened (common re-pack)
    train/annotations/version1.0/  (or version1.5/)                 # torchgeo's layout
    val/...                                                         # the same under val/
    test/images/P0006.png ...     # images only: test labels are withheld, so no records

The recipe picks the version (``version: "1.0" | "1.5"``) when labels of several are present;
without it such a folder is a LayoutError. Versions are never mixed; per version the oriented
labels are preferred. Train and val labels of the chosen version must both be there.

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
from pathlib import Path
from typing import Iterator

from skyeye_data import rawfs
from skyeye_data.boxes import box_problem, clip_box, polygon_to_box
from skyeye_data.schema import DetectedObject, DetectionRecord
from skyeye_data.sources import register
from skyeye_data.sources.base import FoundLayout, Layout, LayoutError, SourceConverter
from skyeye_data.sources.base import ImageProblem, Rejected, build_record, image_fields, probe_image

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


VERSIONS = ("1.0", "1.5", "flat")
_ARCHIVE = "the DOTA release archives as extracted (../shared/real-samples/README.md, 'Published folder layouts')"
_TORCHGEO = "microsoft/torchgeo torchgeo/datasets/dota.py (_verify: <split>/images + <split>/annotations/version<v>)"
LAYOUT_V10 = Layout("archive v1.0", "{train,val}/images/ + {train,val}/labelTxt-v1.0/labelTxt/", _ARCHIVE)
LAYOUT_V10_HBB = Layout("archive v1.0 horizontal", "{train,val}/images/ + "
                        "{train,val}/labelTxt-v1.0/{Train,Val}_Task2_gt/{train,val}set_reclabelTxt/", _ARCHIVE)
LAYOUT_V15 = Layout("archive v1.5", "{train,val}/images/ + {train,val}/labelTxt-v1.5/DOTA-v1.5_{train,val}/", _ARCHIVE)
LAYOUT_V15_HBB = Layout("archive v1.5 horizontal", "{train,val}/images/ + "
                        "{train,val}/labelTxt-v1.5/DOTA-v1.5_{train,val}_hbb/", _ARCHIVE)
LAYOUT_FLAT = Layout("flattened", "{train,val}/images/ + {train,val}/labelTxt/",
                     "the common re-pack (one label folder per split); CAPTAIN-WHU/DOTA_devkit example/ keeps "
                     "images/ beside labelTxt/")
LAYOUT_TORCHGEO_10 = Layout("torchgeo v1.0", "{train,val}/images/ + {train,val}/annotations/version1.0/", _TORCHGEO)
LAYOUT_TORCHGEO_15 = Layout("torchgeo v1.5", "{train,val}/images/ + {train,val}/annotations/version1.5/", _TORCHGEO)
# (layout, version, label folder pattern): per version the oriented labels first (the quadrilateral is
# boxed here anyway, and the horizontal files are derived from it)
LABEL_FOLDERS: tuple[tuple[Layout, str, str], ...] = (
    (LAYOUT_V10, "1.0", "{split}/labelTxt-v1.0/labelTxt"),
    (LAYOUT_V10_HBB, "1.0", "{split}/labelTxt-v1.0/{Split}_Task2_gt/{split}set_reclabelTxt"),
    (LAYOUT_TORCHGEO_10, "1.0", "{split}/annotations/version1.0"),
    (LAYOUT_V15, "1.5", "{split}/labelTxt-v1.5/DOTA-v1.5_{split}"),
    (LAYOUT_V15_HBB, "1.5", "{split}/labelTxt-v1.5/DOTA-v1.5_{split}_hbb"),
    (LAYOUT_TORCHGEO_15, "1.5", "{split}/annotations/version1.5"),
    (LAYOUT_FLAT, "flat", "{split}/labelTxt"),
)


@register
class DotaSource(SourceConverter):
    name = "dota"
    task = "detection"
    family = "dota"
    layout = "{train,val}/images/P*.png + {train,val}/labelTxt-v1.0/labelTxt/P*.txt, or the v1.5, flattened and torchgeo folders"
    title = "DOTA v1.0/v1.5"
    citation = "Xia et al. DOTA: A Large-scale Dataset for Object Detection in Aerial Images. CVPR 2018."
    license = "academic use only (see the DOTA terms)"
    homepage = "https://captain-whu.github.io/DOTA/"
    short_title = "DOTA"
    paper_counts = {"dota_conversa": ("DOTA-Conversa", 1_400)}
    license_url = "https://captain-whu.github.io/DOTA/dataset.html"
    published_splits = {"train": 1411, "val": 458}  # label files (= images) per split; test labels are withheld
    published_unit = "label files"
    layouts = (LAYOUT_V10, LAYOUT_V10_HBB, LAYOUT_V15, LAYOUT_V15_HBB, LAYOUT_FLAT, LAYOUT_TORCHGEO_10, LAYOUT_TORCHGEO_15)

    def __init__(self, version: str | None = None) -> None:
        if version not in (None, *VERSIONS):
            raise ValueError(f"dota: version must be one of {', '.join(VERSIONS)}, got {version!r}")
        self.version = version  # the recipe's `version:`; None = the one version the folder holds

    def configured(self, **options) -> "DotaSource":
        """A converter with the recipe's options (``version: "1.0" | "1.5"``)."""
        unknown = set(options) - {"version"}
        if unknown:
            raise ValueError(f"dota: unknown option(s) {', '.join(sorted(unknown))}; known: version")
        return DotaSource(**options)

    def check_layout(self, raw_dir: Path) -> None:
        self.find_layout(raw_dir)

    def find_layout(self, raw_dir: Path) -> FoundLayout:
        super().check_layout(raw_dir)
        by_version: dict[str, dict[str, tuple[Layout, str]]] = {}  # version -> split -> (layout, label folder)
        for layout, version, pattern in LABEL_FOLDERS:
            for split in LABELLED_SPLITS:
                folder = pattern.format(split=split, Split=split.capitalize())
                if (raw_dir / folder).is_dir():
                    by_version.setdefault(version, {}).setdefault(split, (layout, folder))
        if not by_version:
            found = sorted(p.name for p in raw_dir.iterdir())[:10]
            raise LayoutError(
                f"dota: {raw_dir} holds no DOTA label folder (found: {', '.join(found) or 'nothing'}); expected "
                "train/labelTxt-v1.0/labelTxt/ (the official archive), train/labelTxt/, "
                "train/labelTxt-v1.5/DOTA-v1.5_train/ or train/annotations/version1.0/ (torchgeo), the same under val/"
            )
        if self.version is None and len(by_version) > 1:
            raise LayoutError(
                f"dota: {raw_dir} holds the labels of several versions ({', '.join(sorted(by_version))}); "
                'say which one to read with `version: "1.0"` or `version: "1.5"` under dota in the recipe (never mixed)'
            )
        version = self.version or next(iter(by_version))
        if version not in by_version:
            raise LayoutError(f"dota: the recipe asks for version {version} but {raw_dir} holds only "
                              f"{', '.join(sorted(by_version))} labels")  # fmt: skip
        chosen = by_version[version]
        for split in LABELLED_SPLITS:
            if split not in chosen:  # DOTA publishes train and val labels: one absent is an error
                other = next(iter(chosen.values()))[1]
                raise LayoutError(
                    f"dota: {raw_dir} has {other}/ but no {split} labels of the same version; extract the {split} "
                    f"label archive so that {other.replace(next(iter(chosen)), split, 1)}/ exists"
                )
            if not (raw_dir / split / "images").is_dir():
                raise LayoutError(f"dota: {raw_dir / split} has labels but no images/ folder; extract the {split} images")
        layout = chosen["train"][0]
        return FoundLayout(layout, {split: folder + "/" for split, (_, folder) in chosen.items()})

    def count_raw(self, raw_dir: Path, found: FoundLayout) -> dict[str, int] | None:
        return {split: sum(1 for _ in (raw_dir / folder).glob("*.txt")) for split, folder in found.paths.items()}

    def records(self, raw_dir: Path) -> Iterator[DetectionRecord | Rejected]:
        found = self.find_layout(raw_dir)
        for split in LABELLED_SPLITS:
            label_dir = raw_dir / found.paths[split]
            for label_path in sorted(label_dir.glob("*.txt")):
                yield from self._label_file(raw_dir, split, label_path)

    def _find_image(self, raw_dir: Path, split: str, stem: str) -> Path:
        for suffix in IMAGE_SUFFIXES:
            if rawfs.present(path := raw_dir / split / "images" / f"{stem}{suffix}"):
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
        try:  # the guarded reader: a FIFO, a device or a symlink out of the raw root is refused, never read
            text = rawfs.read_bytes(label_path, "label").decode("utf-8", errors="replace")
        except rawfs.RawAccessError as error:
            yield Rejected(raw_file, error.reason)
            return
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
            **image_fields(raw_dir, image_path, self.family, info),
            objects=objects,
            flags=flags,
        )

    @staticmethod
    def _object(line: str, width: int, height: int) -> DetectedObject:
        coords, label, difficult = parse_object_line(line)
        box = polygon_to_box(coords)
        if box[2] <= box[0] or box[3] <= box[1]:
            raise LineProblem(f"polygon has no area (box {box})")
        if problem := box_problem(box, width, height):
            raise LineProblem(problem)
        clipped_box, clipped = clip_box(box, width, height)
        if clipped_box is None:
            raise LineProblem(f"box {box} lies wholly outside the {width}x{height} image")
        return DetectedObject(label=label, box=clipped_box, difficult=difficult, clipped=clipped)
