"""RSVG: visual grounding in remote sensing images (Sun et al., ACM MM 2022; the GeoVG paper).

What it is: 7,933 referring expressions on 4,239 remote sensing images, each expression naming
one object by its geospatial relations ("find a water tower that is about 170 square meters.
there is a ground track field, located approximately 34 meters southeast of the water tower ..."),
with the object's horizontal box; splits 5,505 / 1,201 / 1,227 expressions. SkyEye-968k uses the
train split for ``[refer]``.

Raw layout under ``RAW/rsvg/`` (the variants: :attr:`RsvgSource.layouts`, with their evidence)::

    images/<image_file> ...
    rsvg_train.pth  rsvg_val.pth  rsvg_test.pth    # as released (or their rsvg_<split>.json exports)

The GeoVG code (a fork of ReSC, ``dataset/data_loader.py``, dataset name ``'rsvg'``) reads
``<data_root>/rsvg/images/<image_file>`` and ``<split_root>/rsvg/rsvg_<split>.pth``, each a
``torch.save``-d Python list of tuples ``(image_file, bbox, phrase, extra)`` with ``bbox`` already
``[x1, y1, x2, y2]`` in pixels (the loader only casts it to int). The ``.pth`` files are read
directly and safely (:mod:`skyeye_data.sources._pth`: the zip's ``data.pkl`` through an unpickler
that resolves no global and no tensor storage; torch is never imported). A ``.pth`` holding anything
but plain lists, tuples, strings and numbers is refused with the reason, as one rejection for the
file. All three split files must be there: one missing is a LayoutError naming it.

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
from pathlib import Path
from typing import Iterator

from skyeye_data import rawfs, safejson
from skyeye_data.boxes import box_problem, clip_box
from skyeye_data.schema import GroundingRecord
from skyeye_data.sources import register
from skyeye_data.sources._pth import PthError, load_plain_pth
from skyeye_data.sources.base import FoundLayout, Layout, LayoutError, SourceConverter
from skyeye_data.sources.base import ImageProblem, Rejected, build_record, image_fields, probe_image

SPLIT_NAMES = ("train", "val", "test")
LAYOUT_PTH = Layout(
    "published", "images/ + rsvg_{train,val,test}.pth",
    "the GeoVG code (a ReSC fork, dataset/data_loader.py, dataset 'rsvg') reads <data_root>/rsvg/images/<file> and "
    "<split_root>/rsvg/rsvg_<split>.pth, torch.save-d lists of (image_file, bbox, phrase, ...); third-party READMEs "
    "show the same folder (../shared/real-samples/README.md, 'Published folder layouts')",
)  # fmt: skip
LAYOUT_JSON = Layout(
    "json export", "images/ + rsvg_{train,val,test}.json",
    "this toolkit's earlier instructions: the same lists exported once with torch.load(weights_only=True)",
)  # fmt: skip


def split_file(raw_dir: Path, split: str, suffix: str = ".json") -> Path:
    return raw_dir / f"rsvg_{split}{suffix}"


@register
class RsvgSource(SourceConverter):
    name = "rsvg"
    task = "grounding"
    family = "rsvg"
    layout = "images/*, rsvg_{train,val,test}.pth (the released lists; their .json exports are accepted too)"
    title = "RSVG (GeoVG)"
    citation = "Sun, Feng, Li, Ye, Kang, Huang. Visual Grounding in Remote Sensing Images. ACM MM 2022."
    license = "research use (see the GeoVG release)"
    homepage = "https://sunyuxi.github.io/publication/GeoVG"
    short_title = "RSVG"
    benchmark_splits = ("val", "test")
    report_rank = 11
    paper_counts = {"rsvg": ("RSVG", 5_500)}
    published_splits = {"train": 5505, "val": 1201, "test": 1227}  # expressions (list entries)
    published_unit = "expressions"
    layouts = (LAYOUT_PTH, LAYOUT_JSON)

    def check_layout(self, raw_dir: Path) -> None:
        self.find_layout(raw_dir)

    def find_layout(self, raw_dir: Path) -> FoundLayout:
        super().check_layout(raw_dir)
        if not (raw_dir / "images").is_dir():
            raise LayoutError(f"rsvg: {raw_dir} has no images/ folder; expected {self.layout}")
        for layout, suffix in ((LAYOUT_PTH, ".pth"), (LAYOUT_JSON, ".json")):
            present = [s for s in SPLIT_NAMES if split_file(raw_dir, s, suffix).is_file()]
            if present and len(present) < len(SPLIT_NAMES):  # all three are published: one absent is an error
                missing = [split_file(raw_dir, s, suffix).name for s in SPLIT_NAMES if s not in present]
                raise LayoutError(f"rsvg: {raw_dir} lacks {', '.join(missing)} (the release has the train, val and "
                                  f"test lists); put the missing file(s) beside {split_file(raw_dir, present[0], suffix).name}")  # fmt: skip
            if present:
                return FoundLayout(layout, {s: split_file(raw_dir, s, suffix).name for s in SPLIT_NAMES})
        raise LayoutError(f"rsvg: {raw_dir} has none of rsvg_train.pth, rsvg_val.pth, rsvg_test.pth (or their .json "
                          f"exports); expected {self.layout}")  # fmt: skip

    def records(self, raw_dir: Path) -> Iterator[GroundingRecord | Rejected]:
        found = self.find_layout(raw_dir)
        for split in SPLIT_NAMES:
            path = raw_dir / found.paths[split]
            entries = self._load_split(path)
            if isinstance(entries, Rejected):
                yield entries  # nothing of the file can be counted: one rejection stands for the whole file
                continue
            for index, entry in enumerate(entries):
                # torch.save-d lists hold tuples; the JSON export, lists: one shape for the checks
                yield self._record(raw_dir, path.name, split, index, _as_lists(entry))

    def count_raw(self, raw_dir: Path, found: FoundLayout) -> dict[str, int] | None:
        lists = {split: self._load_split(raw_dir / found.paths[split]) for split in SPLIT_NAMES}
        return None if any(isinstance(v, Rejected) for v in lists.values()) else {s: len(v) for s, v in lists.items()}

    @staticmethod
    def _load_split(path: Path) -> list | Rejected:
        try:  # guarded read (utf-8-sig: a byte-order mark is accepted, as every other source does)
            if path.suffix == ".pth":
                entries = load_plain_pth(rawfs.read_bytes(path, "json"))
            else:
                entries = safejson.loads(rawfs.read_text(path, "json", encoding="utf-8-sig"))
        except rawfs.RawAccessError as error:
            return Rejected(path.name, error.reason)
        except PthError as error:
            return Rejected(path.name, f"{path.name} {error}")
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            return Rejected(path.name, f"split file is not valid JSON ({error})")
        if not isinstance(entries, list):
            return Rejected(path.name, f"split file holds a {type(entries).__name__}, expected a list of entries")
        return entries

    def _record(self, raw_dir: Path, raw_file: str, split: str, index: int, entry) -> GroundingRecord | Rejected:
        excerpt = json.dumps(entry, ensure_ascii=False)[:300]

        def reject(reason: str) -> Rejected:
            return Rejected(raw_file, reason, raw_index=index, excerpt=excerpt)

        problem = _entry_problem(entry)
        if problem:
            return reject(problem)
        image_file, bbox, expression = entry[0], [float(v) for v in entry[1]], entry[2]
        try:  # the name is checked before any filesystem call ('..', absolute, NUL, over 255 bytes)
            image_path = rawfs.child(raw_dir / "images", image_file, "image file name")
        except rawfs.RawAccessError as error:
            return reject(error.reason)
        try:
            info = probe_image(image_path)
        except ImageProblem as error:
            return reject(f"{error} (looked for images/{image_file})")
        if problem := box_problem(bbox, info.width, info.height):  # inverted, no area, a broken coordinate
            return reject(problem)
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
            **image_fields(raw_dir, image_path, self.family, info, name=image_file),
            expression=expression.strip(),
            boxes=[box],
            flags=["box_clipped"] if clipped else [],
        )


def _as_lists(value):
    """Tuples (as torch.save keeps them) become lists, recursively; everything else is left as it is."""
    if isinstance(value, (list, tuple)):
        return [_as_lists(v) for v in value]
    return value


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
