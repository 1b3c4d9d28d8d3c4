"""What every source converter is: a class with a name, a task, the dataset's facts (titles,
benchmark splits, the paper's counts, citation, licence), a documented raw layout and a ``records``
generator.

Counting contract: for each raw record a converter reads (a caption entry, a question, a text line,
an annotated object or image), ``records`` yields exactly one item: a record, or a
:class:`Rejected` with ``level="record"``. Problems below record level (one object of an image
dropped because it lies wholly outside) are yielded as ``Rejected(level="part")`` *in addition* to
the record; they reach the quarantine file but do not count in the record balance. A bulk reader
(``row_items``) may yield a :class:`RejectedRun` for several record-level rejections in a row.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import ClassVar, Iterator, Literal

from PIL import Image, UnidentifiedImageError

from pydantic import BaseModel, ValidationError

from skyeye_data import rawfs
from skyeye_data.imagecheck import ImageProblem, read_header
from skyeye_data.schema import Provenance, Record
from skyeye_data.sources.header_memo import memo_read_header
from skyeye_data.textguard import TextProblem, clean_fields, safe_text

Scale = Literal["mini", "paper"]  # synthetic corpus sizes (skyeye_data.synth)


@dataclass(frozen=True)
class Rejected:
    """A raw record left out, with where it is and a reason a person understands."""

    raw_file: str
    reason: str
    raw_line: int | None = None
    raw_index: int | None = None
    excerpt: str | None = None
    level: Literal["record", "part"] = "record"
    # an exclusion the dataset's authors ask for (RSVQA's "active": false), not bad input: it is
    # counted and quarantined like any other, but never stops a --strict run
    deliberate: bool = False

    def to_json(self, source: str) -> dict:
        return {
            "source": source,
            # safe_text: a name or excerpt with a lone surrogate must not stop the quarantine file;
            # strip_paths: no absolute local path (a library's message, an attacker's id) is written
            "raw_file": safe_text(self.raw_file),
            "raw_line": self.raw_line,
            "raw_index": self.raw_index,
            "level": self.level,
            "deliberate": self.deliberate,
            "reason": rawfs.strip_paths(safe_text(self.reason)),
            "excerpt": rawfs.strip_paths(safe_text((self.excerpt or "")[:300])) or None,
        }


@dataclass(frozen=True)
class RejectedRun:
    """Record-level rejections of one raw file that share their reason, in file order: what a bulk
    reader yields in place of one :class:`Rejected` each (RSVQA-HR's 59k withdrawn questions, whose
    Rejected objects, generator steps and per-entry cleaning of one reason cost ~0.5 s). It counts
    as ``len(raw_indexes)`` record-level rejections; :meth:`entries` are the ``to_json`` of those
    Rejected items, in order."""

    raw_file: str
    reason: str
    raw_indexes: list[int]
    excerpts: list[str | None]  # one per raw index
    deliberate: bool = False
    level: ClassVar[str] = "record"

    def __len__(self) -> int:
        return len(self.raw_indexes)

    def entries(self, source: str) -> Iterator[dict]:
        raw_file, reason = safe_text(self.raw_file), rawfs.strip_paths(safe_text(self.reason))
        for raw_index, excerpt in zip(self.raw_indexes, self.excerpts, strict=True):
            yield {"source": source, "raw_file": raw_file, "raw_line": None, "raw_index": raw_index, "level": "record",
                   "deliberate": self.deliberate, "reason": reason,
                   "excerpt": rawfs.strip_paths(safe_text((excerpt or "")[:300])) or None}  # fmt: skip


class SourceConverter:
    """Base class of a source: everything the toolkit knows about one public dataset.

    Subclasses set the class attributes and implement :meth:`records`. The registry
    (:mod:`skyeye_data.sources`) is the one place the rest of the toolkit reads these facts from:
    ``skyeye sources``, the dataset card, the eval shards (``benchmark_splits``), the evaluation
    report (``short_title``, ``subset_titles``, ``report_rank``) and the paper-table benchmark
    (``paper_counts``). The synthetic-layout writer of a source lives in
    ``skyeye_data/synth/<name>.py``, above this layer.
    """

    name: ClassVar[str]
    task: ClassVar[str]
    family: ClassVar[str]  # image_key prefix: records of one family share image keys
    media: ClassVar[str] = "image"
    layout: ClassVar[str]  # one line: the files the converter expects under RAW/<name>/
    title: ClassVar[str]  # the dataset's name as published
    short_title: ClassVar[str] = ""  # the name tables and reports use ("RSVQA-HR"); defaults to ``name``
    subset_titles: ClassVar[dict[str, str]] = {}  # record subset -> how reports name it
    # the splits SkyEyeGPT reports scores on: their records become eval shards; () = not a benchmark,
    # its val/test records are held out
    benchmark_splits: ClassVar[tuple[str, ...]] = ()
    # position in the paper's results tables (reports list datasets in this order; None = last)
    report_rank: ClassVar[int | None] = None
    # recipe entry (this source, or a mix built mainly from it) -> (the paper's label, the paper's count)
    paper_counts: ClassVar[dict[str, tuple[str, int]]] = {}
    # raw records per split in the published release (its counting unit: images, questions, lines, ...)
    published_splits: ClassVar[dict[str, int]] = {}
    citation: ClassVar[str]
    license: ClassVar[str]  # licence name as the authors state it
    homepage: ClassVar[str] = ""
    # the raw-folder variants this converter accepts, each with where it comes from (``skyeye doctor``)
    layouts: ClassVar[tuple["Layout", ...]] = ()
    reads_sources: ClassVar[tuple[str, ...]] = ()  # other sources' folders it reads (RSIVQA: its parents); cache keys cover them
    published_unit: ClassVar[str] = "records"  # what published_splits counts: "images", "questions", ...
    published_files: ClassVar[dict[str, int]] = {}  # raw records per published file, where the files are the unit

    @property
    def license_url(self) -> str:
        """Where the licence (or the dataset's terms) is written. A converter whose dataset has a licence
        text sets ``license_url = "..."``; by default the release page (``homepage``) states the terms."""
        return self.homepage

    def records(self, raw_dir: Path) -> Iterator[Record | Rejected]:
        """Read the dataset under ``raw_dir`` (its published layout) and yield records/rejections."""
        raise NotImplementedError

    def check_layout(self, raw_dir: Path) -> None:
        """Raise LayoutError naming what was expected when ``raw_dir`` does not hold this dataset."""
        if not raw_dir.is_dir():
            raise LayoutError(f"{self.name}: {raw_dir} is not a folder; expected {self.layout}")

    def configured(self, **options) -> "SourceConverter":
        """This converter with the recipe's per-source options (DOTA: ``version``); none by default."""
        if options:
            raise ValueError(f"{self.name}: takes no options (got {', '.join(sorted(options))})")
        return self

    def count_raw(self, raw_dir: Path, found: "FoundLayout") -> dict[str, int] | None:
        """Raw records per split (or per file, see ``published_files``) read cheaply from the layout found,
        without converting (``skyeye doctor``); None when this converter cannot count without converting."""
        return None

    def find_layout(self, raw_dir: Path) -> "FoundLayout":
        """Which accepted layout ``raw_dir`` holds (LayoutError naming the folder, what was expected and
        what was found when none). Converters with several variants override this."""
        self.check_layout(raw_dir)
        return FoundLayout(self.layouts[0] if self.layouts else Layout("published", self.layout, ""), {})


@dataclass(frozen=True)
class Layout:
    """One accepted variant of a dataset's raw folder."""

    name: str  # short id: "archive", "flattened", "torchgeo", ...
    files: str  # what the folder holds, relative to RAW/<source>/
    evidence: str  # where the variant comes from: repository + path (or "inferred: why")


@dataclass(frozen=True)
class FoundLayout:
    """The variant found in a raw folder and where its parts are (role -> path relative to it)."""

    layout: Layout
    paths: dict[str, str]

    def describe(self) -> str:
        where = ", ".join(f"{role}: {path}" for role, path in self.paths.items())
        return f"{self.layout.name} ({self.layout.files})" + (f" — {where}" if where else "")


class LayoutError(Exception):
    """The raw folder does not look like the published dataset: nothing can be converted."""


# ImageProblem (an image that is missing or cannot be used) lives in skyeye_data.imagecheck, re-exported here


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    sha256: str
    format: str | None


# DOTA images reach 20000 x 20000 pixels, past PIL's decompression-bomb guard; dataset images are
# trusted input, but a cap still stops a corrupt header from asking for absurd memory
MAX_PIXELS = 32_000 * 32_000
UNREADABLE_IMAGE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


@contextlib.contextmanager
def large_images_allowed() -> Iterator[None]:
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def probe_image(path: Path) -> ImageInfo:
    """Size from the file header and the sha256 of the bytes, read through the guarded raw reader
    (:mod:`skyeye_data.rawfs`: inside the raw root, a regular file, within its size cap) with the
    recipe's pixel cap (:func:`skyeye_data.imagecheck.read_header`). No full decode here: the
    build's image store decodes every image once before storing it.

    The guard runs on every call; the header and hash are cached per (path, size, mtime, pixel
    cap): RSVQA-HR asks ~100 questions of each image.
    """
    try:
        info = rawfs.check_path(path, "image")
    except rawfs.RawFileMissing:
        raise ImageProblem(f"image file not found: {Path(path).name}") from None
    except rawfs.RawAccessError as error:
        raise ImageProblem(error.reason) from None
    return _probe_image(Path(path), info.st_size, info.st_mtime_ns, rawfs.current_limits().max_image_pixels)


@lru_cache(maxsize=4096)
def _probe_image(path: Path, size: int, mtime_ns: int, max_pixels: int) -> ImageInfo:  # noqa: ARG001 (cache key: mtime)
    digest = hashlib.sha256()
    try:
        if size <= _WHOLE_READ_BYTES:  # one read; the header from the memo of header layouts (sources/header_memo.py)
            data = rawfs.read_bytes(path, "image")
            fmt, width, height = memo_read_header(data, max_pixels)
            digest.update(data)
        else:
            with rawfs.open_raw(path, "image") as handle:
                fmt, width, height = read_header(handle)
                handle.seek(0)
                while block := handle.read(1 << 20):
                    digest.update(block)
    except rawfs.RawAccessError as error:
        raise ImageProblem(error.reason) from None
    return ImageInfo(width, height, digest.hexdigest(), fmt)


_WHOLE_READ_BYTES = 16 << 20


probe_image.cache_clear = _probe_image.cache_clear  # type: ignore[attr-defined]


def media_fields(image_path: str, key: str, info) -> dict:
    """The record fields that say which image (or video) a record shows and its size.

    ``info`` is what :func:`probe_image` (or the video probe) returned for the file.
    """
    return {
        "image_path": image_path,
        "image_key": key,
        "image_sha256": info.sha256,
        "width": info.width,
        "height": info.height,
    }


def image_fields(raw_dir: Path, image_path: Path, family: str, info, name: str | None = None) -> dict:
    """:func:`media_fields` of an image file under ``raw_dir``: its path relative to the raw folder and
    the key ``<family>:<stem of name>`` (``name``: the file name the annotations give, default the file's)."""
    return media_fields(relpath(image_path, raw_dir), image_key(family, name or image_path.name), info)


def image_key(family: str, file_name: str) -> str:
    """Canonical image identity: dataset family + file stem, e.g. ``dior:00001``."""
    stem = Path(file_name).stem
    return f"{family}:{stem}"


def relpath(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def validation_reason(error: ValidationError) -> str:
    """A pydantic error as one readable sentence: 'invalid record: captions.0: caption is empty'."""
    parts = []
    for err in error.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "invalid record: " + "; ".join(parts)


def build_record(
    model: type[BaseModel], *, raw_file: str, raw_line: int | None = None, raw_index: int | None = None, **fields
) -> Record | Rejected:
    """Validate one record; a validation failure becomes a Rejected at the same location.

    ``provenance`` is filled from raw_file/raw_line/raw_index. The text fields pass
    :func:`skyeye_data.textguard.clean_fields` first (lone surrogates, control/bidi characters,
    length cap: stripped with a flag or rejected, as the recipe's ``input:`` section says).
    """
    try:
        fields = clean_fields(fields)
        return model(provenance=Provenance(raw_file=safe_text(raw_file), raw_line=raw_line, raw_index=raw_index), **fields)
    except TextProblem as error:
        return Rejected(raw_file, f"text refused: {error}", raw_line=raw_line, raw_index=raw_index)
    except ValidationError as error:
        return Rejected(raw_file, validation_reason(error), raw_line=raw_line, raw_index=raw_index)
