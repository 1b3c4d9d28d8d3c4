"""What every source converter is: a class with a name, a task, a documented raw layout, a
``records`` generator and a ``synthesize`` generator of that layout.

Counting contract: for each raw record a converter reads (a caption entry, a question, a text line,
an annotated object or image), ``records`` yields exactly one item: a record, or a
:class:`Rejected` with ``level="record"``. Problems below record level (one object of an image
dropped because it lies wholly outside) are yielded as ``Rejected(level="part")`` *in addition* to
the record; they reach the quarantine file but do not count in the record balance.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import ClassVar, Iterator, Literal

from PIL import Image, UnidentifiedImageError

from pydantic import BaseModel, ValidationError

from skyeye_data.schema import Provenance, Record

Scale = Literal["mini", "paper"]


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
            "raw_file": self.raw_file,
            "raw_line": self.raw_line,
            "raw_index": self.raw_index,
            "level": self.level,
            "deliberate": self.deliberate,
            "reason": self.reason,
            "excerpt": (self.excerpt or "")[:300] or None,
        }


class SourceConverter:
    """Base class of a source. Subclasses set the class attributes and implement two methods."""

    name: ClassVar[str]
    task: ClassVar[str]
    family: ClassVar[str]  # image_key prefix: records of one family share image keys
    media: ClassVar[str] = "image"
    layout: ClassVar[str]  # one line: the files the converter expects under RAW/<name>/
    title: ClassVar[str]  # the dataset's name as published
    citation: ClassVar[str]
    license: ClassVar[str]
    homepage: ClassVar[str] = ""

    def records(self, raw_dir: Path) -> Iterator[Record | Rejected]:
        """Read the dataset under ``raw_dir`` (its published layout) and yield records/rejections."""
        raise NotImplementedError

    def synthesize(self, raw_dir: Path, scale: Scale, rng: random.Random) -> int:
        """Write a synthetic copy of the published layout under ``raw_dir``; return raw records written."""
        raise NotImplementedError

    def check_layout(self, raw_dir: Path) -> None:
        """Raise LayoutError naming what was expected when ``raw_dir`` does not hold this dataset."""
        if not raw_dir.is_dir():
            raise LayoutError(f"{self.name}: {raw_dir} is not a folder; expected {self.layout}")


class LayoutError(Exception):
    """The raw folder does not look like the published dataset: nothing can be converted."""


class ImageProblem(Exception):
    """An image that is missing or cannot be read; its message is the quarantine reason."""


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    sha256: str
    format: str | None


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


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


@lru_cache(maxsize=4096)
def probe_image(path: Path) -> ImageInfo:
    """Size from the file header (no full decode) and the sha256 of the bytes.

    Cached: RSVQA-HR asks ~100 questions of each image.
    """
    if not path.is_file():
        raise ImageProblem(f"image file not found: {path.name}")
    try:
        with large_images_allowed(), Image.open(path) as image:
            width, height = image.size
            fmt = image.format
    except UNREADABLE_IMAGE_ERRORS as error:
        raise ImageProblem(f"image cannot be read ({type(error).__name__}: {error})") from error
    if width <= 0 or height <= 0:
        raise ImageProblem(f"image has no pixels ({width}x{height})")
    return ImageInfo(width, height, file_sha256(path), fmt)


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

    ``provenance`` is filled from raw_file/raw_line/raw_index.
    """
    try:
        return model(provenance=Provenance(raw_file=raw_file, raw_line=raw_line, raw_index=raw_index), **fields)
    except ValidationError as error:
        return Rejected(raw_file, validation_reason(error), raw_line=raw_line, raw_index=raw_index)
