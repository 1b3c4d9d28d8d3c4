"""``skyeye_model.decode``: the model's square bicubic resize on torch's uint8 kernel equals PIL's
(MiniGPT-v2's ``Resize((S, S), BICUBIC)`` on a PIL image) within ±2; draft decoding; frames into slots."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from skyeye_model import decode  # noqa: E402


def encoded(size: tuple[int, int], fmt: str = "JPEG", mode: str = "RGB", seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(1, size[1] // 8), max(1, size[0] // 8), 3), dtype=np.uint8)
    image = Image.fromarray(small).resize(size, Image.BILINEAR).convert(mode)
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def pil_reference(data: bytes, size: int) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB").resize((size, size), Image.BICUBIC), dtype=np.int16)


@pytest.mark.parametrize(
    "source, size, fmt, mode",
    [((512, 512), 448, "JPEG", "RGB"), ((300, 200), 448, "PNG", "RGBA"), ((256, 256), 448, "PNG", "L"), ((640, 480), 224, "TIFF", "RGB")],
)
def test_resize_equals_pil_bicubic(source, size, fmt, mode):
    data = encoded(source, fmt, mode)
    ours = decode.decode_resized(data, size, draft=False).astype(np.int16)
    difference = np.abs(ours - pil_reference(data, size))
    assert ours.shape == (size, size, 3)
    assert difference.max() <= 2 and difference.mean() < 0.05


def test_public_fallback_gives_the_same_pixels(monkeypatch):
    data = encoded((512, 384))
    fast = decode.decode_resized(data, 448)
    monkeypatch.setattr(decode, "BICUBIC_AA", None)  # a torch without the entry point
    assert np.array_equal(decode.decode_resized(data, 448), fast)


def test_draft_decodes_large_jpegs_at_reduced_scale_close_to_full():
    data = encoded((1800, 1800))
    drafted, full = decode.decode_resized(data, 448).astype(np.int16), decode.decode_resized(data, 448, draft=False).astype(np.int16)
    assert np.abs(drafted - full).mean() < 3  # 1800 → 450 in the DCT, then 450 → 448
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (448, 448))
        assert image.size == (450, 450)  # never below the target


def test_an_image_at_the_target_size_is_only_decoded_and_frames_fill_their_slots():
    at_size = encoded((448, 448), "PNG")
    with Image.open(io.BytesIO(at_size)) as image:
        exact = np.asarray(image.convert("RGB"))
    frames = decode.decode_frames([at_size, encoded((100, 80), "PNG", seed=1)], 448)
    assert frames.dtype == torch.uint8 and frames.shape == (2, 448, 448, 3)
    assert np.array_equal(frames[0].numpy(), exact)  # lossless source, no resize: the exact pixels
    assert decode.decode_frames([], 448).shape == (0, 448, 448, 3)



@pytest.mark.parametrize("source, draft", [((448, 448), True), ((512, 384), True), ((1000, 900), False)])
def test_jpegs_decoded_by_torchvision_equal_pil(source, draft, monkeypatch):
    data = encoded(source)
    assert decode.decode_jpeg is not None  # torchvision is a dependency: the fast path must be there
    with Image.open(io.BytesIO(data)) as image:
        full = np.asarray(image.convert("RGB"))
    assert np.array_equal(decode.decode_jpeg_hwc(data), full)  # libjpeg-turbo both sides: the same pixels
    fast = decode.decode_resized(data, 448, draft=draft)
    if source == (448, 448):
        assert np.array_equal(fast, full)  # at the target size: only decoded
    monkeypatch.setattr(decode, "decode_jpeg", None)  # no torchvision image extension: PIL decodes
    assert np.array_equal(decode.decode_resized(data, 448, draft=draft), fast)


def test_jpeg_fast_path_leaves_large_jpegs_to_draft_and_bad_bytes_to_pil():
    calls = []
    real = decode.decode_jpeg_hwc
    try:
        decode.decode_jpeg_hwc = lambda data: calls.append(1) or real(data)
        decode.decode_resized(encoded((1800, 1800)), 448)  # draft reduces it 1/4: PIL's reduced DCT, not a full decode
        assert calls == []
        decode.decode_resized(encoded((512, 512)), 448)
        assert calls == [1]
    finally:
        decode.decode_jpeg_hwc = real
    assert decode.decode_jpeg_hwc(b"\xff\xd8 not a jpeg") is None
