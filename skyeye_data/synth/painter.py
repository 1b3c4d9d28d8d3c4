"""The image painter every synthetic-layout writer shares: deterministic images with visible objects."""

from __future__ import annotations

import random
import zlib
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw

PALETTE = [(200, 60, 60), (60, 160, 60), (60, 90, 200), (220, 180, 40), (160, 60, 180), (40, 170, 170)]


def synth_image(
    path: Path,
    width: int,
    height: int,
    seed: int | str,
    boxes: Sequence[Sequence[float]] = (),
    fmt: str | None = None,
) -> Path:
    """Write a deterministic image: a seeded background and a filled rectangle per box.

    Box ``i`` is filled with ``PALETTE[i % len(PALETTE)]`` over the pixels ``x1..x2-1, y1..y2-1``
    (rounded), so a test can find each box by its colour. Distinct seeds give distinct bytes, so
    content hashes tell images apart.
    """
    rng = random.Random(zlib.crc32(str(seed).encode()))
    background = tuple(rng.randrange(40, 120) for _ in range(3))
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    # a few seeded texture marks keep every image's bytes unique
    for _ in range(3):
        x, y = rng.randrange(width), rng.randrange(height)
        draw.point((x, y), fill=tuple(rng.randrange(256) for _ in range(3)))
    for i, box in enumerate(boxes):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        draw.rectangle([x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)], fill=PALETTE[i % len(PALETTE)])
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = fmt or {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF"}[path.suffix.lower()]
    image.save(path, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return path
