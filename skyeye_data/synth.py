"""Synthetic raw corpora in the published layouts, for the demo, tests and benchmarks.

``mini``: a few records per source. ``paper``: the real datasets' image and record counts with tiny
images. Each source module writes its own layout (``SourceConverter.synthesize``); this module holds
the shared pieces: deterministic images with visible objects, and the driver.
"""

from __future__ import annotations

import random
import zlib
from pathlib import Path
from typing import Callable, Iterable, Sequence

from PIL import Image, ImageDraw

from skyeye_data.sources import all_sources
from skyeye_data.sources.base import Scale

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

    Distinct seeds give distinct bytes, so content hashes tell images apart.
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


def synthesize_raw_root(
    raw_root: Path,
    scale: Scale = "mini",
    sources: Iterable[str] | None = None,
    seed: int = 0,
    on_source: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Write every (or the named) source's synthetic layout under ``raw_root/<source>/``."""
    registry = all_sources()
    names = list(sources) if sources else list(registry)
    counts: dict[str, int] = {}
    for name in names:
        source = registry[name]
        rng = random.Random(f"{seed}:{name}")
        counts[name] = source.synthesize(raw_root / name, scale, rng)
        if on_source:
            on_source(name, counts[name])
    return counts
