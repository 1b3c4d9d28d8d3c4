"""RSICD: the Remote Sensing Image Captioning Dataset, 10,921 images with five captions each.

Dataset
    Lu et al. (2018) collected 10,921 aerial images of 224x224 pixels from Google Earth, Baidu
    Map, MapABC and Tianditu in 30 scene classes and had volunteers write up to five sentences per
    image (24,333 distinct sentences), padded to five by repetition.

Raw layout (under ``RAW/rsicd/``)::

    annotations_rsicd/dataset_rsicd.json   (most copies; dataset_rsicd.json at the top also accepted)
                          Karpathy-style: {"images": [{"filename": "airport_1.jpg", "imgid": 0,
                          "split": "train", "sentids", "sentences": [{"raw", "tokens", "imgid",
                          "sentid"}]}], "dataset": "rsicd"}
    RSICD_images/*.jpg     (images/ also accepted; the variants and evidence: ``RSICD.layouts``)

Splits: the file's own ``split`` field, 8,734 train / 1,093 val / 1,094 test images; SkyEye-968k
uses the 43,670 (43.7k) train captions.

Quirks
    - Most files are named ``<class>_<n>.jpg`` but some carry a bare number (``00433.jpg``); the
      RSIVQA "AID" subset asks its questions about those RSICD files, so both use key ``rsicd:<stem>``.
    - ``raw`` is lower case and pre-tokenised ("many buildings and green trees are around a
      playground ."); about half of the images repeat sentences to fill five slots.

Reading rules shared by all caption sources: :mod:`skyeye_data.sources._karpathy`.

Citation
    X. Lu, B. Wang, X. Zheng, X. Li, "Exploring Models and Data for Remote Sensing Image Caption
    Generation", IEEE Transactions on Geoscience and Remote Sensing 56(4):2183-2195, 2018.
"""

from __future__ import annotations

from skyeye_data.sources import register
from skyeye_data.sources._karpathy import CaptionJsonSource
from skyeye_data.sources.base import Layout

RSICD_CLASSES = (
    "airport", "bareland", "baseballfield", "beach", "bridge", "center", "church", "commercial",
    "denseresidential", "desert", "farmland", "forest", "industrial", "meadow", "mediumresidential",
    "mountain", "park", "parking", "playground", "pond", "port", "railwaystation", "resort", "river",
    "school", "sparseresidential", "square", "stadium", "storagetanks", "viaduct",
)  # fmt: skip


@register
class RSICD(CaptionJsonSource):
    name = "rsicd"
    family = "rsicd"
    annotation_file = "dataset_rsicd.json"
    image_dir = "RSICD_images"
    layout = "annotations_rsicd/dataset_rsicd.json (or dataset_rsicd.json) + RSICD_images/*.jpg (10,921 images, 224x224)"
    title = "RSICD"
    citation = (
        "Lu, Wang, Zheng, Li. Exploring Models and Data for Remote Sensing Image Caption Generation. "
        "IEEE TGRS 56(4), 2018."
    )
    license = "research use (no license stated by the authors)"
    homepage = "https://github.com/201528014227051/RSICD_optimal"
    short_title = "RSICD"
    benchmark_splits = ("val", "test")
    report_rank = 2
    paper_counts = {"rsicd": ("RSICD", 43_700)}
    published_splits = {"train": 8734, "val": 1093, "test": 1094}  # images per split in the release
    layouts = (
        Layout("archive", "annotations_rsicd/dataset_rsicd.json + RSICD_images/*.jpg",
               "the release as most copies keep it: public loaders read RSICD/annotations_rsicd/dataset_rsicd.json "
               "with RSICD/RSICD_images (found by code search over GitHub, e.g. CLIP-on-RSICD training scripts)"),
        Layout("flattened", "dataset_rsicd.json + RSICD_images/*.jpg",
               "201528014227051/RSICD_optimal (the authors' repository) names dataset_rsicd.json beside the images"),
        Layout("images folder", "annotations_rsicd/dataset_rsicd.json + images/*.jpg",
               "re-packs that rename RSICD_images/ to images/ (seen in public loaders: RSICD/images)"),
    )  # fmt: skip
