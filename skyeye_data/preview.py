"""``skyeye preview``: draw records on their images as one grid PNG, so a person sees at a glance
whether the boxes land on the objects and the texts belong to the image.

Input is either a records Parquet file written by ``skyeye convert`` (images are found under
``--raw-dir``, since ``image_path`` is relative to the source's raw folder) or a raw source folder
with ``--source NAME`` (converted on the fly; rejected records are skipped, as convert would
quarantine them). Pillow only: no plotting library, no torch.

Each tile shows the image fitted into a square, every box with its label (detection: class, with
``[d]`` for difficult and ``[c]`` for clipped objects; grounding: the class or ``ref``), and under
the image the record id, split, size and the payload text (expression with its box tokens,
captions, question and answer, class label, flags).
"""

from __future__ import annotations

import io
import textwrap
import zlib
from collections import Counter
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Annotated, Iterable, Iterator, Optional

import typer
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from skyeye_data import rawfs
from skyeye_data.boxes import format_box
from skyeye_data.io import atomic_path

BOX_COLOURS = [
    (255, 64, 64), (64, 224, 64), (64, 160, 255), (255, 200, 0), (255, 64, 255),
    (0, 230, 230), (255, 140, 0), (180, 120, 255), (160, 255, 120), (255, 160, 200),
]  # fmt: skip
PANEL_BG = (250, 250, 250)
PANEL_TEXT = (20, 20, 20)
MAX_PANEL_LINES = 12


@dataclass(frozen=True)
class PreviewStyle:
    tile: int = 512  # the image is fitted into a tile x tile square
    columns: int = 3
    font_size: int = 14
    label_font_size: int = 12
    line_width: int = 2


def colour_for(label: str) -> tuple[int, int, int]:
    """One stable colour per label, so the same class looks the same in every tile."""
    return BOX_COLOURS[zlib.crc32(label.encode()) % len(BOX_COLOURS)]


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


# -- what a record contributes: boxes to draw and lines of text ------------------------------------


def record_boxes(record) -> list[tuple[list[float], str, tuple[int, int, int]]]:
    """(pixel box, label text, colour) for every box of the record."""
    if record.task == "detection":
        drawn = []
        for obj in record.objects:
            marks = (" [d]" if obj.difficult else "") + (" [c]" if obj.clipped else "")
            drawn.append((obj.box, obj.label + marks, colour_for(obj.label)))
        return drawn
    if record.task == "grounding":
        label = record.label or "ref"
        return [(box, label, colour_for(label)) for box in record.boxes]
    return []


def record_text(record) -> list[str]:
    """The lines under the image: identity first, then the payload."""
    lines = [f"{record.record_id}  [{record.split}]  {record.width}x{record.height}"]
    if record.task == "grounding":
        tokens = "<delim>".join(format_box(b, record.width, record.height) for b in record.boxes)
        lines += [f"refer: {record.expression}", f"-> {tokens}"]
    elif record.task == "detection":
        counts = Counter(obj.label for obj in record.objects)
        noun = "object" if len(record.objects) == 1 else "objects"
        lines.append(f"{len(record.objects)} {noun}: " + ", ".join(f"{n} {label}" for label, n in counts.most_common()))
        if any(o.difficult or o.clipped for o in record.objects):
            lines.append("[d] difficult  [c] clipped to the image")
    elif record.task == "caption":
        lines += [f"- {caption}" for caption in record.captions]
    elif record.task == "vqa":
        kind = f" ({record.question_type})" if record.question_type else ""
        lines += [f"Q{kind}: {record.question}", f"A: {record.answer}"]
    elif record.task == "classification":
        lines.append(f"class: {record.label}")
    if record.flags:
        lines.append("flags: " + ", ".join(record.flags))
    return lines


# -- drawing ---------------------------------------------------------------------------------------


def _load_image(path: Path) -> tuple[Image.Image | None, str | None]:
    # through the guarded raw reader, like a build: an image_path from a records file or a raw
    # annotation may name a FIFO, a symlink out of the raw root or a huge file
    try:
        data = rawfs.read_bytes(path, "image")
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB"), None
    except (rawfs.RawFileMissing, FileNotFoundError):
        return None, f"image not found: {rawfs.shown(path)}"
    except rawfs.RawAccessError as error:
        return None, f"not read: {error}"
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
        return None, f"cannot draw {path.name}: {type(error).__name__}"


