"""RSICD: the Remote Sensing Image Captioning Dataset, 10,921 images with five captions each.

Dataset
    Lu et al. (2018) collected 10,921 aerial images of 224x224 pixels from Google Earth, Baidu
    Map, MapABC and Tianditu in 30 scene classes and had volunteers write up to five sentences per
    image (24,333 distinct sentences), padded to five by repetition.

Raw layout (under ``RAW/rsicd/``)::

    dataset_rsicd.json    Karpathy-style: {"images": [{"filename": "airport_1.jpg", "imgid": 0,
                          "split": "train", "sentids", "sentences": [{"raw", "tokens", "imgid",
                          "sentid"}]}], "dataset": "rsicd"}
    RSICD_images/*.jpg

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
from skyeye_data.sources._karpathy import CaptionJsonSource, SynthSpec

RSICD_CLASSES = (
    "airport", "bareland", "baseballfield", "beach", "bridge", "center", "church", "commercial",
    "denseresidential", "desert", "farmland", "forest", "industrial", "meadow", "mediumresidential",
    "mountain", "park", "parking", "playground", "pond", "port", "railwaystation", "resort", "river",
    "school", "sparseresidential", "square", "stadium", "storagetanks", "viaduct",
)  # fmt: skip


def rsicd_filename(class_name: str, in_class: int, overall: int) -> str:
    # every seventh image gets a bare five-digit number, like the RSICD files RSIVQA-AID names
    return f"{overall:05d}.jpg" if overall % 7 == 0 else f"{class_name}_{in_class}.jpg"


@register
class RSICD(CaptionJsonSource):
    name = "rsicd"
    family = "rsicd"
    annotation_file = "dataset_rsicd.json"
    image_dir = "RSICD_images"
    layout = "dataset_rsicd.json + RSICD_images/*.jpg (10,921 images, 224x224)"
    title = "RSICD"
    citation = (
        "Lu, Wang, Zheng, Li. Exploring Models and Data for Remote Sensing Image Caption Generation. "
        "IEEE TGRS 56(4), 2018."
    )
    license = "research use (no license stated by the authors)"
    homepage = "https://github.com/201528014227051/RSICD_optimal"
    synth = SynthSpec(
        classes=RSICD_CLASSES,
        image_size=(224, 224),
        paper_splits={"train": 8734, "val": 1093, "test": 1094},
        mini_splits={"train": 5, "val": 2, "test": 2},
        filename=rsicd_filename,
        capitalised=False,
    )
