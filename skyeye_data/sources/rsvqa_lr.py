"""RSVQA-LR: questions and answers about 772 low-resolution Sentinel-2 images of the Netherlands.

Dataset
    Lobry et al. (2020) cut 9 Sentinel-2 tiles (10 m, RGB) into 772 images of 256x256 pixels and
    generated 77,232 questions from OpenStreetMap: presence ("Is there a water area?"), count
    ("How many roads are there?"), comparison ("Are there more farmlands than rectangular
    roads?") and rural/urban ("Is it a rural or an urban area"). The split is by tile: 572 train,
    100 val, 100 test images; SkyEye-968k uses the 57.2k train questions.

Raw layout (as downloaded from rsvqa.sylvainlobry.com, under ``RAW/rsvqa_lr/``)::

    LR_split_{train,val,test}_questions.json   {"questions": [{"id", "img_id", "type",
                                               "question", "answers_ids", "active", ...}]}
    LR_split_{train,val,test}_answers.json     {"answers": [{"id", "question_id", "answer", "active"}]}
    LR_split_{train,val,test}_images.json      {"images": [{"id", "questions_ids", "active", ...}]}
    Images_LR/<image id>.tif                   256x256 RGB

Quirks
    - Each split's files are the full lists; the split is the set of images marked ``active`` in
      that split's images file (see :mod:`skyeye_data.sources._rsvqa` for the reading rules shared
      with RSVQA-HR: home split, inactive records, join, streaming, broken files).
    - The rural/urban question has no question mark ("Is it a rural or an urban area"); texts are
      kept as published. ``question_type`` is the file's ``type``: rural_urban, presence, count, comp.
    - Count answers are numbers written as text ("34").

Citation
    S. Lobry, D. Marcos, J. Murray, D. Tuia, "RSVQA: Visual Question Answering for Remote Sensing
    Data", IEEE Transactions on Geoscience and Remote Sensing 58(12), 2020. doi:10.1109/TGRS.2020.2988782
"""

from __future__ import annotations

import random

from skyeye_data.sources import register
from skyeye_data.sources._rsvqa import RsvqaSource, RsvqaSynthSpec, SplitFiles

_OBJECTS = ("water area", "road", "farmland", "grass area", "forest", "building", "commercial building",
            "residential building", "small water area", "large road")  # fmt: skip


def synthetic_lr_question(rng: random.Random) -> tuple[str, str, str]:
    """(type, question, answer) in the style of the real generator."""
    kind = rng.choice(("presence", "count", "comp", "rural_urban"))
    a, b = rng.sample(_OBJECTS, 2)
    if kind == "presence":
        return kind, f"Is there a {a}?", rng.choice(("yes", "no"))
    if kind == "count":
        return kind, f"What is the number of {a}s in the image?", str(rng.randrange(0, 60))
    if kind == "comp":
        return kind, f"Are there more {a}s than {b}s?", rng.choice(("yes", "no"))
    return kind, "Is it a rural or an urban area", rng.choice(("rural", "urban"))


@register
class RsvqaLR(RsvqaSource):
    name = "rsvqa_lr"
    family = "rsvqa_lr"
    prefix = "LR"
    image_dir = "Images_LR"
    splits = (SplitFiles("train", "train", None), SplitFiles("val", "val", None), SplitFiles("test", "test", None))
    layout = "LR_split_{train,val,test}_{questions,answers,images}.json + Images_LR/<id>.tif (772 images, 256x256)"
    title = "RSVQA-LR"
    citation = (
        "Lobry, Marcos, Murray, Tuia. RSVQA: Visual Question Answering for Remote Sensing Data. "
        "IEEE TGRS 58(12), 2020."
    )
    license = "CC BY 4.0 (Zenodo release); images: Copernicus Sentinel-2 data"
    homepage = "https://rsvqa.sylvainlobry.com"
    synth = RsvqaSynthSpec(
        image_size=256,
        mini_images={"train": 3, "val": 1, "test": 2},
        mini_questions_per_image=4,
        paper_images={"train": 572, "val": 100, "test": 100},
        # 77,232 questions in all; the train count is SkyEye-968k's 57.2k
        paper_questions={"train": 57_232, "val": 10_000, "test": 10_000},
        paper_inactive=0,
        make_question=synthetic_lr_question,
    )
