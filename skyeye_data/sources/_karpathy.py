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

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Sequence, TextIO

from skyeye_data.io import atomic_path
from skyeye_data.schema import SPLITS, CaptionRecord, Record
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

# ---------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------

_WHITESPACE = re.compile(r"\s+")
# pre-tokenised text puts a space before closing punctuation: "trees , a road ." -> "trees, a road."
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?)\]])")
_SPACE_AFTER_OPEN = re.compile(r"([(\[])\s+")
# surrogateescape maps each undecodable byte 0xNN to the code point U+DC00+0xNN
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
_TOKEN = re.compile(r"[a-z0-9]+")
_WORD = re.compile(r"\w")  # a caption of punctuation only (" .") is as empty as ""


def normalise_caption(text: str) -> str:
    """Collapse whitespace, remove the tokeniser's space before punctuation, strip."""
    text = _WHITESPACE.sub(" ", text)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _SPACE_AFTER_OPEN.sub(r"\1", text)
    return text.strip()


def undecodable_byte(text: str) -> int | None:
    """The first byte that was not UTF-8 in ``text`` (decoded with surrogateescape), else None."""
    match = _ESCAPED_BYTE.search(text)
    return None if match is None else ord(match.group()) - 0xDC00


def printable(text: str) -> str:
    """``text`` safe to write as UTF-8: undecodable bytes shown as ``\\xNN``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def excerpt_of(value: Any) -> str:
    # ensure_ascii escapes lone surrogates, so the excerpt always encodes
    return json.dumps(value, ensure_ascii=True)[:300]


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
    try:
        data = path.read_bytes()
    except OSError as error:
        raise LayoutError(f"{path} cannot be read: {error}") from error
    # utf-8-sig drops a byte-order mark some editors add; surrogateescape keeps bad bytes visible
    text = data.decode("utf-8-sig", errors="surrogateescape")
    try:
        return json.loads(text)
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


class CaptionJsonSource(SourceConverter):
    """A captioning source whose annotations are one JSON file next to an image folder.

    Subclasses set the class attributes and, when the file is not Karpathy-style, override
    :meth:`entries` and :meth:`caption_texts`.
    """

    task: ClassVar[str] = "caption"
    annotation_file: ClassVar[str]  # e.g. "dataset.json"
    image_dir: ClassVar[str]  # e.g. "images"
    required_fields: ClassVar[tuple[str, ...]] = ("filename", "imgid", "split", "sentences")
    synth: ClassVar["SynthSpec"]

    # -- layout --------------------------------------------------------------------------------

    def check_layout(self, raw_dir: Path) -> None:
        super().check_layout(raw_dir)
        missing = [
            name
            for name, ok in (
                (self.annotation_file, (raw_dir / self.annotation_file).is_file()),
                (f"{self.image_dir}/", (raw_dir / self.image_dir).is_dir()),
            )
            if not ok
        ]
        if missing:
            raise LayoutError(
                f"{self.name}: {raw_dir} has no {' and no '.join(missing)}; "
                f"expected {self.layout} ({self.title} as published)"
            )

    # -- reading ------------------------------------------------------------------------------

    def records(self, raw_dir: Path) -> Iterator[Record | Rejected]:
        self.check_layout(raw_dir)
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

    # -- synthesis ----------------------------------------------------------------------------

    def synthesize(self, raw_dir: Path, scale: Scale, rng: random.Random) -> int:
        return write_synthetic(self, raw_dir, scale, rng)

    def entry_json(self, filename: str, imgid: int, split: str, captions: list[str], class_name: str) -> dict:
        """One synthetic image entry in this source's published shape (Karpathy by default)."""
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

    def write_annotation(self, out: TextIO, entries: Iterator[tuple[str, dict]]) -> None:
        """Stream entries (class name, entry) into the file, in Karpathy shape by default."""
        out.write('{"images": [')
        for number, (_, entry) in enumerate(entries):
            out.write(("," if number else "") + "\n" + json.dumps(entry))
        out.write(f'\n], "dataset": {json.dumps(self.family)}}}\n')


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


# ---------------------------------------------------------------------------------------------
# Synthesis
# ---------------------------------------------------------------------------------------------


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


def write_synthetic(source: CaptionJsonSource, raw_dir: Path, scale: Scale, rng: random.Random) -> int:
    """Write the annotation file and images of ``source`` in its published layout; return images written.

    The JSON is streamed entry by entry, so the paper scale (31.5k NWPU images) stays in bounded memory.
    Images come in contiguous blocks per class, as in the real files; the split is drawn per image.
    """
    from skyeye_data.synth import synth_image  # synth imports the source registry: import late

    spec = source.synth
    splits = spec.paper_splits if scale == "paper" else spec.mini_splits
    size = spec.paper_image_size if scale == "paper" else spec.image_size
    total = sum(splits.values())
    split_of = [name for name, count in splits.items() for _ in range(count)]
    rng.shuffle(split_of)
    per_class = -(-total // len(spec.classes))
    raw_dir.mkdir(parents=True, exist_ok=True)

    def entries() -> Iterator[tuple[str, dict]]:
        for number in range(total):
            class_name = spec.classes[number // per_class]
            filename = spec.filename(class_name, number % per_class + 1, number + 1)
            folder = source.image_dir + (f"/{spec.image_subdir(class_name)}" if spec.image_subdir else "")
            synth_image(raw_dir / folder / filename, *size, seed=f"{source.name}:{filename}")
            captions = synth_captions(class_name, rng, spec.capitalised)
            yield class_name, source.entry_json(filename, number, split_of[number], captions, class_name)

    with atomic_path(raw_dir / source.annotation_file) as tmp, open(tmp, "w", encoding="utf-8") as out:
        source.write_annotation(out, entries())
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
