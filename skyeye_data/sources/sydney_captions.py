"""Sydney-Captions: five English captions for each of 613 aerial images of Sydney.

Dataset
    Qu et al. (2016) cut 613 image tiles of 500x500 pixels (0.5 m) from an 18,000x14,000 Google
    Earth image of Sydney, Australia (the Sydney scene set of Zhang et al. 2015), in 7 classes
    (residential, airport, meadow, river, ocean, industrial, runway), and wrote 5 sentences each.

Raw layout (under ``RAW/sydney_captions/``)::

    dataset.json          Karpathy-style, as UCM-Captions ("dataset": "sydney")
    imgs/1.tif ... imgs/613.tif       (the archive ships imgs.rar: extract it; images/ also accepted)

Splits: the file's own ``split`` field, 497 train / 58 val / 58 test images; SkyEye-968k uses
the 2,485 (2.5k) train captions.

Quirks
    - File names are 1-based numbers, as in UCM-Captions; the family key ``sydney`` keeps
      ``sydney:1`` apart from ``ucm:1``. RSIVQA's Sydney questions name the same files.
    - Pre-tokenised ``raw`` text, typos kept as written ("arranged nratly"), and repeated
      sentences filling the five slots of images with fewer descriptions.
    - Classes are very unbalanced (residential and industrial dominate).

Reading rules shared by all caption sources: :mod:`skyeye_data.sources._karpathy`.

Citation
    B. Qu, X. Li, D. Tao, X. Lu, "Deep semantic understanding of high resolution remote sensing
    image", CITS 2016. Images: F. Zhang, B. Du, L. Zhang, "Saliency-guided unsupervised feature
    learning for scene classification", IEEE TGRS 53(4), 2015.
"""

from __future__ import annotations

from skyeye_data.sources import register
from skyeye_data.sources._karpathy import CaptionJsonSource, imgs_archive_layouts

SYDNEY_CLASSES = ("residential", "airport", "meadow", "river", "ocean", "industrial", "runway")


@register
class SydneyCaptions(CaptionJsonSource):
    name = "sydney_captions"
    family = "sydney"
    annotation_file = "dataset.json"
    image_dir = "imgs"
    layout = "dataset.json + imgs/<n>.tif (the archive's imgs.rar extracted; images/ accepted) (613 images, 500x500)"
    title = "Sydney-Captions"
    citation = "Qu, Li, Tao, Lu. Deep semantic understanding of high resolution remote sensing image. CITS 2016."
    license = "research use (no license stated by the authors)"
    homepage = "https://github.com/201528014227051/RSICD_optimal"
    short_title = "Sydney-Captions"
    benchmark_splits = ("val", "test")
    report_rank = 1
    paper_counts = {"sydney_captions": ("Sydney-Captions", 2_500), "sydney_conversa": ("Sydney-Conversa", 500)}
    published_splits = {"train": 497, "val": 58, "test": 58}  # images per split in the release
    layouts = imgs_archive_layouts("Sydney_captions")
