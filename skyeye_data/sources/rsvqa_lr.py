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

from skyeye_data.sources import register
from skyeye_data.sources.base import Layout
from skyeye_data.sources._rsvqa import RSVQA_CITATION, RSVQA_HOMEPAGE, RsvqaSource, SplitFiles


@register
class RsvqaLR(RsvqaSource):
    name = "rsvqa_lr"
    family = "rsvqa_lr"
    prefix = "LR"
    image_dir = "Images_LR"
    splits = (SplitFiles("train", "train", None), SplitFiles("val", "val", None), SplitFiles("test", "test", None))
    layout = "LR_split_{train,val,test}_{questions,answers,images}.json + Images_LR/<id>.tif (772 images, 256x256)"
    title = "RSVQA-LR"
    citation = RSVQA_CITATION
    license = "CC BY 4.0 (Zenodo release); images: Copernicus Sentinel-2 data"
    homepage = RSVQA_HOMEPAGE
    short_title = "RSVQA-LR"
    benchmark_splits = ("val", "test")
    report_rank = 6
    paper_counts = {"rsvqa_lr": ("RSVQA-LR", 57_200)}
    license_url = "https://creativecommons.org/licenses/by/4.0/"
    published_splits = {"train": 572, "val": 100, "test": 100}  # images (Lobry et al. 2020: split by tile)
    published_unit = "images"
    layouts = (
        Layout("published", "LR_split_{train,val,test}_{questions,answers,images}.json + Images_LR/<id>.tif",
               "syvlo/RSVQA AutomaticDB/Splits.py wrote the files (stubs for other splits' ids), "
               "VQA_model/VQALoader.py reads them; file names as on rsvqa.sylvainlobry.com"),
    )  # fmt: skip
