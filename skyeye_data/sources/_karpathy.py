"""Shared reading and writing of the image-captioning annotation files (Karpathy-style JSON).

UCM-Captions, Sydney-Captions, RSICD and RSITMD are published in the "Karpathy" layout that image
captioning code has used since NeuralTalk::

    {"images": [{"filename": "1.tif", "imgid": 0, "split": "train", "sentids": [0, 1, 2, 3, 4],
                 "sentences": [{"raw": "There is a piece of farmland .", "tokens": [...],
                                "imgid": 0, "sentid": 0}, ...]}, ...],
     "dataset": "ucm"}

NWPU-Captions keeps the same fields flattened per image and grouped by class (see
:mod:`skyeye_data.sources.nwpu_captions`); it reuses the checks of this module through
:class:`CaptionJsonSource`.

Choices every caption source shares (documented once, here):

- One :class:`~skyeye_data.schema.CaptionRecord` per image; its captions are all the image's
  sentences' ``raw`` text, normalised by :func:`normalise_caption` (the files are pre-tokenised:
  ``"a plane ."`` becomes ``"a plane."``). Repeated captions are kept: the real files pad images that
  received fewer distinct descriptions by repeating one up to five times, and the paper counts one
  sample per caption.
- ``record_id`` is ``<source>:<file stem>`` (stable when the JSON is re-ordered or re-indexed);
  ``image_key`` is ``<family>:<file stem>``, the key RSIVQA questions on the same images also get.
- A file that is not valid JSON (truncated download, stray byte) cannot be split into records. It is
  reported as ONE record-level :class:`Rejected` carrying the line and column of the parse error, so
  the conversion summary shows "1 quarantined: invalid JSON" instead of silently writing nothing, and
  ``records in = written + quarantined`` still holds (the one unreadable file counts as one record).
- Bytes that are not UTF-8 are read with ``surrogateescape`` so that one bad caption does not sink the
  whole file: the image holding them is quarantined with a "bad encoding" reason naming the byte.
- Empty captions (nothing but spaces and punctuation) are dropped (flag ``empty_caption_dropped``
  on the record, plus a part-level quarantine line); an image left with no caption is quarantined. A duplicate ``imgid`` or
  ``filename`` quarantines the second occurrence. Unknown split values are quarantined.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator, Sequence

from skyeye_data.json_stream import excerpt_of, printable, undecodable_byte
from skyeye_data import rawfs, safejson
from skyeye_data.schema import SPLITS, CaptionRecord, Record
from skyeye_data.textguard import escaped_surrogates_apart
from skyeye_data.sources.base import FoundLayout, Layout, LayoutError, SourceConverter
from skyeye_data.sources.base import ImageProblem, Rejected, build_record, image_key, media_fields, probe_image

# ---------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------

_WHITESPACE = re.compile(r"\s+")
# pre-tokenised text puts a space before closing punctuation: "trees , a road ." -> "trees, a road."
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?)\]])")
_SPACE_AFTER_OPEN = re.compile(r"([(\[])\s+")
_WORD = re.compile(r"\w")  # a caption of punctuation only (" .") is as empty as ""


def normalise_caption(text: str) -> str:
    """Collapse whitespace, remove the tokeniser's space before punctuation, strip."""
    text = _WHITESPACE.sub(" ", text)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _SPACE_AFTER_OPEN.sub(r"\1", text)
    return text.strip()


