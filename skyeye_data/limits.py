"""What a build accepts from raw input: the recipe's ``input:`` section.

Raw dataset folders are untrusted input (a download, a re-pack from a forum, a colleague's copy):
every raw file is read through :mod:`skyeye_data.rawfs`, every image is verified by
:mod:`skyeye_data.imagecheck` and every record's text passes :mod:`skyeye_data.textguard`, all
under the limits below. The defaults fit the real datasets with room to spare (DOTA's largest
originals are about 20,000 px a side; RSVQA-HR's questions file is about 200 MB) and stop what no
real dataset holds (a 1 MB caption, a 40,000² image header, a label file that is ``/dev/zero``).

Example recipe section::

    input:
      allow_outside: [/mnt/shared/dota-images]   # symlinks may point into these roots
      max_image_pixels: 484000000                # 22,000 x 22,000
      text_controls: quarantine                  # or strip (default): remove and flag
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MiB = 1 << 20
GiB = 1 << 30

# size caps per kind of raw file; a file over its cap is refused with the cap in the reason
DEFAULT_SIZE_CAPS: dict[str, int] = {
    "label": 64 * MiB,  # a DOTA label file / split id list / RSIVQA triplet file (HRRSD's is ~6 MB)
    "text": 256 * MiB,
    "json": 4 * GiB,  # RSVQA-HR questions ~200 MB; streamed, never held whole
    "xml": 16 * MiB,  # a VOC annotation is a few KB
    "image": 2 * GiB,
    "video": 8 * GiB,
}


class InputLimits(BaseModel):
    """The recipe's ``input:`` section (all optional)."""

    model_config = ConfigDict(extra="forbid")

    allow_outside: list[Path] = Field(
        default_factory=list,
        description="folders outside the raw root that symlinks in it may point into (e.g. a shared image store)",
    )
    max_image_pixels: int = Field(
        22_000 * 22_000, ge=1, description="largest image accepted (width x height); DOTA's largest are ~20,000² px"
    )
    decode_budget_pixels: int = Field(
        64_000_000,
        ge=1,
        description="images above this are verified by a memory-bounded path where the format has one (JPEG: "
        "reduced decode; PNG not downscaled: streamed check) instead of a full in-memory decode",
    )
    text_controls: Literal["strip", "quarantine"] = Field(
        "strip",
        description="lone surrogates, control and bidi characters in record text: removed with a flag, or the "
        "record quarantined",
    )
    max_text_chars: int = Field(
        4096, ge=1, description="longest caption / question / answer / expression; a longer one is quarantined"
    )
    size_caps: dict[Literal["label", "text", "json", "xml", "image", "video"], int] = Field(
        default_factory=dict, description="bytes per kind of raw file, overriding the defaults"
    )

    def size_cap(self, kind: str) -> int:
        return self.size_caps.get(kind, DEFAULT_SIZE_CAPS[kind])  # type: ignore[call-overload]


DEFAULT_LIMITS = InputLimits()
