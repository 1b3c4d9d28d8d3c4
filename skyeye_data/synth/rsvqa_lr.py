"""Synthetic RSVQA-LR: the three split trios and ``Images_LR/<id>.tif`` (see :mod:`skyeye_data.synth._rsvqa`)."""

from __future__ import annotations

import random
from pathlib import Path

from skyeye_data.sources.base import Scale
from skyeye_data.sources.rsvqa_lr import RsvqaLR
from skyeye_data.synth._rsvqa import QuestionKind, RsvqaSynthSpec, question_maker, write_synthetic, yes_no

OBJECTS = ("water area", "road", "farmland", "grass area", "forest", "building", "commercial building",
           "residential building", "small water area", "large road")  # fmt: skip

SPEC = RsvqaSynthSpec(
    image_size=256,
    mini_images={"train": 3, "val": 1, "test": 2},
    mini_questions_per_image=4,
    paper_images={"train": 572, "val": 100, "test": 100},
    # 77,232 questions in all; the train count is SkyEye-968k's 57.2k
    paper_questions={"train": 57_232, "val": 10_000, "test": 10_000},
    paper_inactive=0,
    make_question=question_maker(
        OBJECTS,
        (
            QuestionKind("presence", "Is there a {a}?", yes_no),
            QuestionKind("count", "What is the number of {a}s in the image?", lambda rng: str(rng.randrange(0, 60))),
            QuestionKind("comp", "Are there more {a}s than {b}s?", yes_no),
            QuestionKind("rural_urban", "Is it a rural or an urban area", lambda rng: rng.choice(("rural", "urban"))),
        ),
    ),
)


def write(raw_dir: Path, scale: Scale, rng: random.Random) -> int:
    return write_synthetic(RsvqaLR(), SPEC, raw_dir, scale, rng)
