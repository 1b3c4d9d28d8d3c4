"""RSVQA-HR: questions and answers about 10,659 high-resolution USGS aerial images.

Dataset
    Lobry et al. (2020) cut 161 USGS High Resolution Orthoimagery tiles (15 cm, RGB) of the US
    north-east coast into 10,659 images of 512x512 pixels and generated 1,066,316 questions from
    OpenStreetMap: presence, comparison, count and area ("What is the area covered by
    residential buildings?" → "10632m2"). Split by tile: train 61.5%, val 11.2%, test set 1 20.5%
    (same regions as train) and test set 2 6.8% (Philadelphia, another sensor). SkyEye-968k uses
    the 625.3k train questions.

Raw layout (under ``RAW/rsvqa_hr/``)::

    USGS_split_{train,val,test,test_phili}_{questions,answers,images}.json
    Data/<image id>.tif                                          512x512 RGB

Splits and subsets
    train → split "train"; val → "val"; test (test set 1) → split "test", subset "test";
    test_phili (test set 2) → split "test", subset "test_phili". Evaluations report the two test
    sets apart through ``subset``.

Quirks
    - Each split's files are the full lists (ids = list index across all splits) and the split is
      the set of images marked ``active`` in its images file; about 59k question ids are withdrawn
      (``"active": false``) and are quarantined as "inactive question" so the counts add up.
      Reading rules shared with RSVQA-LR: :mod:`skyeye_data.sources._rsvqa`.
    - The questions file of one split is ~200 MB: it is streamed, never loaded whole.
    - Area answers carry their unit with no space ("10632m2") and are kept verbatim; ``question_type``
      is the file's ``type`` (presence, comp, count, area).

Citation
    S. Lobry, D. Marcos, J. Murray, D. Tuia, "RSVQA: Visual Question Answering for Remote Sensing
    Data", IEEE Transactions on Geoscience and Remote Sensing 58(12), 2020. doi:10.1109/TGRS.2020.2988782
"""

from __future__ import annotations

import random

from skyeye_data.sources import register
from skyeye_data.sources._rsvqa import RsvqaSource, RsvqaSynthSpec, SplitFiles

_OBJECTS = ("residential building", "road", "parking", "water area", "park", "commercial building",
            "small road", "large residential building")  # fmt: skip


def synthetic_hr_question(rng: random.Random) -> tuple[str, str, str]:
    """(type, question, answer) in the style of the real generator."""
    kind = rng.choice(("presence", "comp", "count", "area"))
    a, b = rng.sample(_OBJECTS, 2)
    if kind == "presence":
        return kind, f"Is there a {a}?", rng.choice(("yes", "no"))
    if kind == "comp":
        return kind, f"Is the number of {a}s equal to the number of {b}s?", rng.choice(("yes", "no"))
    if kind == "count":
        return kind, f"How many {a}s are there?", str(rng.randrange(0, 40))
    return kind, f"What is the area covered by {a}s?", f"{rng.randrange(0, 20000)}m2"


@register
class RsvqaHR(RsvqaSource):
    name = "rsvqa_hr"
    family = "rsvqa_hr"
    prefix = "USGS"
    image_dir = "Data"
    splits = (
        SplitFiles("train", "train", None),
        SplitFiles("val", "val", None),
        SplitFiles("test", "test", "test"),
        SplitFiles("test_phili", "test", "test_phili"),
    )
    layout = (
        "USGS_split_{train,val,test,test_phili}_{questions,answers,images}.json + Data/<id>.tif "
        "(10,659 images, 512x512)"
    )
    title = "RSVQA-HR"
    citation = (
        "Lobry, Marcos, Murray, Tuia. RSVQA: Visual Question Answering for Remote Sensing Data. "
        "IEEE TGRS 58(12), 2020."
    )
    license = "CC BY 4.0 (Zenodo release); images: USGS HRO, public domain"
    homepage = "https://rsvqa.sylvainlobry.com"
    synth = RsvqaSynthSpec(
        image_size=512,
        mini_images={"train": 2, "val": 1, "test": 1, "test_phili": 1},
        mini_questions_per_image=4,
        # images by the paper's tile shares (61.5 / 11.2 / 20.5 / 6.8 %) of 10,659
        paper_images={"train": 6_555, "val": 1_194, "test": 2_185, "test_phili": 725},
        # 1,066,316 active questions; train = SkyEye-968k's 625.3k; the rest spread by image share
        paper_questions={"train": 625_340, "val": 128_290, "test": 234_773, "test_phili": 77_913},
        # 1,125,340 question ids in the full files (the authors' loaders size their tables so)
        paper_inactive=59_024,
        make_question=synthetic_hr_question,
    )
