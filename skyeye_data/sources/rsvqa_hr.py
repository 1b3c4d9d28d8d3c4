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

from skyeye_data.sources import register
from skyeye_data.sources.base import Layout
from skyeye_data.sources._rsvqa import RSVQA_CITATION, RSVQA_HOMEPAGE, RsvqaSource, SplitFiles


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
    citation = RSVQA_CITATION
    license = "CC BY 4.0 (Zenodo release); images: USGS HRO, public domain"
    homepage = RSVQA_HOMEPAGE
    short_title = "RSVQA-HR"
    subset_titles = {"test": "test set 1", "test_phili": "test set 2"}
    benchmark_splits = ("val", "test")
    report_rank = 7
    paper_counts = {"rsvqa_hr": ("RSVQA-HR", 625_300)}
    license_url = "https://creativecommons.org/licenses/by/4.0/"
    published_unit = "images"  # 10,659 in all; the per-split image counts are not published
    layouts = (
        Layout("published", "USGS_split_{train,val,test,test_phili}_{questions,answers,images}.json + Data/<id>.tif",
               "syvlo/RSVQA AutomaticDB/Splits.py (output_subdb_name 'USGS_split_{}_{}', splits train, test, val, "
               "test_phili) wrote the files; VQA_model/VQALoader.py reads them"),
    )  # fmt: skip
