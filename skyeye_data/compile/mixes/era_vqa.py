"""ERA-VQA: questions about the event of an aerial video, generated from ERA's event labels (1.5k).

For each train video of the mix's first source (ERA: :class:`~skyeye_data.schema.ClassificationRecord`,
``media="video"``), ``samples_per_image`` samples (default one; at most one per phrasing) ask what
event takes place, on ``frames`` frames sampled uniformly from the video (default 4)::

    [vqa] What event is taking place in this video?   → traffic collision

The phrasing is drawn from :data:`EVENT_QUESTIONS` by the seed and the record id, so a rebuild asks
the same question of the same video. The answer is the converter's readable label
(``post-earthquake``, ``parade/protest``, ``non-event``). A record that is not a labelled video is
quarantined with the reason.
"""

from __future__ import annotations

import random
from typing import Iterator

from skyeye_data.compile.builders import BuildRejection, MixContext, SampleDraft, mix_builder, payload_key

EVENT_QUESTIONS: tuple[str, ...] = (
    "What event is taking place?",
    "What event is taking place in this video?",
    "What is happening in this aerial video?",
    "Which event does this video show?",
    "What kind of event is captured in this drone video?",
    "What is the main event in this video?",
    "Name the event shown in this video.",
    "What event can be seen from above in this video?",
)


def question_order(seed: int, record_id: str) -> list[str]:
    """The pool's phrasings in an order fixed by (seed, record id): distinct questions for one video."""
    order = list(EVENT_QUESTIONS)
    random.Random(f"era_vqa:{seed}:{record_id}").shuffle(order)
    return order


@mix_builder("era_vqa")
def era_vqa_samples(ctx: MixContext) -> Iterator[SampleDraft | BuildRejection]:
    """Event questions over the labelled videos of the mix's first source."""
    source = ctx.sources[0]
    for record in ctx.records(source):
        if record.task != "classification" or record.media != "video":
            yield BuildRejection(f"ERA-VQA reads labelled videos; {source} gives {record.media} {record.task} records", record=record)
            continue
        questions = question_order(ctx.pools.seed, record.record_id)[: ctx.options.samples_per_image]
        for index, question in enumerate(questions):
            yield ctx.sample([record], index, "vqa", [(f"[vqa] {question}", record.label.strip())], [payload_key("vqa", question)])
