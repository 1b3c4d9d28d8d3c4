"""The content-addressed images table: ``image_id`` = sha256 of the stored bytes.

Each image is stored once however many samples use it (RSVQA-HR asks ~100 questions of each
image): the store remembers the ids it has written (a set of hashes: bounded by the number of
distinct images, not samples) and, in a small LRU, which raw file gave which id, so a file asked
for again is not read again. Original bytes are stored by default; ``max_side`` downscales larger
images at build time (re-encoded deterministically, so a rebuild stores the same bytes). Video
frames come from :func:`skyeye_data.video.frames_as_jpeg` and are stored as JPEG images; a sample
references them in order.
"""

from __future__ import annotations

import hashlib
import io
from collections import OrderedDict
from pathlib import Path

import pyarrow as pa
from PIL import Image

from skyeye_data.compile.builders import Media
from skyeye_data.compile.shards import PendingFile, ShardedParquetWriter, numbered_name
from skyeye_data.sources.base import UNREADABLE_IMAGE_ERRORS, ImageProblem, large_images_allowed

IMAGES_SCHEMA = pa.schema(
    [
        pa.field("image_id", pa.string()),
        pa.field("bytes", pa.binary()),
        pa.field("format", pa.string()),
        pa.field("width", pa.int64()),
        pa.field("height", pa.int64()),
    ]
)
ROW_GROUP_BYTES = 32 << 20  # image row groups: ~32 MB, a reader fetches one image's group cheaply
SHARD_BYTES = 512 << 20
LRU_FILES = 8192
_REENCODE = {"JPEG": ("JPEG", {"quality": 95}), "PNG": ("PNG", {"optimize": False})}
def image_header(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) from the header; ImageProblem when the bytes are no image."""
    try:
        with large_images_allowed(), Image.open(io.BytesIO(data)) as image:
            return (image.format or "unknown"), image.width, image.height
    except UNREADABLE_IMAGE_ERRORS as error:
        raise ImageProblem(f"image cannot be read ({type(error).__name__}: {error})") from error


def downscaled(data: bytes, max_side: int) -> bytes:
    """The image with its longer side at most ``max_side`` (aspect kept); small ones unchanged.

    JPEG stays JPEG; everything else (PNG, TIFF, ...) becomes PNG, lossless.
    """
    fmt, width, height = image_header(data)
    if max(width, height) <= max_side:
        return data
    scale = max_side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    try:
        with large_images_allowed(), Image.open(io.BytesIO(data)) as image:
            image.load()
            small = image.resize(size, Image.Resampling.LANCZOS)
    except UNREADABLE_IMAGE_ERRORS as error:
        raise ImageProblem(f"image cannot be decoded ({type(error).__name__}: {error})") from error
    out_format, options = _REENCODE.get(fmt, _REENCODE["PNG"])
    if out_format == "JPEG" and small.mode not in ("RGB", "L"):
        small = small.convert("RGB")
    buffer = io.BytesIO()
    small.save(buffer, format=out_format, **options)
    return buffer.getvalue()


class ImageStore:
    """Writes ``OUT/images/images-NNNNN.parquet``; :meth:`image_ids` turns media into stored ids."""

    def __init__(self, directory: Path, max_side: int | None = None, frame_cache: Path | None = None):
        self.max_side = max_side
        self.frame_cache = frame_cache
        self.writer = ShardedParquetWriter(
            directory,
            "images",
            IMAGES_SCHEMA,
            numbered_name("images"),
            rows_per_shard=100_000,
            row_group_rows=256,
            row_group_bytes=ROW_GROUP_BYTES,
            shard_bytes=SHARD_BYTES,
            size_of=lambda row: len(row["bytes"]),
        )
        self.stored: set[str] = set()
        self._recent: OrderedDict[tuple[str, int, int | None], list[str]] = OrderedDict()

    def image_ids(self, media: Media, max_side: int | None = None) -> list[str]:
        """Store the media's image (or video frames) once; their ids in order.

        Raises ImageProblem (or the video module's VideoError) for unreadable media.
        """
        max_side = max_side or self.max_side
        key = (str(media.path), media.frames, max_side)
        if key in self._recent:
            self._recent.move_to_end(key)
            return self._recent[key]
        ids = self._store_frames(media, max_side) if media.video else [self._store_image(media, max_side)]
        self._recent[key] = ids
        if len(self._recent) > LRU_FILES:
            self._recent.popitem(last=False)
        return ids

    def _store_image(self, media: Media, max_side: int | None) -> str:
        # original bytes: the converter's file hash is the image id; no need to read a known file again
        if max_side is None and media.sha256 in self.stored:
            return media.sha256
        try:
            data = media.path.read_bytes()
        except FileNotFoundError as error:
            raise ImageProblem(f"image file not found: {media.path.name}") from error
        except OSError as error:
            raise ImageProblem(f"image file cannot be read: {media.path.name} ({error.strerror})") from error
        if max_side is not None:
            data = downscaled(data, max_side)
        return self.add_bytes(data)

    def _store_frames(self, media: Media, max_side: int | None) -> list[str]:
        from skyeye_data.video import DEFAULT_MAX_SIDE, frames_as_jpeg

        frames = frames_as_jpeg(media.path, media.frames, self.frame_cache, max_side or DEFAULT_MAX_SIDE, media.sha256)
        return [self.add_bytes(frame) for frame in frames]

    def add_bytes(self, data: bytes) -> str:
        """Store encoded image bytes (once); their id."""
        image_id = hashlib.sha256(data).hexdigest()
        if image_id not in self.stored:
            fmt, width, height = image_header(data)
            self.writer.write({"image_id": image_id, "bytes": data, "format": fmt, "width": width, "height": height})
            self.stored.add(image_id)
        return image_id

    def close(self) -> list[PendingFile]:
        return self.writer.close()

    def abort(self) -> None:
        self.writer.abort()
