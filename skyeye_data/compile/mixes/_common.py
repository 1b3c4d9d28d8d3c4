"""Pieces the mix builders share: counted class phrases, the phrase-grounding limits, instructions.

Not a builder module (the leading underscore keeps :func:`load_mix_builders` from importing it as one).

Phrase grounding ("the three airplanes" → every airplane box) must name *all* boxes of a class, so
the limits act on whole classes, never on single boxes: a class with more boxes than
``max_boxes``, or with one box whose shorter side is below ``min_box_side`` pixels, is left out of
the phrases of that image (a small box dropped from "the three vehicles" would make the answer
wrong). Difficult objects count as boxes of their class unless ``skip_difficult`` is set, in which
case a class holding one is left out too. Every class left out is returned with its reason.
"""

from __future__ import annotations

from skyeye_data.compile.options import BuilderOptions
from skyeye_data.compile.templates import TemplatePools, stable_index

def reading_order(boxes: list[list[float]]) -> list[list[float]]:
    """Boxes top to bottom, then left to right: one order for the same boxes, whatever the file's."""
    return sorted(boxes, key=lambda b: (b[1], b[0], b[3], b[2]))


def phraseable_classes(record, options: BuilderOptions) -> tuple[dict[str, list[list[float]]], dict[str, str]]:
    """(class → its boxes in reading order, for classes within the limits; class → why it was left out)."""
    by_label: dict[str, list] = {}
    for obj in record.objects:
        by_label.setdefault(obj.label.strip(), []).append(obj)
    kept: dict[str, list[list[float]]] = {}
    left_out: dict[str, str] = {}
    max_boxes = getattr(options, "max_boxes", None)
    min_side = getattr(options, "min_box_side", 0) or 0
    for label, objects in sorted(by_label.items()):
        smallest = min(min(o.box[2] - o.box[0], o.box[3] - o.box[1]) for o in objects)
        if max_boxes is not None and len(objects) > max_boxes:
            left_out[label] = f"{len(objects)} boxes, more than max_boxes {max_boxes}"
        elif smallest < min_side:
            left_out[label] = f"a box {smallest:g} px on its shorter side, below min_box_side {min_side:g}"
        elif options.skip_difficult and any(o.difficult for o in objects):
            left_out[label] = "a box marked difficult (skip_difficult)"
        else:
            kept[label] = reading_order([list(o.box) for o in objects])
    return kept, left_out


def instruction(pools: TemplatePools, task: str, pool: str, key: str, **fields: str) -> str:
    """``[task] <template of the pool chosen by (seed, key)>``: the same key always gets the same phrasing."""
    templates = pools.pools[pool]
    return f"[{task}] " + templates[stable_index(pools.seed, key, len(templates))].format(**fields)
