"""Image verification: no image enters the images table unless its whole body decodes.

A header can be intact while the body is cut or corrupt (a truncated download, a bad sector): the
size reads fine, the pixels do not. Training would then read a broken image, or a 40,000² PNG
header over ten rows of data would be stored as a black picture carrying DOTA boxes. So:

- :func:`read_header` (converters, via ``sources.base.probe_image``): format and size from the
  header, with the recipe's pixel cap (``input.max_image_pixels``) applied before anything is
  decoded. Pillow's own decompression-bomb guard is switched off around the call and replaced by
  this explicit cap, so the outcome is one clear reason instead of a warning or a bomb error.
- :func:`verified_image` (the build's image store, before a row is written): the whole body is
  decoded once, and the bytes to store are returned (downscaled to ``max_side`` when asked, from
  that same decode). Images within ``input.decode_budget_pixels`` are decoded fully with Pillow
  ``load()`` (``LOAD_TRUNCATED_IMAGES`` off, so a cut body is an error; a JPEG stored unchanged is
  decoded at the 1/8 DCT scale, which still entropy-decodes every block); a PNG is also streamed
through :func:`png_stream_check`, because Pillow accepts a complete zlib stream that holds fewer
rows than the header declares. Larger ones take a
  memory-bounded path: JPEG is decoded at a reduced scale (``draft``: the DCT is scaled, every
  entropy-coded byte is still read), PNG is checked by streaming its IDAT data through zlib and
  counting the bytes the header promises (chunk CRCs checked too), never holding the pixels. A
  large PNG that must be downscaled, or another large format, has no reduced decode: it is decoded
  whole, which the pixel cap bounds.

Every failure is an :class:`ImageProblem` whose message is a quarantine reason without a local path.
"""

from __future__ import annotations

import contextlib
import io
import struct
import zlib
from typing import BinaryIO, Iterator

from PIL import Image, ImageFile, UnidentifiedImageError

from skyeye_data.rawfs import current_limits, strip_paths

UNREADABLE_IMAGE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)
_REENCODE = {"JPEG": ("JPEG", {"quality": 95}), "PNG": ("PNG", {"optimize": False})}


class ImageProblem(Exception):
    """An image that is missing or cannot be used; its message is the quarantine reason."""


def _clean(error: BaseException) -> str:
    """``TypeName: message`` with any absolute path reduced to its file name."""
    return f"{type(error).__name__}: {strip_paths(str(error))}"


@contextlib.contextmanager
def _explicit_pixel_cap() -> Iterator[None]:
    """Pillow's implicit bomb guard off (the caller checks the cap itself); truncated bodies are errors."""
    previous = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
    Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = None, False
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageProblem(f"image has no pixels ({width}x{height})")
    cap = current_limits().max_image_pixels
    if width * height > cap:
        raise ImageProblem(
            f"image header declares {width}x{height} = {width * height:,} pixels, over the cap of {cap:,} "
            "(input.max_image_pixels in the recipe)"
        )


def read_header(handle: BinaryIO) -> tuple[str, int, int]:
    """(format, width, height) from the header of an open image file, within the pixel cap."""
    try:
        with _explicit_pixel_cap(), Image.open(handle) as image:
            fmt, (width, height) = image.format or "unknown", image.size
    except UnidentifiedImageError as error:  # its message names the file object, not the file
        raise ImageProblem("image cannot be read (no image format Pillow knows: empty, or not an image)") from error
    except UNREADABLE_IMAGE_ERRORS as error:
        raise ImageProblem(f"image cannot be read ({_clean(error)})") from error
    _check_size(width, height)
    return fmt, width, height


def verified_image(data: bytes, max_side: int | None = None) -> bytes:
    """The bytes to store for ``data`` after decoding its whole body once (see the module docstring).

    Small enough images come back unchanged (``max_side`` None or not exceeded); larger ones are
    downscaled (longer side ``max_side``, LANCZOS; JPEG stays JPEG, others become PNG).
    """
    return verified_image_and_header(data, max_side)[0]


def verified_image_and_header(data: bytes, max_side: int | None = None) -> tuple[bytes, tuple[str, int, int] | None]:
    """:func:`verified_image`, and the (format, width, height) of the returned bytes when they are
    ``data`` unchanged (read by the same open that decoded them, so the image store need not open
    them again for its header columns); None when they were re-encoded."""
    try:
        with _explicit_pixel_cap(), Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            _check_size(width, height)
            fmt = image.format or "unknown"
            shrink = max_side is not None and max(width, height) > max_side
            header = None if shrink else (fmt, width, height)
            if width * height > current_limits().decode_budget_pixels:
                return _verified_large(data, image, fmt, max_side if shrink else None), header
            if fmt == "JPEG" and not shrink:
                # the pixels are not kept, only proven: the smallest DCT scale (1/8) does. libjpeg still
                # Huffman-decodes every coefficient of every block and only drops the AC values it no
                # longer needs (libjpeg-turbo jdhuff.c, decode_mcu_*: "just discard the values"), so a
                # cut or corrupt body fails as it does at full scale (tests/test_imagecheck_draft.py)
                image.draft(image.mode, (1, 1))
            image.load()
            if fmt == "PNG":
                # Pillow stops quietly where the zlib stream stops: ten rows under a 2000² header
                # "decode" into a mostly black picture. Count the bytes the header promises.
                png_stream_check(data)
            return (_downscaled(image, fmt, max_side) if shrink else data), header
    except ImageProblem:
        raise
    except UNREADABLE_IMAGE_ERRORS as error:
        raise ImageProblem(f"image cannot be decoded ({_clean(error)})") from error


