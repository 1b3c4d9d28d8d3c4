"""Encoded image bytes → the model's square ``uint8`` RGB input, written straight into a batch slot.

The model's transform is MiniGPT-v2's (``Blip2ImageTrainProcessor``: ``Resize((S, S), BICUBIC)``,
aspect ratio not kept); normalisation happens on the device (``model.VisionEncoder``), so what crosses
the dataloader's worker boundary is ``uint8`` (a quarter of float32's bytes).

Cost per image, from a profile of ``benchmarks/dataloader_bench.py`` (512 px JPEG → 448): PIL's
bicubic ``resize`` was ~60 % of the sample (5–6 ms on this machine), the JPEG decode ~1.5 ms. The
resize runs here on torch's antialiased ``uint8`` bicubic kernel instead (pytorch
``aten/src/ATen/native/cpu/UpSampleKernel.cpp`` + ``UpSampleKernelAVXAntialias.h``, written after
Pillow-SIMD's resampler: the same a = -0.5 kernel and support, so the pixels equal PIL's within ±2,
mean |Δ| < 0.01, checked in ``tests/test_model_decode.py``), ~0.7 ms, writing channels-last into the
caller's array (no transpose copy). JPEGs much larger than the target are decoded at a reduced DCT
scale first (PIL ``draft``: 1/2, 1/4, 1/8, never below the target). An image already at the target
size (the pre-resized training tier) is only decoded.

An RGB JPEG that ``draft`` would not reduce (smaller than twice the target on a side, or ``draft=False``)
is decoded by torchvision's ``decode_jpeg`` (libjpeg-turbo, like Pillow): it writes an HWC tensor that
is used as it is, where PIL decodes into its own 4-byte pixel storage and ``np.asarray`` copies it out
through ``tobytes`` (~20 % of a 448 px decode, measured); the pixels are identical (checked in the test).
PIL still reads the header (size, mode) and decodes everything else.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from PIL import Image

# the kernel behind F.interpolate(mode="bicubic", antialias=True), called with a channels-last `out`: it writes
# HWC directly, where F.interpolate returns NCHW and the transpose back costs as much as the resize (measured)
BICUBIC_AA = getattr(torch._C._nn, "_upsample_bicubic2d_aa", None)

try:
    from torchvision.io import ImageReadMode, decode_jpeg
except ImportError:  # torchvision is a dependency; a build without its image extension decodes with PIL
    decode_jpeg = None


def reduced_by_draft(image: Image.Image, size: int) -> bool:
    # PIL's JpegImageFile.draft: scale = min(w // size, h // size), a power of two up to 8; 1 = no reduction
    return min(image.size[0] // size, image.size[1] // size) >= 2


def decode_jpeg_hwc(data: bytes) -> np.ndarray | None:
    """An RGB JPEG as ``uint8 [h, w, 3]`` by libjpeg-turbo into a torch tensor (no PIL storage); None if it cannot."""
    if decode_jpeg is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a read-only bytes buffer: decode_jpeg only reads it
        # torchvision 0.29 deprecates its image codecs for TorchCodec (a warning per call); pinned here, and
        # without them (ImportError above) PIL decodes
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return decode_jpeg(torch.frombuffer(data, dtype=torch.uint8), mode=ImageReadMode.RGB).permute(1, 2, 0).numpy()  # stored HWC: a view
        except RuntimeError:  # something libjpeg-turbo refuses: PIL decides (and raises its own error if it must)
            return None


def decode_into(data: bytes, out: np.ndarray, draft: bool = True) -> None:
    """Decode ``data`` and resize it into ``out`` (``uint8 [S, S, 3]``, writable, C-contiguous).

    ``draft=False`` decodes JPEGs at full size first, as MiniGPT-v2's processor sees them
    (``PIL.Image.open(...).convert("RGB")``): the exact pixels, slower for large JPEGs."""
    size = out.shape[0]
    decoded = None
    with Image.open(io.BytesIO(data)) as image:
        if image.format == "JPEG" and image.mode == "RGB" and not (draft and reduced_by_draft(image, size)):
            decoded = decode_jpeg_hwc(data)
        if decoded is None:
            if draft:
                image.draft("RGB", (size, size))  # JPEG: reduced-scale decoding, never below the target
            rgb = image if image.mode == "RGB" else image.convert("RGB")
            decoded = np.asarray(rgb)  # one copy out of PIL's 4-byte pixel storage, read-only
    if decoded.shape[:2] == (size, size):
        out[...] = decoded
    else:
        resize_bicubic(decoded, out)


def decode_resized(data: bytes, size: int, draft: bool = True) -> np.ndarray:
    """Encoded image → RGB ``uint8 [size, size, 3]`` (bicubic, aspect ratio not kept, as in the paper)."""
    out = np.empty((size, size, 3), dtype=np.uint8)
    decode_into(data, out, draft)
    return out


def decode_frames(encoded: list[bytes], size: int, draft: bool = True, out: torch.Tensor | None = None) -> torch.Tensor:
    """Several images → ``uint8 [n, size, size, 3]``, each decoded into its slot (no stacking copy);
    into ``out`` when given (a slice of a batch buffer: contiguous, that shape)."""
    out = torch.empty((len(encoded), size, size, 3), dtype=torch.uint8) if out is None else out
    for slot, data in zip(out.numpy(), encoded):
        decode_into(data, slot, draft)
    return out


def resize_bicubic(image: np.ndarray, out: np.ndarray) -> None:
    """``uint8 [h, w, 3]`` → ``out`` ``uint8 [S, S, 3]``: antialiased bicubic, PIL's filter."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the decoded array is read-only; it is only read
        source = torch.from_numpy(image[None]).permute(0, 3, 1, 2)  # a channels-last view, no copy
    target = torch.from_numpy(out[None]).permute(0, 3, 1, 2)
    if BICUBIC_AA is not None:
        try:
            BICUBIC_AA(source, list(out.shape[:2]), False, None, None, out=target)
            return
        except (TypeError, RuntimeError):  # another signature in another torch: the public call below
            pass
    target.copy_(torch.nn.functional.interpolate(source, size=out.shape[:2], mode="bicubic", antialias=True))
