"""NWPU-Captions: five English captions for each of the 31,500 NWPU-RESISC45 images.

Dataset
    Cheng et al. (2022) captioned the NWPU-RESISC45 scene-classification images (Cheng et al.
    2017): 45 classes x 700 Google Earth images of 256x256 pixels, five sentences each written
    by seven annotators (157,500 sentences).

Raw layout (under ``RAW/nwpu_captions/``)::

    dataset_nwpu.json     {"airplane": [{"filename": "airplane_001.jpg", "imgid": 30800,
                          "split": "train", "raw": "...", "sentids": 154000, "raw_1": "...",
                          "sentids_1": 154001, ..., "raw_4": "...", "sentids_4": 154004}, ...],
                           "airport": [...], ...}
    NWPU_images/<class>/<class>_NNN.jpg

Splits: the file's own ``split`` field, 25,200 train / 3,150 val / 3,150 test images (80/10/10);
SkyEye-968k uses the 126,000 train captions.

Quirks
    - Not Karpathy-style: a dict keyed by class; the five sentences are the flat fields ``raw``,
      ``raw_1`` .. ``raw_4`` (``sentids*`` are single integers, not lists).
    - ``imgid`` is global over the file but does not follow the class order of the file (the
      airplane images start at 30800), so provenance uses the entry's position in file order.
    - The image folder is the class key, so an image's path is ``NWPU_images/<class>/<filename>``.
    - ``airplane_111.jpg`` is listed but missing from the published image archive: its entry is
      quarantined ("image file not found: airplane_111.jpg"), counted, never dropped silently
      (``../shared/real-samples/README.md``; the paper-scale synthetic corpus reproduces it).

Reading rules shared by all caption sources: :mod:`skyeye_data.sources._karpathy`.

Citation
    Q. Cheng, H. Huang, Y. Xu, Y. Zhou, H. Li, Z. Wang, "NWPU-Captions Dataset and MLCA-Net for
    Remote Sensing Image Captioning", IEEE Transactions on Geoscience and Remote Sensing 60, 2022.
    Images: G. Cheng, J. Han, X. Lu, "Remote Sensing Image Scene Classification: Benchmark and
    State of the Art", Proceedings of the IEEE 105(10), 2017.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

from skyeye_data.sources import register
from skyeye_data.sources.base import Layout
from skyeye_data.sources._karpathy import (
    CaptionJsonSource,
    CaptionText,
    RawEntry,
    excerpt_of,
    head_of,
    printable,
)
from skyeye_data.sources.base import Rejected

NWPU_CLASSES = (
    "airplane", "airport", "baseball_diamond", "basketball_court", "beach", "bridge", "chaparral",
    "church", "circular_farmland", "cloud", "commercial_area", "dense_residential", "desert",
    "forest", "freeway", "golf_course", "ground_track_field", "harbor", "industrial_area",
    "intersection", "island", "lake", "meadow", "medium_residential", "mobile_home_park",
    "mountain", "overpass", "palace", "parking_lot", "railway", "railway_station",
    "rectangular_farmland", "river", "roundabout", "runway", "sea_ice", "ship", "snowberg",
    "sparse_residential", "stadium", "storage_tank", "tennis_court", "terrace",
    "thermal_power_station", "wetland",
)  # fmt: skip

CAPTION_FIELDS = ("raw", "raw_1", "raw_2", "raw_3", "raw_4")
_EXTRA_CAPTION_FIELD = re.compile(r"raw_\d+")


@register
class NWPUCaptions(CaptionJsonSource):
    name = "nwpu_captions"
    family = "nwpu"
    annotation_file = "dataset_nwpu.json"
    image_dir = "NWPU_images"
    required_fields = ("filename", "imgid", "split", "raw")
    layout = "dataset_nwpu.json + NWPU_images/<class>/*.jpg (31,500 images, 256x256)"
    title = "NWPU-Captions"
    citation = (
        "Cheng, Huang, Xu, Zhou, Li, Wang. NWPU-Captions Dataset and MLCA-Net for Remote Sensing Image "
        "Captioning. IEEE TGRS 60, 2022."
    )
    license = "research use (no license stated by the authors)"
    homepage = "https://github.com/HaiyanHuang98/NWPU-Captions"
    short_title = "NWPU-Captions"
    report_rank = 4
    paper_counts = {"nwpu_captions": ("NWPU-Captions", 126_000)}
    published_splits = {"train": 25200, "val": 3150, "test": 3150}  # images per split in the release
    layouts = (
        Layout("published", "dataset_nwpu.json + NWPU_images/<class>/*.jpg",
               "HaiyanHuang98/NWPU-Captions README: dataset_nwpu.json and the NWPU-RESISC45 images by class folder"),
    )  # fmt: skip

    def entries(self, data: Any) -> Iterator[RawEntry | Rejected]:
        if not isinstance(data, dict) or "images" in data:
            yield Rejected(
                self.annotation_file,
                "not an NWPU-Captions file: expected an object keyed by class name, each holding a list "
                f"of images; found {_shape(data)}; none of its records can be read",
                excerpt=excerpt_of(head_of(data)),
            )
            return
        index = 0
        for class_name, images in data.items():
            where = f"class '{printable(class_name)}'"
            if not isinstance(images, list) or "/" in class_name or "\\" in class_name or class_name in ("", ".", ".."):
                # the class names the image folder, so it must be a plain folder name
                yield Rejected(
                    self.annotation_file,
                    f"{where}: expected a list of images under a plain folder name, found {_shape(images)}; "
                    "the class's images cannot be read",
                    raw_index=index,
                    excerpt=excerpt_of(head_of(images)),
                )
                index += 1
                continue
            for value in images:
                yield RawEntry(index, value, f"{self.image_dir}/{class_name}", where)
                index += 1

    def caption_texts(self, entry: dict) -> list[CaptionText]:
        extra = sorted((k for k in entry if _EXTRA_CAPTION_FIELD.fullmatch(k) and k not in CAPTION_FIELDS))
        return [CaptionText(field, entry.get(field)) for field in (*CAPTION_FIELDS, *extra)]


def _shape(value: Any) -> str:
    if isinstance(value, dict):
        return f"an object with keys {sorted(value)[:6]}"
    return type(value).__name__
