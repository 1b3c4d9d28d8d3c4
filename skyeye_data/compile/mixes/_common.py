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

import re
from typing import Sequence

from skyeye_data.compile.recipe import BuilderOptions
from skyeye_data.compile.templates import TemplatePools, stable_index

NUMBER_WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
)  # fmt: skip

# DIOR writes its class names squashed ("storagetank"); these read as English. Other names (DOTA's
# "storage-tank", "small-vehicle") only need their hyphens turned into spaces.
READABLE_CLASSES = {
    "baseballfield": "baseball field",
    "basketballcourt": "basketball court",
    "expressway-service-area": "expressway service area",
    "expressway-toll-station": "expressway toll station",
    "golffield": "golf field",
    "groundtrackfield": "ground track field",
    "storagetank": "storage tank",
    "tenniscourt": "tennis court",
    "trainstation": "train station",
}
_SEPARATORS = re.compile(r"[-_\s]+")


def number_word(n: int) -> str:
    """'three' for 3; digits past twenty ('24')."""
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


def readable_class(label: str) -> str:
    """A detection class name as words: 'storagetank' → 'storage tank', 'small-vehicle' → 'small vehicle'."""
    key = label.strip().lower()
    return READABLE_CLASSES.get(key) or _SEPARATORS.sub(" ", key).strip()


def plural(noun: str) -> str:
    """English plural of the last word: 'overpass' → 'overpasses', 'tennis court' → 'tennis courts'."""
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and len(noun) > 1 and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def count_phrase(label: str, count: int) -> str:
    """'the airplane' for one box, 'the three airplanes' for three."""
    noun = readable_class(label)
    return f"the {noun}" if count == 1 else f"the {number_word(count)} {plural(noun)}"


def join_phrases(phrases: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


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
