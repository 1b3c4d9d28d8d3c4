"""The content-addressed images table: ``image_id`` = sha256 of the stored bytes.

Each image is stored once however many samples use it (RSVQA-HR asks ~100 questions of each
image): the store remembers the ids it has written (a set of hashes: bounded by the number of
distinct images, not samples) and, in a small LRU, which raw file gave which id, so a file asked
for again is not read again. Original bytes are stored by default; ``max_side`` downscales larger
images at build time (re-encoded deterministically, so a rebuild stores the same bytes). Video
frames come from :func:`skyeye_data.video.frames_as_jpeg` and are stored as JPEG images; a sample
references them in order.

**Training tier** (recipe ``train_size: S``): the build also writes ``OUT/train-images/images-NNNNN.parquet``,
the same table with every image already in the model's input form: the square ``S x S`` bicubic resize of
MiniGPT-v2 / SkyEyeGPT (``Resize((S, S), BICUBIC)``, aspect ratio not kept: the pixels the trainer would
compute from the full table, so nothing is decided twice), as JPEG quality 95 (RGB). ``image_id`` stays the
id of the original bytes, so samples reference both tables alike. A trainer whose ``image_size`` is ``S``
then only decodes small JPEGs (``skyeye_model.images.training_images``); eval and export keep the
full-size table. The encoder and its settings are fixed, so a rebuild writes the same bytes.
"""

from __future__ import annotations

import hashlib
import io
from collections import OrderedDict
from pathlib import Path

from PIL import Image

from skyeye_data import rawfs
from skyeye_data.compile.builders import MediaFile
from skyeye_data.compile.shards import ShardedParquetWriter, numbered_name
from skyeye_data.imagecheck import verified_image_and_header
from skyeye_data.io import PendingFile
from skyeye_data.sources.base import UNREADABLE_IMAGE_ERRORS, ImageProblem, large_images_allowed
from skyeye_data.tables import IMAGES_SCHEMA
from skyeye_data.video import DEFAULT_MAX_SIDE, VideoError, frames_as_jpeg

# what unreadable media raise: each becomes a quarantine entry naming the record, never a crash
MEDIA_ERRORS = (ImageProblem, VideoError, OSError)

# Laid out for random reads (a trainer fetches one image at a time, in shuffled order): row groups of at
# most 16 images or ~1 MB, so one read touches about one image's bytes, and the image bytes stored as they
# are (JPEG/PNG/TIFF are compressed already; zstd over them cost a decompression per read, for ~1 %).
ROW_GROUP_BYTES = 1 << 20
ROW_GROUP_ROWS = 16
COMPRESSION = {field.name: "none" if field.name == "bytes" else "zstd" for field in IMAGES_SCHEMA}
SHARD_BYTES = 512 << 20
LRU_FILES = 8192
TRAIN_IMAGES_DIR = "train-images"
TRAIN_JPEG_QUALITY = 95


