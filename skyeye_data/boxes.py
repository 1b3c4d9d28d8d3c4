"""The box codec of SkyEyeGPT / MiniGPT-v2.

A pixel box ``[x1, y1, x2, y2]`` on a ``width x height`` image is written as
``{<x1><y1><x2><y2>}`` where each value is ``coordinate / side * 100`` rounded half up and clamped
to 0..100. Several boxes are joined by ``<delim>``; a phrase-grounding answer reads
``<p>the three airplanes</p> {<31><69><48><87>}<delim>{<62><35><79><50>}``.

The ``angle`` style ``<<x1><y1><x2><y2>>`` is accepted as an alternative writing. The parser is
tolerant: it reads both styles, spaces inside the tokens, and GeoChat's rotated-box suffix
``{<x1><y1><x2><y2>|<θ>}``.

Rounding uses exact rational arithmetic: ``133 / 800 * 100 = 16.625`` must become 17, and a float
computation can land a hair below a ``.5`` boundary.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable, Literal, Sequence

BoxStyle = Literal["brace", "angle"]
NormBox = tuple[int, int, int, int]
DELIM = "<delim>"
SCALE = 100


def normalize_value(coordinate: float, side: int) -> int:
    """coordinate / side * 100, rounded half up, clamped to 0..100."""
    if side <= 0:
        raise ValueError(f"image side must be positive, got {side}")
    scaled = Fraction(coordinate) * SCALE / side
    return max(0, min(SCALE, math.floor(scaled + Fraction(1, 2))))


def normalize_box(box: Sequence[float], width: int, height: int) -> NormBox:
    x1, y1, x2, y2 = box
    return (
        normalize_value(x1, width),
        normalize_value(y1, height),
        normalize_value(x2, width),
        normalize_value(y2, height),
    )


def denormalize_box(box: Sequence[float], width: int, height: int) -> list[float]:
    """A 0..100 box back to pixels (the inverse of normalization up to its rounding)."""
    x1, y1, x2, y2 = box[:4]
    return [x1 * width / SCALE, y1 * height / SCALE, x2 * width / SCALE, y2 * height / SCALE]


def format_norm_box(box: NormBox, style: BoxStyle = "brace") -> str:
    inner = "".join(f"<{v}>" for v in box)
    return f"{{{inner}}}" if style == "brace" else f"<{inner}>"


def format_box(box: Sequence[float], width: int, height: int, style: BoxStyle = "brace") -> str:
    """Pixel box → ``{<x1><y1><x2><y2>}`` (or ``<<..>>`` with style='angle')."""
    return format_norm_box(normalize_box(box, width, height), style)


def format_boxes(boxes: Iterable[Sequence[float]], width: int, height: int, style: BoxStyle = "brace") -> str:
    """Several pixel boxes joined by ``<delim>``."""
    return DELIM.join(format_box(box, width, height, style) for box in boxes)


def format_phrase(phrase: str, boxes: Iterable[Sequence[float]], width: int, height: int, style: BoxStyle = "brace") -> str:
    """``<p>phrase</p> {..}<delim>{..}``: a phrase and all of its boxes."""
    return f"<p>{phrase}</p> {format_boxes(boxes, width, height, style)}"


def format_phrases(
    phrases: Iterable[tuple[str, Sequence[Sequence[float]]]], width: int, height: int, style: BoxStyle = "brace"
) -> str:
    """A multi-phrase grounding answer: each ``<p>..</p> boxes`` group, separated by a space."""
    return " ".join(format_phrase(p, b, width, height, style) for p, b in phrases)


# -- parsing -------------------------------------------------------------------------------------

_NUM = r"\s*<\s*(-?\d+(?:\.\d+)?)\s*>\s*"
_ANGLE_SUFFIX = r"(?:\s*\|\s*<\s*(-?\d+(?:\.\d+)?)\s*>\s*)?"
_BRACE_BOX = re.compile(r"\{" + _NUM * 4 + _ANGLE_SUFFIX + r"\}")
_ANGLE_BOX = re.compile(r"<" + _NUM * 4 + _ANGLE_SUFFIX + r">")
_ANY_BOX = re.compile(f"(?:{_BRACE_BOX.pattern})|(?:{_ANGLE_BOX.pattern})")
_PHRASE = re.compile(r"<p>\s*(.*?)\s*</p>", re.S)


@dataclass(frozen=True)
class ParsedBox:
    """A box read back from text: 0..100 coordinates and GeoChat's optional rotation angle."""

    x1: float
    y1: float
    x2: float
    y2: float
    angle: float | None = None

    @property
    def coords(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)

    def to_pixels(self, width: int, height: int) -> list[float]:
        return denormalize_box(self.coords, width, height)


