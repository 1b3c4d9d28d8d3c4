"""RSITMD: the Remote Sensing Image-Text Match Dataset, 4,743 images with five fine-grained captions.

Dataset
    Yuan et al. (2022) built RSITMD for cross-modal retrieval: 4,743 images of 256x256 pixels in
    32 scene classes, five sentences each (23,715 sentences) written to describe object relations
    in more detail than RSICD, plus one to five keywords per image.

Raw layout (under ``RAW/rsitmd/``)::

    dataset_RSITMD.json   Karpathy-style: {"images": [{"filename": "airport_1.tif", "imgid": 0,
                          "split": "train", "keywords": [...], "sentids", "sentences": [{"raw",
                          "tokens", "imgid", "sentid"}]}], "dataset": "rsitmd"}
    images/*.tif

Splits: the file's own ``split`` field: 4,291 train / 452 test images, no val split; SkyEye-968k
uses the 21,455 (21.5k) train captions.

Quirks
    - ``keywords`` (retrieval tags) are not captions and are not read.
    - Pre-tokenised ``raw`` text; fewer repeated sentences than RSICD, but some remain.

Reading rules shared by all caption sources: :mod:`skyeye_data.sources._karpathy`.

Citation
    Z. Yuan, W. Zhang, K. Fu, X. Li, C. Deng, H. Wang, X. Sun, "Exploring a Fine-Grained
    Multiscale Method for Cross-Modal Remote Sensing Image Retrieval", IEEE Transactions on
    Geoscience and Remote Sensing 60:1-19, 2022.
"""

from __future__ import annotations

from skyeye_data.sources import register
from skyeye_data.sources._karpathy import CaptionJsonSource
from skyeye_data.sources.base import Layout

RSITMD_CLASSES = (
    "airport", "bareland", "baseballfield", "beach", "boat", "bridge", "center", "church",
    "commercial", "denseresidential", "desert", "farmland", "forest", "industrial", "intersection",
    "meadow", "mediumresidential", "mountain", "park", "parking", "playground", "pond", "port",
    "railwaystation", "resort", "river", "school", "sparseresidential", "square", "stadium",
    "storagetanks", "viaduct",
)  # fmt: skip


@register
class RSITMD(CaptionJsonSource):
    name = "rsitmd"
    family = "rsitmd"
    annotation_file = "dataset_RSITMD.json"
    image_dir = "images"
    layout = "dataset_RSITMD.json + images/*.tif (4,743 images, 256x256)"
    title = "RSITMD"
    citation = (
        "Yuan, Zhang, Fu, Li, Deng, Wang, Sun. Exploring a Fine-Grained Multiscale Method for Cross-Modal "
        "Remote Sensing Image Retrieval. IEEE TGRS 60, 2022."
    )
    license = "research use (no license stated by the authors)"
    homepage = "https://github.com/xiaoyuan1996/AMFMN"
    short_title = "RSITMD"
    report_rank = 3
    paper_counts = {"rsitmd": ("RSITMD", 21_500)}
    published_splits = {"train": 4291, "test": 452}  # images per split in the release
    layouts = (
        Layout("published", "dataset_RSITMD.json + images/*.tif",
               "xiaoyuan1996/AMFMN README (RSITMD download); public loaders read RSITMD/dataset_RSITMD.json with "
               "RSITMD/images"),
    )  # fmt: skip
