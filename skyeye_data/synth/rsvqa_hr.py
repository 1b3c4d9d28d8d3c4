"""Synthetic RSVQA-HR: the four split trios and ``Data/<id>.tif`` (see :mod:`skyeye_data.synth._rsvqa`)."""

from __future__ import annotations

import random
from pathlib import Path

from skyeye_data.sources.base import Scale
from skyeye_data.sources.rsvqa_hr import RsvqaHR
from skyeye_data.synth._rsvqa import QuestionKind, RsvqaSynthSpec, question_maker, write_synthetic, yes_no

OBJECTS = ("residential building", "road", "parking", "water area", "park", "commercial building",
           "small road", "large residential building")  # fmt: skip

SPEC = RsvqaSynthSpec(
    image_size=512,
    mini_images={"train": 2, "val": 1, "test": 1, "test_phili": 1},
    mini_questions_per_image=4,
    # images by the paper's tile shares (61.5 / 11.2 / 20.5 / 6.8 %) of 10,659
    paper_images={"train": 6_555, "val": 1_194, "test": 2_185, "test_phili": 725},
    # 1,066,316 active questions; train = SkyEye-968k's 625.3k; the rest spread by image share
    paper_questions={"train": 625_340, "val": 128_290, "test": 234_773, "test_phili": 77_913},
    # 1,125,340 question ids in the full files (the authors' loaders size their tables so)
    paper_inactive=59_024,
    make_question=question_maker(
        OBJECTS,
        (
            QuestionKind("presence", "Is there a {a}?", yes_no),
            QuestionKind("comp", "Is the number of {a}s equal to the number of {b}s?", yes_no),
            QuestionKind("count", "How many {a}s are there?", lambda rng: str(rng.randrange(0, 40))),
            QuestionKind("area", "What is the area covered by {a}s?", lambda rng: f"{rng.randrange(0, 20000)}m2"),
        ),
    ),
)


def write(raw_dir: Path, scale: Scale, rng: random.Random) -> int:
    return write_synthetic(RsvqaHR(), SPEC, raw_dir, scale, rng)