def _parsed(groups: Sequence[str | None]) -> ParsedBox:
    # groups: 5 of the brace alternative followed by 5 of the angle alternative
    values = groups[:5] if groups[0] is not None else groups[5:]
    x1, y1, x2, y2 = (min(float(SCALE), max(0.0, float(v))) for v in values[:4])
    angle = float(values[4]) if values[4] is not None else None
    return ParsedBox(x1, y1, x2, y2, angle)


def parse_boxes(text: str) -> list[ParsedBox]:
    """Every box in ``text``, in order, in either style; values clamped to 0..100."""
    return [_parsed(m.groups()) for m in _ANY_BOX.finditer(text or "")]


def parse_phrases(text: str) -> list[tuple[str, list[ParsedBox]]]:
    """``<p>phrase</p> boxes ...`` groups; boxes before any phrase are returned under phrase ''."""
    text = text or ""
    marks = list(_PHRASE.finditer(text))
    groups: list[tuple[str, list[ParsedBox]]] = []
    lead = text[: marks[0].start()] if marks else text
    if parse_boxes(lead):
        groups.append(("", parse_boxes(lead)))
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        groups.append((mark.group(1), parse_boxes(text[mark.end() : end])))
    return groups


# -- geometry ------------------------------------------------------------------------------------


def polygon_to_box(coords: Sequence[float]) -> list[float]:
    """A polygon ``x1 y1 x2 y2 ... xn yn`` (n >= 3) → its axis-aligned bounding box."""
    if len(coords) < 6 or len(coords) % 2:
        raise ValueError(f"a polygon needs an even number (>= 6) of coordinates, got {len(coords)}")
    xs = [float(v) for v in coords[0::2]]
    ys = [float(v) for v in coords[1::2]]
    if not all(math.isfinite(v) for v in xs + ys):
        raise ValueError("polygon has a non-finite coordinate")
    return [min(xs), min(ys), max(xs), max(ys)]


def clip_box(box: Sequence[float], width: int, height: int) -> tuple[list[float] | None, bool]:
    """Clip a pixel box to the image. Returns (box or None when nothing lies inside, was_clipped)."""
    x1, y1, x2, y2 = box
    cx1, cy1 = max(0.0, float(x1)), max(0.0, float(y1))
    cx2, cy2 = min(float(width), float(x2)), min(float(height), float(y2))
    if cx2 <= cx1 or cy2 <= cy1:
        return None, True
    clipped = (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2)
    return [cx1, cy1, cx2, cy2], clipped


FAR_SIDES = 10


def box_problem(box: Sequence[float], width: int, height: int) -> str | None:
    """Why a raw pixel box cannot be clipped into a usable box, or None (clip it with :func:`clip_box`).

    Checked before clipping, so the reason says what is wrong: an inverted box (x2 < x1 or y2 < y1)
    is not "outside the image", and a coordinate far beyond the image (1e308, a unit mix-up) is a
    broken value, not a box reaching over the border: clipping it would cover the whole image.
    "Far" is more than :data:`FAR_SIDES` image sides from the image (a box wholly outside but near
    is reported by :func:`clip_box` returning None, as before).
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    if x2 < x1 or y2 < y1:
        return f"box {list(box)} is inverted (x2 < x1 or y2 < y1)"
    if x2 == x1 or y2 == y1:
        return f"box {list(box)} has no area"
    reach = FAR_SIDES * max(width, height)
    if min(x1, y1) < -reach or max(x2, y2) > reach:
        return f"box {list(box)} has a coordinate far outside the {width}x{height} image (a broken value, not clipped)"
    return None


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two xyxy boxes (any unit, same for both)."""
    ix1, iy1 = max(a[0], b[0]), max(a[1], b[1])
    ix2, iy2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, ix2 - ix1) * max(0.0, iy2 - iy1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