def _downscaled(image: Image.Image, fmt: str, max_side: int) -> bytes:
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    small = image.resize(size, Image.Resampling.LANCZOS)
    out_format, options = _REENCODE.get(fmt, _REENCODE["PNG"])
    if out_format == "JPEG" and small.mode not in ("RGB", "L"):
        small = small.convert("RGB")
    buffer = io.BytesIO()
    small.save(buffer, format=out_format, **options)
    return buffer.getvalue()


def _verified_large(data: bytes, image: Image.Image, fmt: str, max_side: int | None) -> bytes:
    budget = current_limits().decode_budget_pixels
    if fmt == "JPEG":
        # the smallest DCT scale (1/2, 1/4, 1/8) that still gives max_side, or fits the budget
        target = (max_side, max_side) if max_side else _budget_size(image.size, budget)
        image.draft(image.mode, target)
        image.load()
        return _downscaled(image, fmt, max_side) if max_side else data
    if fmt == "PNG":
        png_stream_check(data)
        if max_side is None:
            return data
    # no reduced decode exists for this format (or the PNG must be downscaled): the pixels are needed,
    # within the pixel cap — a DOTA original of 20,000² takes about 1.2 GB here
    image.load()
    return _downscaled(image, fmt, max_side) if max_side else data


def _budget_size(size: tuple[int, int], budget: int) -> tuple[int, int]:
    width, height = size
    scale = (budget / (width * height)) ** 0.5
    return max(1, int(width * scale)), max(1, int(height * scale))


# ---------------------------------------------------------------------------------------------
# PNG, streamed (format: the PNG specification, ISO/IEC 15948, sections 5 (chunks), 7.2 (scanlines
# with a filter byte each), 8.2 (Adam7 passes), 10 (zlib))
# ---------------------------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _png_expected_bytes(width: int, height: int, depth: int, colour: int, interlace: int) -> int:
    bits = depth * _CHANNELS[colour]

    def scanlines(w: int, h: int) -> int:
        return 0 if w == 0 or h == 0 else h * (1 + (w * bits + 7) // 8)

    if not interlace:
        return scanlines(width, height)
    return sum(
        scanlines((width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy) for x0, y0, dx, dy in _ADAM7
    )


def png_stream_check(data: bytes) -> None:
    """Every chunk's CRC, and exactly the scanline bytes the header promises, in bounded memory."""
    if not data.startswith(_PNG_SIGNATURE):
        raise ImageProblem("not a PNG file (bad signature)")
    pos, expected, produced = 8, None, 0
    inflate = zlib.decompressobj()
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if len(body) < length or pos + 12 + length > len(data):
            raise ImageProblem(f"PNG is truncated inside its {kind.decode('latin-1')} chunk")
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        if zlib.crc32(kind + body) != crc:
            raise ImageProblem(f"PNG {kind.decode('latin-1')} chunk is corrupt (CRC mismatch)")
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body[:13])
            if colour not in _CHANNELS:
                raise ImageProblem(f"PNG colour type {colour} is invalid")
            expected = _png_expected_bytes(width, height, depth, colour, interlace)
        elif kind == b"IDAT":
            chunk = body
            while chunk:
                produced += len(inflate.decompress(chunk, 1 << 20))
                chunk = inflate.unconsumed_tail
                if expected is not None and produced > expected:
                    raise ImageProblem("PNG image data is longer than its header declares")
        elif kind == b"IEND":
            break
        pos += 12 + length
    else:
        raise ImageProblem("PNG ends before its IEND chunk (truncated)")
    produced += len(inflate.flush())
    if expected is None:
        raise ImageProblem("PNG has no IHDR header chunk")
    if not inflate.eof or produced != expected:
        raise ImageProblem(
            f"PNG image data is truncated: {produced:,} of the {expected:,} bytes its {width}x{height} header declares"
        )


# ---------------------------------------------------------------------------------------------
# video
# ---------------------------------------------------------------------------------------------

# FFmpeg demuxers that read single pictures: a JPEG renamed .mp4 opens as a one-frame "video"
STILL_IMAGE_DEMUXERS = frozenset(
    {"image2", "image2pipe", "jpeg_pipe", "png_pipe", "bmp_pipe", "tiff_pipe", "webp_pipe", "gif", "gif_pipe",
     "jpegls_pipe", "j2k_pipe", "pgm_pipe", "ppm_pipe", "psd_pipe", "qoi_pipe", "svg_pipe", "dpx_pipe"}
)  # fmt: skip


def still_image_problem(container) -> str | None:
    """Why a PyAV input container is a still picture and not a video, or None."""
    names = set((container.format.name or "").split(","))
    if names & STILL_IMAGE_DEMUXERS:
        return f"file is a still image ({container.format.long_name or container.format.name}), not a video"
    return None