def head_of(value: Any) -> Any:
    """A small piece of a possibly huge JSON value, for an excerpt (not the whole file)."""
    if isinstance(value, list):
        return value[:1]
    if isinstance(value, dict):
        return sorted(value)[:8]
    return value


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def load_annotation_json(path: Path, raw_file: str) -> Any | Rejected:
    """The parsed file, or one Rejected saying why it cannot be parsed at all."""
    try:  # the guarded reader: a FIFO, a device or a symlink out of the raw root is refused, never read
        data = rawfs.read_bytes(path, "json")
    except rawfs.RawAccessError as error:
        return Rejected(raw_file, f"{error.reason}; none of its records can be read")
    # utf-8-sig drops a byte-order mark some editors add; surrogateescape keeps bad bytes visible
    try:
        text = escaped_surrogates_apart(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        text = data.decode("utf-8-sig", errors="surrogateescape")
    try:
        return safejson.loads(text)  # 1,500-deep nesting is a JSONDecodeError here, not a RecursionError
    except json.JSONDecodeError as error:
        # a complete annotation file ends with its top-level "}" (or "]")
        truncated = (
            "; the file ends mid-structure (truncated download?)" if text.rstrip()[-1:] not in ("}", "]") else ""
        )
        return Rejected(
            raw_file,
            f"invalid JSON at line {error.lineno} col {error.colno}: {error.msg}{truncated}; "
            "none of its records can be read",
            raw_line=error.lineno,
            excerpt=printable(text[max(0, error.pos - 120) : error.pos + 40]),
        )


@dataclass(frozen=True)
class RawEntry:
    """One image's annotation object as found in the file, with where it was found."""

    index: int  # 0-based position among all image entries of the file, in file order
    value: Any  # the JSON object (not yet checked)
    image_dir: str  # folder of its image, relative to the source folder
    where: str = ""  # extra location for reasons, e.g. "class 'airplane'"


@dataclass(frozen=True)
class CaptionText:
    """One caption slot of an entry: its label for reasons and its raw value (any JSON type)."""

    label: str
    value: Any


def imgs_archive_layouts(folder: str) -> tuple[Layout, Layout]:
    """UCM_captions and Sydney_captions: each archive ships ``dataset.json`` and ``imgs.rar``, which
    extracts to ``imgs/``; public loaders read ``<folder>/dataset.json`` with ``<folder>/imgs`` (found by
    code search over GitHub). ``images/`` is accepted too (copies that renamed the folder)."""
    return (
        Layout("archive", "dataset.json + imgs/<n>.tif",
               f"the {folder} archive (dataset.json + imgs.rar, extracted to imgs/); public loaders read "
               f"{folder}/dataset.json with {folder}/imgs"),
        Layout("images folder", "dataset.json + images/<n>.tif", "inferred: copies that renamed imgs/ to images/"),
    )  # fmt: skip


class CaptionJsonSource(SourceConverter):
    """A captioning source whose annotations are one JSON file next to an image folder.

    Subclasses set the class attributes and, when the file is not Karpathy-style, override
    :meth:`entries` and :meth:`caption_texts`.
    """

    task: ClassVar[str] = "caption"
    annotation_file: ClassVar[str]  # e.g. "dataset.json"
    image_dir: ClassVar[str]  # e.g. "images"
    required_fields: ClassVar[tuple[str, ...]] = ("filename", "imgid", "split", "sentences")
    published_unit: ClassVar[str] = "images"

    # -- layout --------------------------------------------------------------------------------
    # Every accepted layout is one (annotation folder, image folder) pair of ``layouts``: a Layout
    # whose ``files`` reads "<annotation path> + <image folder>/..."; the first that exists wins.

    def find_layout(self, raw_dir: Path) -> FoundLayout:
        super().check_layout(raw_dir)
        tried_annotations, tried_images = [], []
        for layout in self.layouts or (Layout("published", f"{self.annotation_file} + {self.image_dir}/", ""),):
            annotation, images = (part.strip() for part in layout.files.split(" + ", 1))
            images = images.split("/", 1)[0]
            tried_annotations.append(annotation)
            tried_images.append(images + "/")
            if (raw_dir / annotation).is_file() and (raw_dir / images).is_dir():
                return FoundLayout(layout, {"annotations": annotation, "images": images + "/"})
        have_annotation = next((a for a in tried_annotations if (raw_dir / a).is_file()), None)
        have_images = next((i for i in tried_images if (raw_dir / i).is_dir()), None)
        found = sorted(p.name + ("/" if p.is_dir() else "") for p in raw_dir.iterdir())[:12]
        fixes = []
        if have_annotation is None:
            fixes.append(f"put {self.annotation_file} at {tried_annotations[0]} (looked for {', '.join(dict.fromkeys(tried_annotations))})")
        if have_images is None:
            archive = next((p.name for p in raw_dir.iterdir() if p.is_file() and p.stem in {i.rstrip('/') for i in tried_images}
                            and p.suffix.lower() in (".rar", ".zip", ".7z", ".tar", ".gz")), None)  # fmt: skip
            fixes.append(f"extract {archive} in {raw_dir} (it holds the {tried_images[0]} folder)" if archive else
                         f"put the images in {' or '.join(dict.fromkeys(tried_images))}")  # fmt: skip
        elif have_annotation is not None:  # both present, but not as one accepted pair
            fixes.append(f"keep {have_annotation} and {have_images} as one of: "
                         + "; ".join(layout.files for layout in self.layouts))  # fmt: skip
        raise LayoutError(
            f"{self.name}: {raw_dir} is not {self.title} as published (found: {', '.join(found) or 'nothing'}); "
            + "; ".join(fixes)
        )

    def check_layout(self, raw_dir: Path) -> None:
        self.find_layout(raw_dir)

    def count_raw(self, raw_dir: Path, found: FoundLayout) -> dict[str, int] | None:
        """Image entries per ``split`` value (the file is parsed, nothing else is read)."""
        loaded = load_annotation_json(raw_dir / found.paths["annotations"], found.paths["annotations"])
        if isinstance(loaded, Rejected):
            return None
        counts: dict[str, int] = {}
        for entry in self.entries(loaded):
            value = getattr(entry, "value", None)
            split = value.get("split") if isinstance(value, dict) else None
            key = split.strip().lower() if isinstance(split, str) else "(no split)"
            counts[key] = counts.get(key, 0) + 1
        return counts

    # -- reading ------------------------------------------------------------------------------

    def records(self, raw_dir: Path) -> Iterator[Record | Rejected]:
        found = self.find_layout(raw_dir)
        # the reading code names files through annotation_file / image_dir: a view with the found ones
        view = copy.copy(self)
        view.annotation_file, view.image_dir = found.paths["annotations"], found.paths["images"].rstrip("/")
        yield from view._records(raw_dir)

    def _records(self, raw_dir: Path) -> Iterator[Record | Rejected]:
        loaded = load_annotation_json(raw_dir / self.annotation_file, self.annotation_file)
        if isinstance(loaded, Rejected):
            yield loaded
            return
        seen_ids: dict[Any, int] = {}
        seen_names: dict[str, int] = {}
        for entry in self.entries(loaded):
            if isinstance(entry, Rejected):
                yield entry
            else:
                yield from self._convert_entry(raw_dir, entry, seen_ids, seen_names)

    def entries(self, data: Any) -> Iterator[RawEntry | Rejected]:
        """Karpathy layout: ``{"images": [entry, ...]}``."""
        images = data.get("images") if isinstance(data, dict) else None
        if not isinstance(images, list):
            found = f"keys {sorted(data)[:8]}" if isinstance(data, dict) else type(data).__name__
            yield Rejected(
                self.annotation_file,
                f"not a Karpathy caption file: expected an object with an 'images' list, found {found}; "
                "none of its records can be read",
                excerpt=excerpt_of(head_of(data)),
            )
            return
        for index, value in enumerate(images):
            yield RawEntry(index, value, self.image_dir)

    def caption_texts(self, entry: dict) -> list[CaptionText] | str:
        """The entry's caption slots, or a reason why it has none that can be read."""
        sentences = entry["sentences"]
        if not isinstance(sentences, list):
            return f"'sentences' is {type(sentences).__name__}, not a list"
        texts = []
        for number, sentence in enumerate(sentences):
            raw = sentence.get("raw") if isinstance(sentence, dict) else None
            texts.append(CaptionText(f"sentence {number}", raw))
        return texts

    def _convert_entry(
        self, raw_dir: Path, entry: RawEntry, seen_ids: dict[Any, int], seen_names: dict[str, int]
    ) -> Iterator[Record | Rejected]:
        def reject(reason: str) -> Rejected:
            where = f"{entry.where}: " if entry.where else ""
            return Rejected(
                self.annotation_file, where + reason, raw_index=entry.index, excerpt=excerpt_of(entry.value)
            )

        value = entry.value
        problem = self._entry_problem(value)
        if problem:
            yield reject(problem)
            return
        filename, imgid = value["filename"], value["imgid"]
        duplicate = self._duplicate(filename, imgid, entry.index, seen_ids, seen_names)
        if duplicate:
            yield reject(duplicate)
            return
        split = value["split"].strip().lower()
        if split not in SPLITS:
            yield reject(f"unknown split '{printable(value['split'])}' (expected one of {', '.join(SPLITS)})")
            return
        texts = self.caption_texts(value)
        if isinstance(texts, str):
            yield reject(texts)
            return
        check = _usable_captions(texts)
        if check.encoding_problem:
            yield reject(check.encoding_problem)
            return
        if not check.captions:
            yield reject(
                f"all {len(texts)} captions are empty or missing ({'; '.join(check.dropped) or 'no sentences'})"
            )
            return
        image_rel = f"{entry.image_dir}/{filename}"
        try:
            info = probe_image(raw_dir / image_rel)
        except ImageProblem as error:
            yield reject(f"{error} (expected at {image_rel})")
            return
        for reason in check.dropped:
            yield Rejected(
                self.annotation_file,
                (f"{entry.where}: " if entry.where else "") + f"{filename}: {reason}; caption dropped, image kept",
                raw_index=entry.index,
                level="part",
            )
        yield build_record(
            CaptionRecord,
            raw_file=self.annotation_file,
            raw_index=entry.index,
            source=self.name,
            record_id=f"{self.name}:{Path(filename).stem}",
            split=split,
            **media_fields(image_rel, image_key(self.family, filename), info),
            captions=check.captions,
            flags=sorted(check.flags),
        )

    def _entry_problem(self, value: Any) -> str | None:
        """Why this entry cannot be read at all (shape, missing fields, bad filename), or None."""
        if not isinstance(value, dict):
            return f"image entry is {type(value).__name__}, not an object"
        missing = [name for name in self.required_fields if name not in value]
        if missing:
            return f"entry is missing field(s) {', '.join(missing)}"
        filename, split, imgid = value["filename"], value["split"], value["imgid"]
        if not isinstance(filename, str) or not isinstance(split, str):
            return "'filename' and 'split' must be strings"
        if isinstance(imgid, (dict, list, bool)) or imgid is None:
            return f"'imgid' must be a number or string, got {excerpt_of(imgid)}"
        for label, text in (("filename", filename), ("split", split)):
            bad = undecodable_byte(text)
            if bad is not None:
                return f"bad encoding: {label} '{printable(text)}' holds byte 0x{bad:02X}, which is not UTF-8"
        # the name is joined to a folder: refuse anything that could leave it
        if not filename.strip() or "/" in filename or "\\" in filename or filename in (".", ".."):
            return f"filename {filename!r} is not a plain file name"
        try:  # NUL, over 255 bytes: refused before any filesystem call
            rawfs.check_name(filename, "filename")
        except rawfs.RawAccessError as error:
            return error.reason
        return None

    @staticmethod
    def _duplicate(filename: str, imgid: Any, index: int, seen_ids: dict, seen_names: dict) -> str | None:
        """Why this entry repeats an earlier one (same imgid, or same file stem: same record id), or None."""
        if imgid in seen_ids:
            return f"duplicate imgid {imgid!r} (first at index {seen_ids[imgid]}); second occurrence left out"
        stem = Path(filename).stem
        if stem in seen_names:
            first_index, first_name = seen_names[stem]
            what = f"duplicate filename {filename!r}"
            if first_name != filename:  # "1.tif" and "1.jpg" would share record id and image key
                what += f" (same stem as {first_name!r})"
            return f"{what} (first at index {first_index}); second occurrence left out"
        seen_ids[imgid] = index
        seen_names[stem] = (index, filename)
        return None


@dataclass
class CaptionCheck:
    """The outcome of reading an entry's caption slots."""

    captions: list[str]
    dropped: list[str]  # reasons, one per caption slot left out
    flags: set[str]
    encoding_problem: str | None = None


def _usable_captions(texts: Sequence[CaptionText]) -> CaptionCheck:
    check = CaptionCheck([], [], set())
    for text in texts:
        if not isinstance(text.value, str):
            check.dropped.append(f"{text.label} is missing or not text (found {excerpt_of(text.value)[:40]})")
            check.flags.add("malformed_caption_dropped")
            continue
        bad = undecodable_byte(text.value)
        if bad is not None:
            check.encoding_problem = (
                f"bad encoding: {text.label} '{printable(text.value)[:80]}' holds byte 0x{bad:02X}, "
                "which is not UTF-8 (the file must be UTF-8)"
            )
            return check
        caption = normalise_caption(text.value)
        if _WORD.search(caption):
            check.captions.append(caption)
        else:
            check.dropped.append(f"{text.label} is empty")
            check.flags.add("empty_caption_dropped")
    return check