def _wrap(lines: Iterable[str], font, width: int) -> list[str]:
    # measure one average glyph and wrap by characters: exact per-word measuring is not worth it here
    char_width = max(1.0, font.getlength("abcdefghijklmnopqrstuvwxyz") / 26)
    chars = max(10, int(width / char_width))
    wrapped: list[str] = []
    for line in lines:
        wrapped += textwrap.wrap(line, chars) or [""]
    if len(wrapped) > MAX_PANEL_LINES:
        wrapped = wrapped[: MAX_PANEL_LINES - 1] + [f"... ({len(wrapped) - MAX_PANEL_LINES + 1} more lines)"]
    return wrapped


def render_tile(record, image_root: Path, style: PreviewStyle = PreviewStyle()) -> Image.Image:
    """One record: its image fitted into the tile width with boxes and labels, the text panel below."""
    font, label_font = _font(style.font_size), _font(style.label_font_size)
    image, problem = (None, f"video: {record.image_path} (frames not drawn)") if record.media == "video" else (
        _load_image(image_root / record.image_path)
    )
    if image is not None:
        scale = style.tile / max(image.width, image.height)
        canvas = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR)
        draw = ImageDraw.Draw(canvas)
        # boxes are in the record's pixel frame (the header size), which the file size should equal
        sx, sy = canvas.width / record.width, canvas.height / record.height
        taken: list[tuple[float, float, float, float]] = []
        for box, label, colour in record_boxes(record):
            x1, y1, x2, y2 = box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy
            draw.rectangle([x1, y1, x2, y2], outline=colour, width=style.line_width)
            _draw_label(draw, (x1, y1), label, colour, label_font, taken)
    else:
        canvas = Image.new("RGB", (style.tile, style.tile // 2), (40, 40, 40))
        ImageDraw.Draw(canvas).text((10, style.tile // 4), problem, fill=(255, 120, 120), font=font)
    lines = _wrap(record_text(record), font, style.tile - 12)
    line_height = style.font_size + 4
    tile = Image.new("RGB", (style.tile, canvas.height + 8 + line_height * len(lines)), PANEL_BG)
    tile.paste(canvas, (0, 0))
    panel = ImageDraw.Draw(tile)
    for i, line in enumerate(lines):
        panel.text((6, canvas.height + 4 + i * line_height), line, fill=PANEL_TEXT, font=font)
    return tile


def _draw_label(draw: ImageDraw.ImageDraw, corner, text: str, colour, font, taken: list) -> None:
    """A filled label above the box corner, unless it would cover a label already drawn.

    Dense scenes (a parking lot of 50 buses) would otherwise bury the image under text; the box
    colour still tells the class, and the panel lists the counts per class.
    """
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    # keep the label inside the image: boxes at the right edge would push it off the canvas
    x = max(0.0, min(corner[0], draw.im.size[0] - (right - left) - 4))
    y = max(0.0, corner[1] - (bottom - top) - 4)
    rect = (x, y, x + (right - left) + 4, y + (bottom - top) + 4)
    if any(rect[0] < t[2] and t[0] < rect[2] and rect[1] < t[3] and t[1] < rect[3] for t in taken):
        return
    taken.append(rect)
    draw.rectangle(rect, fill=colour)
    draw.text((x + 2 - left, y + 2 - top), text, fill=(0, 0, 0), font=font)


def compose_grid(tiles: list[Image.Image], columns: int) -> Image.Image:
    """Tiles left to right, top to bottom; each row as tall as its tallest tile."""
    columns = max(1, min(columns, len(tiles)))
    rows = [tiles[i : i + columns] for i in range(0, len(tiles), columns)]
    width = columns * tiles[0].width + (columns + 1) * 4
    heights = [max(t.height for t in row) for row in rows]
    grid = Image.new("RGB", (width, sum(heights) + (len(rows) + 1) * 4), (200, 200, 200))
    y = 4
    for row, height in zip(rows, heights):
        for i, tile in enumerate(row):
            grid.paste(tile, (4 + i * (tile.width + 4), y))
        y += height + 4
    return grid


def write_preview(
    records: Iterable, image_root: Path, out: Path, limit: int = 12, style: PreviewStyle = PreviewStyle(), raw_root: Path | None = None
) -> int:
    """Draw up to ``limit`` records into ``out`` (PNG, written atomically); return how many were drawn.

    Every raw read (the records' files when they are converted on the fly, and the images) is
    guarded against ``raw_root`` (default ``image_root``): nothing outside it is opened.
    """
    with rawfs.scope(raw_root or image_root):
        tiles = [render_tile(record, image_root, style) for record in islice(records, limit)]
    if not tiles:
        return 0
    with atomic_path(out) as tmp:
        compose_grid(tiles, style.columns).save(tmp, format="PNG")
    return len(tiles)


# -- where the records come from -------------------------------------------------------------------


class PreviewInputError(Exception):
    """The input cannot be previewed; the message says what to pass instead."""


def preview_records(input_path: Path, raw_dir: Path | None, source: str | None, split: str | None) -> tuple[Iterator, Path, Path]:
    """The records to draw, the folder their ``image_path`` is relative to, and the raw root that
    bounds every read (a raw source folder's parent, as in ``skyeye convert``: some converters read
    a sibling source, e.g. RSIVQA the captions of UCM)."""
    if input_path.is_file() and input_path.suffix == ".parquet":
        if raw_dir is None:
            raise PreviewInputError(
                f"{input_path} is a records file; pass --raw-dir with the source's raw folder (image paths are relative to it)"
            )
        from skyeye_data.convert import read_records

        records: Iterator = read_records(input_path)
        root = bound = raw_dir
    elif input_path.is_dir():
        from skyeye_data.sources import Rejected, all_sources

        sources = all_sources()
        name = source or (input_path.name if input_path.name in sources else None)
        if name is None:
            raise PreviewInputError(f"{input_path} is a raw folder; pass --source NAME (see `skyeye sources`)")
        if name not in sources:
            raise PreviewInputError(f"unknown source {name!r}; known: {', '.join(sources)}")
        converter = sources[name]
        converter.check_layout(input_path)
        records = (item for item in converter.records(input_path) if not isinstance(item, Rejected))
        root, bound = input_path, input_path.parent
    else:
        raise PreviewInputError(f"{input_path} is neither a records .parquet file nor a raw source folder")
    if split:
        records = (r for r in records if r.split == split)
    return records, root, bound


def register(app: typer.Typer) -> None:
    @app.command("preview")
    def preview_command(
        input_path: Annotated[Path, typer.Argument(metavar="RAW_OR_RECORDS", help="records .parquet or a raw source folder")],
        out: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write")] = Path("preview.png"),
        raw_dir: Annotated[Optional[Path], typer.Option("--raw-dir", help="raw folder of the source (with a .parquet)")] = None,
        source: Annotated[Optional[str], typer.Option("--source", "-s", help="converter name (with a raw folder)")] = None,
        limit: Annotated[int, typer.Option(min=1, help="draw at most this many records")] = 12,
        columns: Annotated[int, typer.Option(min=1, help="tiles per row")] = 3,
        tile: Annotated[int, typer.Option(min=64, help="tile side in pixels")] = 512,
        split: Annotated[Optional[str], typer.Option(help="only records of this split")] = None,
    ) -> None:
        """Draw records on their images (boxes, labels, expressions, captions, Q&A) as a grid PNG."""
        from skyeye_data.console import fail, stdout
        from skyeye_data.sources import LayoutError

        try:
            records, root, bound = preview_records(input_path, raw_dir, source, split)
            drawn = write_preview(records, root, out, limit, PreviewStyle(tile=tile, columns=columns), raw_root=bound)
        except (PreviewInputError, LayoutError) as error:
            raise fail(str(error))
        if drawn == 0:
            raise fail(f"no record to draw in {input_path}" + (f" (split {split})" if split else ""))
        stdout.print(f"drew {drawn} records into {out}")