def image_header(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) from the header; ImageProblem when the bytes are no image."""
    try:
        with large_images_allowed(), Image.open(io.BytesIO(data)) as image:
            return (image.format or "unknown"), image.width, image.height
    except UNREADABLE_IMAGE_ERRORS as error:
        raise ImageProblem(f"image cannot be read ({type(error).__name__}: {error})") from error


class ImageTableWriter:
    """Writes ``OUT/images/images-NNNNN.parquet``; :meth:`image_ids` turns media into stored ids.

    (The reader of that table is :class:`skyeye_model.images.ImageStore`.)
    """

    def __init__(self, directory: Path, max_side: int | None = None, frame_cache: Path | None = None, train_size: int | None = None):
        self.max_side = max_side
        self.frame_cache = frame_cache
        self.train_size = train_size
        self.writer = images_table_writer(Path(directory))
        # the training tier: beside images/ (OUT/train-images/), one resized row per stored image
        self.train_writer = images_table_writer(Path(directory).parent / TRAIN_IMAGES_DIR) if train_size else None
        self.stored: set[str] = set()
        self._recent: OrderedDict[tuple[str, int, int | None], list[str]] = OrderedDict()

    def image_ids(self, media: MediaFile, max_side: int | None = None) -> list[str]:
        """Store the media's image (or video frames) once; their ids in order.

        Raises one of :data:`MEDIA_ERRORS` for unreadable media.
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

    def _store_image(self, media: MediaFile, max_side: int | None) -> str:
        # original bytes: the converter's file hash is the image id; no need to read a known file again
        if max_side is None and media.sha256 in self.stored:
            return media.sha256
        try:
            data = rawfs.read_bytes(media.path, "image")
        except rawfs.RawFileMissing as error:
            raise ImageProblem(f"image file not found: {media.path.name}") from error
        except rawfs.RawAccessError as error:
            raise ImageProblem(error.reason) from error
        # the whole body is decoded once before the image enters the table (and downscaled from that
        # decode); that same open gives the header columns of bytes stored unchanged
        return self.add_bytes(*verified_image_and_header(data, max_side))

    def _store_frames(self, media: MediaFile, max_side: int | None) -> list[str]:
        frames = frames_as_jpeg(media.path, media.frames, self.frame_cache, max_side or DEFAULT_MAX_SIDE, media.sha256)
        return [self.add_bytes(frame) for frame in frames]

    def add_bytes(self, data: bytes, header: tuple[str, int, int] | None = None) -> str:
        """Store encoded image bytes (once); their id. ``header``: their (format, width, height) when
        known already (else read from the bytes)."""
        image_id = hashlib.sha256(data).hexdigest()
        if image_id not in self.stored:
            fmt, width, height = header or image_header(data)
            self.writer.write({"image_id": image_id, "bytes": data, "format": fmt, "width": width, "height": height})
            if self.train_writer is not None:
                size = self.train_size
                self.train_writer.write({"image_id": image_id, "bytes": train_jpeg(data, size), "format": "JPEG", "width": size, "height": size})
            self.stored.add(image_id)
        return image_id

    def close(self) -> list[PendingFile]:
        return self.writer.close() + (self.train_writer.close() if self.train_writer is not None else [])

    def abort(self) -> None:
        self.writer.abort()
        if self.train_writer is not None:
            self.train_writer.abort()


def train_images_entry(size: int) -> dict[str, object]:
    """The manifest's ``train_images`` entry: where the tier is and what it holds."""
    return {"path": TRAIN_IMAGES_DIR, "size": size, "resize": "square bicubic", "format": "JPEG"}


def images_table_writer(directory: Path) -> ShardedParquetWriter:
    return ShardedParquetWriter(
        directory,
        "images",
        IMAGES_SCHEMA,
        numbered_name("images"),
        rows_per_shard=100_000,
        row_group_rows=ROW_GROUP_ROWS,
        row_group_bytes=ROW_GROUP_BYTES,
        shard_bytes=SHARD_BYTES,
        size_of=lambda row: len(row["bytes"]),
        compression=COMPRESSION,
    )


def train_jpeg(data: bytes, size: int) -> bytes:
    """The training tier's bytes: the model's square bicubic resize (``size x size``, RGB) as JPEG q95.

    PIL's ``draft`` first decodes a large JPEG at a reduced DCT scale (never below ``size``), as the
    trainer does by default (``skyeye_model.decode``). Fixed encoder settings: same input, same bytes."""
    with large_images_allowed(), Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (size, size))
        rgb = image.convert("RGB")  # also drops alpha / palette / 16-bit modes the model never sees
        resized = rgb if rgb.size == (size, size) else rgb.resize((size, size), Image.BICUBIC)
        out = io.BytesIO()
        resized.save(out, format="JPEG", quality=TRAIN_JPEG_QUALITY, optimize=False, progressive=False)
        return out.getvalue()


def media_ids(images: ImageTableWriter, media: MediaFile, max_side: int | None) -> list[str] | str:
    """The stored ids of the media, or -- the one place a build handles unreadable media -- the
    reason they cannot be read (the caller quarantines the record with it)."""
    try:
        return images.image_ids(media, max_side)
    except MEDIA_ERRORS as error:
        return str(error)
