"""Visual grounding metrics (DIOR-RSVG, RSVG): Acc@0.25/0.5/0.75, mean IoU and cumulative IoU.

The generated text is read with :func:`skyeye_data.boxes.parse_boxes` (brace ``{<x1><y1><x2><y2>}``
or angle ``<<x1><y1><x2><y2>>`` style, 0..100 coordinates) and the **first** box is the answer,
as in MiniGPT-v2's and SkyEyeGPT's ``[refer]`` evaluation. It is scaled back to pixels with the
image's ``width``/``height`` and compared with ``ref_boxes[0]`` (pixel xyxy).

- A prediction is correct at threshold t when IoU >= t (the TransVG / DIOR-RSVG code convention;
  equality with a float IoU practically never happens, so "> t" gives the same figures).
- Corners given in the wrong order (x2 < x1) are put in order before scoring: the model named a
  region, and the region is what is scored.
- An output with no parseable box is a miss: IoU 0 in every figure, and listed by id in the report.
- mean IoU averages the per-expression IoU (misses included as 0); cumulative IoU is total
  intersection / total union over the dataset (DIOR-RSVG's cumIoU), a miss adding the reference
  box area to the union.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from skyeye_data.boxes import box_iou, parse_boxes

THRESHOLDS: tuple[float, ...] = (0.25, 0.5, 0.75)


def ordered_box(box: Sequence[float]) -> list[float]:
    x1, y1, x2, y2 = box[:4]
    return [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]


def box_area(box: Sequence[float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def intersection_area(a: Sequence[float], b: Sequence[float]) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def predicted_box(text: str, width: int, height: int) -> list[float] | None:
    """The first box in the generated text, in pixels; None when the text holds no box."""
    boxes = parse_boxes(text)
    return ordered_box(boxes[0].to_pixels(width, height)) if boxes else None


@dataclass(frozen=True)
class GroundingItem:
    id: str
    prediction: str
    reference: list[float]  # pixel xyxy
    width: int
    height: int


@dataclass
class GroundingScores:
    """Accuracy at each IoU threshold, mean IoU, cumulative IoU (fractions), and the misses."""

    ious: list[float]
    intersection_total: float
    union_total: float
    unparseable: list[dict[str, str]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.ious)

    def accuracy_at(self, threshold: float) -> float:
        return sum(iou >= threshold for iou in self.ious) / len(self.ious) if self.ious else 0.0

    @property
    def mean_iou(self) -> float:
        return sum(self.ious) / len(self.ious) if self.ious else 0.0

    @property
    def cumulative_iou(self) -> float:
        return self.intersection_total / self.union_total if self.union_total > 0 else 0.0


def score_grounding(items: Sequence[GroundingItem]) -> GroundingScores:
    ious: list[float] = []
    inter_total = union_total = 0.0
    unparseable: list[dict[str, str]] = []
    for item in items:
        reference = ordered_box(item.reference)
        predicted = predicted_box(item.prediction, item.width, item.height)
        if predicted is None:
            unparseable.append({"id": item.id, "prediction": item.prediction})
            ious.append(0.0)
            union_total += box_area(reference)
            continue
        inter = intersection_area(predicted, reference)
        ious.append(box_iou(predicted, reference))
        inter_total += inter
        union_total += box_area(predicted) + box_area(reference) - inter
    return GroundingScores(ious=ious, intersection_total=inter_total, union_total=union_total, unparseable=unparseable)
