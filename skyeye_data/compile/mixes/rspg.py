"""RSPG: remote-sensing phrase grounding, generated from detection boxes (SkyEye-968k: DIOR, 6.8k).

For one train image of a detection source, a sample names one or more object classes with their
count and asks for all their boxes::

    [detection] the three airplanes            → <p>the three airplanes</p> {<31><69><48><87>}<delim>{..}<delim>{..}
    [detection] the ship and the two vehicles  → <p>the ship</p> {..} <p>the two vehicles</p> {..}<delim>{..}

Selection (recipe ``mixes.<name>.options``):

- classes: every class of the image within the limits (``max_boxes``, ``min_box_side``,
  ``skip_difficult``; see :mod:`._common` -- limits drop whole classes, so an answer always holds
  every box of its class). Each class left out is written to the quarantine as a *part* with its
  reason, and listed in the sample's provenance (``left_out``).
- phrases per sample: drawn from 1..``max_phrases`` by the seed and the record id;
- samples per image: up to ``samples_per_image``, each on classes not used by the image's earlier
  samples (the classes are shuffled by the seed first);
- an image with no class within the limits gives no sample: one record-level quarantine entry.

The recipe's ``max_samples`` caps the set (the paper's 6.8k); the build stops reading images there.
Boxes are listed in reading order (top to bottom, left to right).
"""

from __future__ import annotations

import random
from typing import Iterator

from skyeye_data.boxes import format_phrases
from skyeye_data.compile.builders import BuildRejection, MixContext, SampleDraft, mix_builder, payload_key
from skyeye_data.compile.mixes._common import instruction, phraseable_classes
from skyeye_data.compile.phrases import count_phrase, join_phrases


def phrase_groups(labels: list[str], max_phrases: int, samples: int, rng: random.Random) -> list[list[str]]:
    """Disjoint groups of classes, one per sample: the classes shuffled, cut into 1..max_phrases-sized runs."""
    order = sorted(labels)
    rng.shuffle(order)
    groups: list[list[str]] = []
    while order and len(groups) < samples:
        size = rng.randint(1, max_phrases)
        groups.append(order[:size])
        order = order[size:]
    return groups


def grounding_turn(ctx: MixContext, record, labels: list[str], boxes_of: dict[str, list[list[float]]], key: str) -> tuple[str, str, str]:
    """(user, assistant, payload key) of one phrase-grounding turn over ``labels`` of ``record``."""
    phrases = [(count_phrase(label, len(boxes_of[label])), boxes_of[label]) for label in labels]
    phrase = join_phrases([p for p, _ in phrases])
    user = instruction(ctx.pools, "detection", ctx.options.pool or "detection", key, phrase=phrase)
    return user, format_phrases(phrases, record.width, record.height, ctx.box_style), payload_key("detection", phrase)


@mix_builder("rspg")
def rspg_samples(ctx: MixContext) -> Iterator[SampleDraft | BuildRejection]:
    """Phrase grounding over the detection records of the mix's first source."""
    source = ctx.sources[0]
    for record in ctx.records(source):
        if record.task != "detection":
            yield BuildRejection(f"RSPG reads detection records; {source} gives {record.task} records", record=record)
            continue
        boxes_of, left_out = phraseable_classes(record, ctx.options)
        if not boxes_of:
            reasons = "; ".join(f"{label}: {why}" for label, why in left_out.items())
            yield BuildRejection(f"no class within the phrase-grounding limits ({reasons})", record=record)
            continue
        for label, why in left_out.items():
            yield BuildRejection(f"class {label} left out of phrase grounding: {why}", record=record, level="part")
        rng = random.Random(f"rspg:{ctx.pools.seed}:{record.record_id}")
        groups = phrase_groups(list(boxes_of), ctx.options.max_phrases, ctx.options.samples_per_image, rng)
        for index, labels in enumerate(groups):
            user, answer, payload = grounding_turn(ctx, record, labels, boxes_of, f"{record.record_id}/{index}")
            sample = ctx.sample([record], index, "detection", [(user, answer)], [payload])
            sample.provenance["classes"] = labels
            sample.provenance["left_out"] = left_out
            yield sample
