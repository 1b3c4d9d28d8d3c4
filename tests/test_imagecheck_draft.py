"""A JPEG the build stores unchanged is verified at the 1/8 DCT scale (``draft``), not decoded at full
size. libjpeg still Huffman-decodes every block at that scale, so every JPEG a full decode refuses must
still be refused, and every one it accepts still accepted: checked here on cut and damaged files of
each JPEG kind the datasets and cameras write (baseline, progressive, greyscale, CMYK, subsampled,
with restart markers)."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from PIL import Image, ImageFile

from skyeye_data.imagecheck import ImageProblem, verified_image, verified_image_and_header

KINDS = {
    "baseline-420": ("RGB", {"quality": 90}),
    "baseline-444": ("RGB", {"quality": 95, "subsampling": 0}),
    "progressive": ("RGB", {"quality": 85, "progressive": True}),
    "greyscale": ("L", {"quality": 90}),
    "cmyk": ("CMYK", {"quality": 90}),
    "restart-markers": ("RGB", {"quality": 90, "restart_marker_blocks": 4}),
}


def jpeg(kind: str, size=(160, 120)) -> bytes:
    mode, options = KINDS[kind]
    rng = np.random.default_rng(7)
    pixels = (rng.random((size[1], size[0], 3)) * 255).astype("uint8")
    pixels[::3] //= 2  # some structure, so the AC coefficients are not all noise
    out = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(out, format="JPEG", **options)
    return out.getvalue()


def full_decode_refuses(data: bytes) -> bool:
    """The reference: Pillow's full-size decode, truncated bodies an error (as the store had it)."""
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
        return False
    except (OSError, SyntaxError, ValueError, EOFError):
        return True
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def store_refuses(data: bytes) -> bool:
    try:
        assert verified_image(data, max_side=1024) == data
        return False
    except ImageProblem:
        return True


def damaged(data: bytes, seed: int) -> list[bytes]:
    """Cut at many points, and bytes of the entropy-coded data overwritten (single and bursts)."""
    rng = random.Random(seed)
    start = data.rfind(b"\xff\xda")  # the (last) start of scan: what follows is entropy-coded data
    cuts = [data[:n] for n in range(start, len(data), max(1, (len(data) - start) // 40))] + [data[:-1], data[:-2]]
    flips = []
    for _ in range(60):
        body = bytearray(data)
        at = rng.randrange(start + 12, len(data) - 2)
        for i in range(rng.choice([1, 1, 4, 32])):
            if at + i < len(data) - 2:
                body[at + i] = rng.randrange(256)
        flips.append(bytes(body))
    return cuts + flips


@pytest.mark.parametrize("kind", list(KINDS))
def test_reduced_scale_verify_refuses_exactly_what_a_full_decode_refuses(kind):
    data = jpeg(kind)
    assert not store_refuses(data) and not full_decode_refuses(data)
    cases = damaged(data, seed=len(kind))
    refused = [store_refuses(d) for d in cases]
    assert refused == [full_decode_refuses(d) for d in cases]
    assert sum(refused) >= 40  # every cut at least: the comparison is not only over files both accept


def test_reduced_scale_is_what_is_used_and_the_header_is_the_full_size():
    data = jpeg("baseline-420", size=(640, 480))
    stored, header = verified_image_and_header(data, max_side=1024)
    assert stored == data and header == ("JPEG", 640, 480)
    with Image.open(io.BytesIO(data)) as image:  # what draft((1, 1)) gives: the 1/8 scale
        image.draft(image.mode, (1, 1))
        assert image.size == (80, 60)
